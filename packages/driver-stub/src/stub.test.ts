import { createHash } from "node:crypto";
import type { InstanceType, ExecutorTarget } from "@dispatch-cloud/arvados-types";
import { describe, expect, it, afterEach } from "vitest";
import {
  QuotaError,
  RateLimitError,
  CapacityError,
  generateEd25519KeyPair,
  initCommandWithSecret,
  tagKeys,
} from "@dispatch-cloud/cloud-driver-api";
import { ManualClock, testInstanceType } from "@dispatch-cloud/cloud-driver-api/testing";
import { createStubCloud, inProcessExecutorFactory, type StubCloud } from "./testing/index.js";
import type { ApiCall } from "./api.js";
import type { StubParameters } from "./params.js";

export const type1: InstanceType = testInstanceType({
  Name: "type1",
  ProviderType: "t1.small",
  RAM: 4 << 30,
  Price: 0.1,
});

const key = generateEd25519KeyPair("dispatcher");
const keys = tagKeys();
let clouds: StubCloud[] = [];
afterEach(async () => {
  await Promise.all(clouds.map((c) => c.stop()));
  clouds = [];
});

function setup(parameters: Partial<StubParameters> = {}, serveSsh = false) {
  const clock = new ManualClock(1_000_000);
  const api: ApiCall[] = [];
  const cloud = createStubCloud({
    parameters,
    clock,
    serveSsh,
    apiRequest: (call) => {
      api.push(call);
      return Promise.resolve({ status: 200, body: "{}" });
    },
  });
  clouds.push(cloud);
  return { clock, cloud, api, set: cloud.instanceSet };
}

let secretSeq = 0;
function create(set: StubCloud["instanceSet"], secret = `secret${++secretSeq}`) {
  return set.create({
    instanceType: type1,
    imageId: "img",
    tags: { [keys.instanceSetId]: "set1", [keys.instanceSecret]: secret },
    initCommand: initCommandWithSecret(secret, "echo hi"),
    publicKey: key.publicKey,
  });
}

function target(inst: {
  address: string;
  remoteUser: string;
  tags: Record<string, string>;
  verifyHostKey: ExecutorTarget["verifyHostKey"];
}): ExecutorTarget {
  return {
    address: inst.address,
    remoteUser: inst.remoteUser,
    instanceSecret: inst.tags[keys.instanceSecret] ?? "",
    verifyHostKey: (k, s, sig) => inst.verifyHostKey(k, s, sig),
  };
}

