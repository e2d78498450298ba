import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { instanceSetId, type Logger } from "@dispatch-cloud/arvados-types";
import { sshCommand } from "@dispatch-cloud/ssh-executor/testing";
import { afterAll, describe, expect, it } from "vitest";
import {
  QuotaError,
  generateEd25519KeyPair,
  type Instance,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import { runConformanceSuite } from "@dispatch-cloud/cloud-driver-api/testing";
import {
  createLoopbackDriver,
  localhostInstanceType,
  validateLoopbackInstanceTypes,
} from "./index.js";

const logs: string[] = [];
const logger: Logger = {
  debug: () => {},
  info: (_f, msg) => logs.push(msg),
  warn: () => {},
  error: () => {},
  child: () => logger,
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loopback-test-"));
const marker = path.join(tmp, "crunch-run-broken");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function newSet(): Promise<InstanceSet> {
  return createLoopbackDriver({ brokenMarkerPath: marker, stateDir: tmp })({
    parameters: {},
    instanceSetId: instanceSetId("loopback-test"),
    sharedResourceTags: {},
    logger,
    registry: null,
  });
}

/** Destroys what the set has (the record outlives a plain stop) and stops it. */
async function discard(set: InstanceSet): Promise<void> {
  for (const inst of await set.instances({})) await inst.destroy();
  await set.stop();
}

runConformanceSuite(
  "loopback",
  async () => {
    const set = await newSet();
    return { set, cleanup: () => set.stop() };
  },
  {
    instanceType: localhostInstanceType(),
    maxInstances: 1,
    quotaGroupsDifferForPreemptible: false,
  },
);

function run(
  inst: Instance,
  privateKey: string,
  command: string,
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string; hostKey: Buffer }> {
  return sshCommand({ address: inst.address, user: inst.remoteUser, privateKey }, command, opts);
}

describe("loopback over real SSH", () => {
  const key = generateEd25519KeyPair("dispatcher");

  it("runs commands with sh -c, dropping sudo, piping stdin/env/exit code, and verifies its host key", async () => {
    fs.writeFileSync(marker, "");
    const set = await newSet();
    try {
      const inst = await set.create({
        instanceType: localhostInstanceType(),
        imageId: "",
        tags: { a: "b" },
        initCommand: "",
        publicKey: key.publicKey,
      });
      expect(fs.existsSync(marker)).toBe(false);
      expect(logs).toContain(`removed ${marker}`);
      expect(inst.id).toBe("localhost");
      expect(inst.remoteUser).toBe(os.userInfo().username);
      const r = await run(
        inst,
        key.privateKey,
        "sudo sh -c 'read x; echo \"got $x $FOO\"; echo oops >&2; exit 3'",
        {
          env: { FOO: "bar" },
          stdin: "line\n",
        },
      );
      expect(r).toMatchObject({ code: 3, stdout: "got line bar\n", stderr: "oops\n" });
      const session = { run: () => Promise.reject(new Error("unused")) };
      expect(await inst.verifyHostKey(r.hostKey, session)).toEqual({ kind: "verified" });
      expect(await inst.verifyHostKey(generateEd25519KeyPair().publicKeyWire, session)).toEqual({
        kind: "mismatch",
        reason: "host key mismatch",
      });
      await expect(
        set.create({
          instanceType: localhostInstanceType(),
          imageId: "",
          tags: {},
          initCommand: "",
          publicKey: key.publicKey,
        }),
      ).rejects.toSatisfy(
        (e) => QuotaError.is(e) && (e as Error).message === "loopback driver is always at quota",
      );
    } finally {
      await discard(set);
    }
  });

  it("refuses other keys", async () => {
    const set = await newSet();
    try {
      const inst = await set.create({
        instanceType: localhostInstanceType(),
        imageId: "",
        tags: {},
        initCommand: "",
        publicKey: key.publicKey,
      });
      await expect(run(inst, generateEd25519KeyPair().privateKey, "true")).rejects.toThrow(
        /authentication/i,
      );
    } finally {
      await discard(set);
    }
  });
});

describe("loopback across dispatcher restarts", () => {
  const key = generateEd25519KeyPair("dispatcher");

  it("a new instance set finds the instance an earlier one created, with its tags, until it is destroyed", async () => {
    const first = await newSet();
    const created = await first.create({
      instanceType: localhostInstanceType(),
      imageId: "",
      tags: { ArvadosInstanceSetID: "loopback-test", ArvadosInstanceSecret: "s3cret" },
      initCommand: "",
      publicKey: key.publicKey,
    });
    await created.setTags({ ...created.tags, ArvadosIdleBehavior: "hold" });
    // The dispatcher dies without destroying anything (its SSH server goes with it).
    await first.stop();

    const second = await newSet();
    try {
      const [found, ...more] = await second.instances({});
      expect(more).toEqual([]);
      if (found === undefined) throw new Error("the instance was not found again");
      expect(found.id).toBe(created.id);
      expect(found.tags).toEqual({
        ArvadosInstanceSetID: "loopback-test",
        ArvadosInstanceSecret: "s3cret",
        ArvadosIdleBehavior: "hold",
      });
      // Reachable again, with the key the first dispatcher installed.
      const r = await run(found, key.privateKey, "echo still here");
      expect(r).toMatchObject({ code: 0, stdout: "still here\n" });
      expect(
        await found.verifyHostKey(r.hostKey, { run: () => Promise.reject(new Error("unused")) }),
      ).toEqual({
        kind: "verified",
      });
      // The record holds the instance secret: readable by its owner only.
      const record = fs
        .readdirSync(tmp)
        .find((f) => f.startsWith("arvados-dispatch-cloud-loopback-"));
      expect((fs.statSync(path.join(tmp, record!)).mode & 0o777).toString(8)).toBe("600");

      await found.destroy();
      expect(await second.instances({})).toEqual([]);
    } finally {
      await second.stop();
    }
    const third = await newSet();
    expect(await third.instances({})).toEqual([]);
    await third.stop();
  });
});

describe("loopback config helpers", () => {
  it("describes the host as the localhost type", () => {
    const t = localhostInstanceType(tmp);
    expect(t).toMatchObject({
      Name: "localhost",
      ProviderType: "localhost",
      Price: 1,
      VCPUs: os.availableParallelism(),
    });
    expect(t.RAM).toBe(os.totalmem());
    expect(t.Scratch).toBeGreaterThan(0);
    expect(t.IncludedScratch).toBe(t.Scratch);
  });
  it("rejects more than one instance type", () => {
    expect(validateLoopbackInstanceTypes(["a"])).toEqual([]);
    expect(validateLoopbackInstanceTypes(["a", "b"])).toEqual([
      "InstanceTypes: cannot use multiple InstanceTypes with loopback driver",
    ]);
  });
});
