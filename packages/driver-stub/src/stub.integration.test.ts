import http from "node:http";
import { instanceSetId } from "@dispatch-cloud/arvados-types";
import { sshCommand } from "@dispatch-cloud/ssh-executor/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  CapacityError,
  QuotaError,
  RateLimitError,
  generateEd25519KeyPair,
  initCommandWithSecret,
  tagKeys,
  type Instance,
} from "@dispatch-cloud/cloud-driver-api";
import {
  ManualClock,
  runConformanceSuite,
  testInstanceType,
} from "@dispatch-cloud/cloud-driver-api/testing";
import { createStubDriver } from "./index.js";
import { createStubCloud, type StubCloud } from "./testing/index.js";

const keys = tagKeys();
const key = generateEd25519KeyPair("dispatcher");

runConformanceSuite(
  "stub",
  () => {
    const cloud = createStubCloud();
    return Promise.resolve({
      set: cloud.instanceSet,
      cleanup: () => cloud.stop(),
      injectCreateError(kind) {
        cloud.failNext(
          "create",
          kind === "rate-limit"
            ? new RateLimitError("throttled", new Date(Date.now() + 1000))
            : kind === "quota"
              ? new QuotaError("quota")
              : new CapacityError("no capacity", "instance-type"),
        );
      },
    });
  },
  { injectableErrors: ["rate-limit", "quota", "capacity"] },
);

let clouds: StubCloud[] = [];
afterEach(async () => {
  await Promise.all(clouds.map((c) => c.stop()));
  clouds = [];
});

function ssh(
  inst: Instance,
  command: string,
  opts: { privateKey?: string; stdin?: string; user?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const target = {
    address: inst.address,
    user: opts.user ?? inst.remoteUser,
    privateKey: opts.privateKey ?? key.privateKey,
  };
  const stdin = opts.stdin === undefined ? {} : { stdin: opts.stdin };
  return sshCommand(target, command, { ...stdin, readyTimeoutMs: 5000 });
}

describe("stub VMs over real SSH", () => {
  it("answer the crunch-run protocol and update the container through a real HTTP API", async () => {
    const updates: { url: string; auth: string; body: unknown }[] = [];
    const api = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        updates.push({
          url: req.url ?? "",
          auth: req.headers.authorization ?? "",
          body: JSON.parse(body),
        });
        res.end("{}");
      });
    });
    await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
    const apiHost = `127.0.0.1:${(api.address() as { port: number }).port}`;
    const clock = new ManualClock(0);
    const cloud = createStubCloud({
      clock,
      parameters: { apiScheme: "http", containerRunTimeMs: 1000, remoteUser: "admin" },
    });
    clouds.push(cloud);
    try {
      const inst = await cloud.instanceSet.create({
        instanceType: testInstanceType(),
        imageId: "img",
        tags: { [keys.instanceSecret]: "s3cret" },
        initCommand: initCommandWithSecret("s3cret", ""),
        publicKey: key.publicKey,
      });
      expect(await ssh(inst, "sudo cat /var/run/arvados-instance-secret")).toMatchObject({
        code: 0,
        stdout: "s3cret",
      });
      await expect(
        ssh(inst, "true", { privateKey: generateEd25519KeyPair().privateKey }),
      ).rejects.toThrow(/authentication/i);
      await expect(ssh(inst, "true", { user: "root" })).rejects.toThrow(/authentication/i);
      const uuid = "zzzzz-dz642-000000000000002";
      const config = JSON.stringify({
        Env: { ARVADOS_API_HOST: apiHost, ARVADOS_API_TOKEN: "v2/tok" },
      });
      const started = await ssh(
        inst,
        `sudo crunch-run --detach --stdin-config '--runtime-engine=docker' '${uuid}'`,
        {
          stdin: config,
        },
      );
      expect(started).toMatchObject({ code: 0, stdout: `{"UUID":"${uuid}","PID":1000}\n` });
      expect((await ssh(inst, "sudo crunch-run --list")).stdout).toBe(`${uuid}\n`);
      await clock.waitForSleepers(1);
      await clock.advance(1000);
      await expect.poll(() => updates.length).toBe(2);
      expect(updates).toEqual([
        {
          url: `/arvados/v1/containers/${uuid}`,
          auth: "Bearer v2/tok",
          body: { container: { state: "Running" } },
        },
        {
          url: `/arvados/v1/containers/${uuid}`,
          auth: "Bearer v2/tok",
          body: { container: { state: "Complete", exit_code: 0 } },
        },
      ]);
      expect((await ssh(inst, "sudo crunch-run --list")).stdout).toBe("");
    } finally {
      await new Promise((r) => api.close(r));
    }
  });

  it("refuse connections while booting and drop them when the VM vanishes", async () => {
    const clock = new ManualClock(0);
    const cloud = createStubCloud({ clock, parameters: { bootDelayMs: 5000 } });
    clouds.push(cloud);
    const inst = await cloud.instanceSet.create({
      instanceType: testInstanceType(),
      imageId: "img",
      tags: {},
      initCommand: "",
      publicKey: key.publicKey,
    });
    await expect(ssh(inst, "true")).rejects.toThrow(
      /handshake|ECONNRESET|ECONNREFUSED|closed|lost/i,
    );
    await clock.advance(5000);
    expect((await ssh(inst, "true")).code).toBe(0);
    expect(await cloud.vanish(inst.id)).toBe(true);
    expect(await cloud.instanceSet.instances({})).toEqual([]);
    await expect(ssh(inst, "true")).rejects.toThrow(
      /handshake|ECONNRESET|ECONNREFUSED|closed|lost/i,
    );
  });
});

describe("createStubDriver", () => {
  it("reads knobs from DriverParameters and reports bad ones with their key path", async () => {
    let cloud: StubCloud | undefined;
    const factory = createStubDriver({ serveSsh: false, onCloud: (c) => (cloud = c) });
    const context = {
      instanceSetId: instanceSetId("x"),
      sharedResourceTags: {},
      registry: null,
      logger: {
        debug() {},
        info() {},
        warn() {},
        error() {},
        child() {
          return this;
        },
      },
    };
    const set = await factory({
      ...context,
      parameters: { maxinstances: 3, BootDelay: "1m30s", FailListKind: "quota", Region: "ignored" },
    });
    clouds.push(cloud!);
    expect(cloud?.parameters).toMatchObject({
      maxInstances: 3,
      bootDelayMs: 90_000,
      failList: { every: 0, kind: "quota" },
    });
    expect(cloud?.instanceSet).toBe(set);
    await expect(
      factory({ ...context, parameters: { BootDelay: 5, FailCreateKind: "nope" } }),
    ).rejects.toThrow(
      'Containers.CloudVMs.DriverParameters.BootDelay: must be a duration such as "10s" or "1m30s", not 5\nContainers.CloudVMs.DriverParameters.FailCreateKind: must be one of',
    );
  });
});