describe("stub cloud basics", () => {
  it("creates VMs with sequential ids and lists tag snapshots", async () => {
    const { set } = setup();
    const a = await create(set);
    const b = await create(set);
    expect([a.id, b.id]).toEqual(["stub-000001", "stub-000002"]);
    await a.setTags({ ...a.tags, extra: "1" });
    expect(a.tags["extra"]).toBeUndefined();
    const listed = await set.instances({});
    expect(listed.map((i) => i.id)).toEqual(["stub-000001", "stub-000002"]);
    expect(listed[0]?.tags["extra"]).toBe("1");
    await b.destroy();
    expect((await set.instances({})).map((i) => i.id)).toEqual(["stub-000001"]);
    expect(set.instanceQuotaGroup(type1)).toBe("t");
    expect(set.instanceQuotaGroup({ ...type1, Preemptible: true })).toBe("t-p");
  });

  it("stores a runner deployed to many VMs once, and each VM still has its own files", async () => {
    const { cloud, set } = setup();
    const runner = Buffer.alloc(256 * 1024, 7);
    const path = "/tmp/arvados-crunch-run/crunch-run~abc";
    const script = `set -e; dstdir="/tmp/arvados-crunch-run/"; dstfile="${path}"; mkdir -p "$dstdir"; touch "$dstfile"; chmod 0755 "$dstdir" "$dstfile"; cat >"$dstfile"`;
    const vms = [];
    for (let i = 0; i < 5; i++) {
      const inst = await create(set);
      // A fresh copy per upload, as each SSH session delivers its own.
      const r = await inProcessExecutorFactory(cloud)(target(inst)).execute(script, {
        stdin: Buffer.from(runner),
      });
      expect(r.exitCode).toBe(0);
      vms.push(cloud.vm(inst.id)!);
    }
    const stored = vms.map((vm) => vm.files.get(path));
    expect(stored[0]).toEqual(runner);
    for (const s of stored) expect(s).toBe(stored[0]);
    // The instance secrets differ, so they are not shared.
    expect(new Set(vms.map((vm) => vm.secret)).size).toBe(5);
    // A test replacing one VM's file changes only that VM.
    vms[0].files.set(path, Buffer.from("other"));
    expect(vms[1].files.get(path)).toEqual(runner);
    const md5 = await inProcessExecutorFactory(cloud)(
      target((await set.instances({})).find((i) => i.id === vms[1].id)!),
    ).execute(`md5sum ${path}`);
    expect(md5.stdout.toString()).toBe(
      `${createHash("md5").update(runner).digest("hex")}  ${path}\n`,
    );
  });

  it("holds and releases cloud operations", async () => {
    const { cloud, set } = setup();
    cloud.hold("create");
    const pending = create(set);
    const held = await cloud.waitForHeld("create");
    expect(held.op).toBe("create");
    expect(cloud.vms()).toHaveLength(0);
    held.release();
    const inst = await pending;
    expect(cloud.vms().map((v) => v.id)).toEqual([inst.id]);
    // still held for later calls until release()
    const second = create(set);
    const h2 = await cloud.waitForHeld();
    h2.fail(new Error("nope"));
    await expect(second).rejects.toThrow("nope");
    cloud.release();
    await expect(create(set)).resolves.toBeDefined();
  });

  it("runs the crunch-run protocol through the in-process executor", async () => {
    const { cloud, set, clock, api } = setup({ containerRunTimeMs: 5000, containerExitCode: 3 });
    const inst = await create(set);
    const exec = inProcessExecutorFactory(cloud)(target(inst));
    const secret = await exec.execute("cat /var/run/arvados-instance-secret");
    expect(secret.stdout.toString()).toBe(inst.tags[keys.instanceSecret]);
    expect((await exec.execute("md5sum /tmp/arvados-crunch-run/crunch-run~abc")).exitCode).toBe(1);
    const script =
      'set -e; dstdir="/tmp/arvados-crunch-run/"; dstfile="/tmp/arvados-crunch-run/crunch-run~abc"; mkdir -p "$dstdir"; touch "$dstfile"; chmod 0755 "$dstdir" "$dstfile"; cat >"$dstfile"';
    expect((await exec.execute(script, { stdin: "binary" })).exitCode).toBe(0);
    const md5 = await exec.execute("md5sum /tmp/arvados-crunch-run/crunch-run~abc");
    expect(md5.stdout.toString()).toBe(
      `${createHash("md5").update("binary").digest("hex")}  /tmp/arvados-crunch-run/crunch-run~abc\n`,
    );
    const runner = "/tmp/arvados-crunch-run/crunch-run~abc";
    const uuid = "zzzzz-dz642-000000000000001";
    const config = {
      Env: { ARVADOS_API_HOST: "api.example:443", ARVADOS_API_TOKEN: "tok" },
      KeepBuffers: 0,
    };
    const started = await exec.execute(
      `${runner} --detach --stdin-config '--runtime-engine=docker' '${uuid}'`,
      {
        stdin: JSON.stringify(config),
      },
    );
    expect(started.exitCode).toBe(0);
    expect(JSON.parse(started.stdout.toString())).toEqual({ UUID: uuid, PID: 1000 });
    expect((await exec.execute(`${runner} --list`)).stdout.toString()).toBe(`${uuid}\n`);
    await clock.waitForSleepers(1);
    expect(api.map((c) => c.body)).toEqual([{ container: { state: "Running" } }]);
    expect(api[0]?.url).toBe(`https://api.example:443/arvados/v1/containers/${uuid}`);
    expect(api[0]?.token).toBe("tok");
    await clock.advance(5000);
    expect(api.map((c) => c.body)).toEqual([
      { container: { state: "Running" } },
      { container: { state: "Complete", exit_code: 3 } },
    ]);
    expect((await exec.execute(`${runner} --list`)).stdout.toString()).toBe("");
  });
});

describe("stub knobs", () => {
  it("MaxInstances gives a quota error", async () => {
    const { set } = setup({ maxInstances: 1 });
    await create(set);
    await expect(create(set)).rejects.toSatisfy((e) => QuotaError.is(e));
  });

  it("fails every Nth call with the chosen kind", async () => {
    const { set, clock } = setup({
      failCreate: { every: 2, kind: "rate-limit" },
      failList: { every: 3, kind: "capacity-quota-group" },
      rateLimitRetryAfterMs: 7000,
    });
    await create(set);
    const err = await create(set).catch((e: unknown) => e);
    expect(RateLimitError.is(err) && err.earliestRetry.getTime()).toBe(clock.now() + 7000);
    await create(set);
    await set.instances({});
    await set.instances({});
    const listErr = await set.instances({}).catch((e: unknown) => e);
    expect(CapacityError.is(listErr) && listErr.scope).toBe("quota-group");
  });
});

describe("more stub knobs", () => {
  it("slow boots: every Nth VM takes SlowBootDelay, others BootDelay", async () => {
    const { cloud, set, clock } = setup({
      bootDelayMs: 100,
      slowBootEvery: 2,
      slowBootDelayMs: 10_000,
    });
    const a = await create(set);
    const b = await create(set);
    const fa = inProcessExecutorFactory(cloud)(target(a));
    const fb = inProcessExecutorFactory(cloud)(target(b));
    await expect(fa.execute("true")).rejects.toThrow("connection refused");
    await clock.advance(100);
    expect((await fa.execute("true")).exitCode).toBe(0);
    await expect(fb.execute("true")).rejects.toThrow("connection refused");
    await clock.advance(9900);
    expect((await fb.execute("true")).exitCode).toBe(0);
  });

  it("broken VMs: every Nth VM lists `broken` once booted for BrokenAfter", async () => {
    const { cloud, set, clock } = setup({ brokenEvery: 2, brokenAfterMs: 1000 });
    const a = await create(set);
    const b = await create(set);
    const ea = inProcessExecutorFactory(cloud)(target(a));
    const eb = inProcessExecutorFactory(cloud)(target(b));
    expect((await eb.execute("crunch-run --list")).stdout.toString()).toBe("");
    await clock.advance(1000);
    expect((await eb.execute("crunch-run --list")).stdout.toString()).toBe("broken\n");
    expect((await ea.execute("crunch-run --list")).stdout.toString()).toBe("");
    cloud.vm(a.id)?.setBroken(true);
    expect((await ea.execute("crunch-run --list")).stdout.toString()).toBe("broken\n");
  });

  it("silent VMs: commands hang until the executor's timeout", async () => {
    const { cloud, set, clock } = setup({ silentEvery: 1, silentAfterMs: 500 });
    const a = await create(set);
    const ex = inProcessExecutorFactory(cloud)(target(a));
    expect((await ex.execute("true")).exitCode).toBe(0);
    await clock.advance(500);
    const hung = ex.execute("crunch-run --list", { timeoutMs: 2000 });
    let settled = false;
    void hung.catch(() => (settled = true));
    await clock.advance(1999);
    expect(settled).toBe(false);
    await clock.advance(1);
    await expect(hung).rejects.toThrow("timed out");
  });

  it("fails every Nth destroy and setTags, and MaxInstances counts live VMs", async () => {
    const { set } = setup({
      failDestroy: { every: 1, kind: "plain" },
      failSetTags: { every: 2, kind: "quota" },
      maxInstances: 1,
    });
    const a = await create(set);
    await a.setTags({ x: "1" });
    await expect(a.setTags({ x: "2" })).rejects.toSatisfy((e) => QuotaError.is(e));
    await expect(a.destroy()).rejects.toThrow("injected failure of destroy call #1");
    await expect(create(set)).rejects.toSatisfy((e) => QuotaError.is(e));
  });

  it("kill ends a run and reports it Cancelled; stale and unkillable runs", async () => {
    const { cloud, set, clock, api } = setup({ containerRunTimeMs: 60_000 });
    const a = await create(set);
    const ex = inProcessExecutorFactory(cloud)(target(a));
    const cfg = JSON.stringify({ Env: { ARVADOS_API_HOST: "h", ARVADOS_API_TOKEN: "t" } });
    const u1 = "zzzzz-dz642-000000000000011";
    const u2 = "zzzzz-dz642-000000000000012";
    await ex.execute(`crunch-run --detach --stdin-config '${u1}'`, { stdin: cfg });
    await ex.execute(`crunch-run --detach --stdin-config '${u2}'`, { stdin: cfg });
    const dup = await ex.execute(`crunch-run --detach --stdin-config '${u1}'`, { stdin: cfg });
    expect(dup.exitCode).toBe(1);
    expect(dup.stderr.toString()).toContain("lock");
    await clock.waitForSleepers(2);
    const vm = cloud.vm(a.id)!;
    vm.unkillable = true;
    expect((await ex.execute(`crunch-run --kill 15 ${u1}`)).exitCode).toBe(1);
    vm.unkillable = false;
    expect((await ex.execute(`crunch-run --kill 15 ${u1}`)).exitCode).toBe(0);
    await clock.advance(0);
    expect(api.at(-1)?.body).toEqual({ container: { state: "Cancelled" } });
    vm.markStale(u2);
    expect((await ex.execute("crunch-run --list")).stdout.toString()).toBe(`${u2} stale\n`);
    expect((await ex.execute(`crunch-run --kill 15 ${u1}`)).exitCode).toBe(0);
  });

  it("checks host keys per HostKeyCheck and refuses a bad instance secret", async () => {
    const { cloud, set } = setup({ hostKeyCheck: "compare" });
    const a = await create(set);
    const session = { run: () => Promise.reject(new Error("unused")) };
    expect(await a.verifyHostKey(cloud.vm(a.id)!.hostKey.publicKeyWire, session)).toEqual({
      kind: "verified",
    });
    expect((await a.verifyHostKey(key.publicKeyWire, session)).kind).toBe("mismatch");
    const other = setup();
    const b = await create(other.set, "right");
    const ex = inProcessExecutorFactory(other.cloud)({ ...target(b), instanceSecret: "wrong" });
    await expect(ex.execute("true")).rejects.toThrow("bad instance secret");
  });

  it("records calls in order with outcomes", async () => {
    const { cloud, set } = setup();
    cloud.failNext("list", new Error("once"));
    await expect(set.instances({ k: "v" })).rejects.toThrow("once");
    const a = await create(set);
    expect(cloud.calls().map((c) => [c.op, c.outcome, c.instanceId])).toEqual([
      ["list", "error", undefined],
      ["create", "ok", a.id],
    ]);
    expect(cloud.calls("list")[0]?.tags).toEqual({ k: "v" });
  });
});
