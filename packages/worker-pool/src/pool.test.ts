// Test files sit outside tsconfig's `include`, so the type-aware linter reads them without
// noUncheckedIndexedAccess and calls the `!` that strict checking needs unnecessary.
/* oxlint-disable typescript/no-unnecessary-type-assertion */
import { createHash } from "node:crypto";
import { getEventListeners } from "node:events";
import {
  type InstanceView,
  type ExecuteOptions,
  instanceSetId,
  type Clock,
  type InstanceType,
} from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import {
  CapacityError,
  createTags,
  initCommandWithSecret,
  QuotaError,
  RateLimitError,
  tagKeys,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import {
  ManualClock,
  cleanupAfterEach,
  recordingLogger,
  type LogEntry,
} from "@dispatch-cloud/cloud-driver-api/testing";
import {
  createStubCloud,
  inProcessExecutorFactory,
  type StubCloud,
  type StubParameters,
} from "@dispatch-cloud/driver-stub/testing";
import type { ExecutorFactory } from "./executor.js";
import { WorkerPool } from "./pool.js";
import type { WorkerPoolConfig } from "./types.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const keys = tagKeys();
const SET_ID = "zzzzz-gj3su-000000000000000";
const RUNNER = Buffer.from("#!/bin/sh\necho fake crunch-run\n");
const RUNNER_MD5 = createHash("md5").update(RUNNER).digest("hex");
const RUNNER_CMD = `/tmp/arvados-crunch-run/crunch-run~${RUNNER_MD5}`;
const HOUR = 3_600_000;

function itype(name: string, provider: string, price: number, preemptible = false): InstanceType {
  return {
    Name: name,
    ProviderType: provider,
    VCPUs: 2,
    RAM: 4 << 30,
    IncludedScratch: 0,
    AddedScratch: 0,
    Scratch: 0,
    Price: price,
    Preemptible: preemptible,
    GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
  };
}
const type1 = itype("type1", "t1.small", 0.1);
const type1p = itype("type1.preemptible", "t1.small", 0.05, true);
const type2 = itype("type2", "t2.large", 0.2);
const other = itype("other", "x9.huge", 0.9);

const cleanups = cleanupAfterEach();

interface Setup {
  readonly clock: ManualClock;
  readonly cloud: StubCloud;
  readonly pool: WorkerPool;
  readonly registry: Registry;
  readonly logs: LogEntry[];
  /** A second pool over the same cloud (a restarted dispatcher). */
  newPool(config?: Partial<WorkerPoolConfig>): Promise<WorkerPool>;
}

async function setup(
  opts: {
    config?: Partial<WorkerPoolConfig>;
    stub?: Partial<StubParameters>;
    instanceSet?: (inner: InstanceSet) => InstanceSet;
    priceHistory?: boolean;
    /** The clock the pool sees (the cloud keeps the plain ManualClock). */
    poolClock?: (manual: ManualClock) => Clock;
    executorFactory?: (inner: ExecutorFactory) => ExecutorFactory;
  } = {},
): Promise<Setup> {
  const clock = new ManualClock(T0);
  const cloud = createStubCloud({
    clock,
    serveSsh: false,
    parameters: { containerRunTimeMs: 10 * HOUR, ...opts.stub },
    ...(opts.priceHistory
      ? {
          priceHistory: () => [
            { StartTime: new Date(T0 - 60_000), Price: 0.04 },
            { StartTime: new Date(T0 - 120_000), Price: 0.03 },
          ],
        }
      : {}),
  });
  const logs: LogEntry[] = [];
  const make = async (config: Partial<WorkerPoolConfig> = {}) => {
    const registry = new Registry();
    const pool = new WorkerPool({
      instanceSet: opts.instanceSet ? opts.instanceSet(cloud.instanceSet) : cloud.instanceSet,
      executorFactory: opts.executorFactory
        ? opts.executorFactory(inProcessExecutorFactory(cloud))
        : inProcessExecutorFactory(cloud),
      clock: opts.poolClock ? opts.poolClock(clock) : clock,
      logger: recordingLogger(logs),
      registry,
      random: () => 0,
      readFile: (p) =>
        p === "/usr/bin/crunch-run"
          ? Promise.resolve(RUNNER)
          : Promise.reject(new Error(`open ${p}: no such file or directory`)),
      config: {
        instanceSetId: instanceSetId(SET_ID),
        clusterId: "zzzzz",
        instanceTypes: { type1, type1p, type2 },
        imageId: "ami-123",
        bootProbeCommand: "systemctl is-system-running",
        instanceInitCommand: "echo init",
        deployRunnerBinary: "/usr/bin/crunch-run",
        publicKey: "ssh-ed25519 AAAA dispatcher",
        apiHost: "",
        apiInsecure: false,
        systemRootToken: "root-token",
        localKeepBlobBuffersPerVcpu: 0,
        driver: "stub",
        maxConcurrentInstanceCreateOps: 0,
        ...opts.config,
        ...config,
      },
    });
    cleanups.push(() => pool.stop());
    expect(await pool.checkHealth()).toEqual({ ok: true });
    return { pool, registry };
  };
  const first = await make();
  cleanups.push(() => cloud.stop());
  return {
    clock,
    cloud,
    logs,
    pool: first.pool,
    registry: first.registry,
    newPool: async (c) => (await make(c)).pool,
  };
}

const ctr = (n: number) => ({
  uuid: `zzzzz-dz642-${String(n).padStart(15, "0")}`,
  createdAt: new Date(T0 - 1000),
});

function view(pool: WorkerPool, id: string): InstanceView | undefined {
  return pool.instances().find((v) => v.instance === id);
}

async function outcome(registry: Registry, o: string): Promise<number> {
  const m = await registry.getSingleMetric("arvados_dispatchcloud_boot_outcomes")!.get();
  return m.values.find((v) => v.labels["outcome"] === o)?.value ?? 0;
}

/** Create one worker and let the create finish (state booting). */
async function createWorker(s: Setup, type = type1): Promise<string> {
  const r = s.pool.create(type);
  expect(r.ok).toBe(true);
  await s.pool.settled();
  const id = s.cloud.vms().at(-1)!.id;
  expect(view(s.pool, id)?.worker_state).toBe("booting");
  return id;
}

/** Create a worker and probe it into service (idle). */
async function readyWorker(s: Setup, type = type1): Promise<string> {
  const id = await createWorker(s, type);
  await s.pool.probeNow();
  expect(view(s.pool, id)?.worker_state).toBe("idle");
  return id;
}

/** A VM left behind by another dispatcher process with the same InstanceSetID. */
async function foreignVm(s: Setup, tags: Record<string, string> = {}, type = type1) {
  const secret = "f".repeat(40);
  return s.cloud.instanceSet.create({
    instanceType: type,
    imageId: "ami-123",
    tags: { ...createTags(keys, SET_ID, type, secret), ...tags },
    initCommand: initCommandWithSecret(secret, ""),
    publicKey: null,
  });
}

const commands = (s: Setup, id: string) => s.cloud.vm(id)!.commands.map((c) => c.command);
const logged = (s: Setup, msg: string) => s.logs.filter((l) => l.msg === msg);

describe("creating instances", () => {
  it("creates with the secret, tags, init command, image and key, as booting", async () => {
    const s = await setup();
    const sub = s.pool.subscribe();
    s.cloud.hold("create");
    const r = s.pool.create(type1);
    expect(r).toEqual({
      ok: true,
      view: {
        instance: "",
        address: "",
        price: 0.1,
        arvados_instance_type: "type1",
        provider_instance_type: "t1.small",
        last_container_uuid: "",
        last_busy: "0001-01-01T00:00:00Z",
        running_container_uuids: null,
        worker_state: "booting",
        idle_behavior: "run",
      },
    });
    expect(s.pool.instances()).toEqual([r.ok && r.view]);
    const held = await s.cloud.waitForHeld("create");
    const tags = held.call.tags!;
    const secret = tags[keys.instanceSecret]!;
    expect(secret).toMatch(/^[0-9a-f]{40}$/);
    expect(tags).toEqual({
      ArvadosInstanceSetID: SET_ID,
      ArvadosInstanceType: "type1",
      ArvadosIdleBehavior: "run",
      ArvadosInstanceSecret: secret,
    });
    s.cloud.release();
    await s.pool.settled();
    expect(await sub.wait()).toBe(true);
    const vm = s.cloud.vms()[0]!;
    expect(vm.initCommand).toBe(
      `umask 0177 && echo -n "${secret}" >/var/run/arvados-instance-secret\necho init`,
    );
    expect(vm.authorizedKey).toBe("ssh-ed25519 AAAA dispatcher");
    const v = view(s.pool, vm.id)!;
    expect(v.worker_state).toBe("booting");
    expect(v.idle_behavior).toBe("run");
    expect(v.running_container_uuids).toEqual([]);
    expect(s.pool.instances()).toHaveLength(1);
  });

  it("counts a VM listed while its create is unfinished as booting", async () => {
    let gate!: () => void;
    const gated = new Promise<void>((r) => (gate = r));
    const s = await setup({
      instanceSet: (inner) => ({
        create: async (req, sig) => {
          const inst = await inner.create(req, sig);
          await gated; // the provider lists it before the create call returns
          return inst;
        },
        instances: (f, sig) => inner.instances(f, sig),
        instanceQuotaGroup: (t) => inner.instanceQuotaGroup(t),
        stop: () => inner.stop(),
      }),
    });
    expect(s.pool.create(type1).ok).toBe(true);
    await s.clock.advance(0);
    await s.pool.syncNow();
    const id = s.cloud.vms()[0]!.id;
    expect(view(s.pool, id)?.worker_state).toBe("booting");
    gate();
    await s.pool.settled();
    expect(s.pool.instances().map((v) => v.worker_state)).toEqual(["booting"]);
  });

  it("refuses creates beyond MaxConcurrentInstanceCreateOps and throttles for 5 s", async () => {
    const s = await setup({ config: { maxConcurrentInstanceCreateOps: 1 } });
    s.cloud.hold("create");
    expect(s.pool.create(type1).ok).toBe(true);
    expect(s.pool.create(type1)).toEqual({ ok: false, reason: "max-concurrent-creates" });
    expect(logged(s, "reached MaxConcurrentInstanceCreateOps")).toHaveLength(1);
    s.cloud.release();
    await s.pool.settled();
    expect(s.pool.create(type1)).toEqual({ ok: false, reason: "throttled" });
    const sub = s.pool.subscribe();
    await s.clock.advance(5000);
    expect(await sub.wait()).toBe(true);
    expect(s.pool.create(type1).ok).toBe(true);
  });

  it("holds creates for a minute after a quota error with nothing running", async () => {
    const s = await setup();
    s.cloud.failNext("create", new QuotaError("no more"));
    expect(s.pool.create(type1).ok).toBe(true);
    await s.pool.settled();
    expect(logged(s, "quota error with 0 running -- waiting for quotaErrorTTL")).toHaveLength(1);
    expect(s.pool.atQuota()).toBe(true);
    expect(s.pool.create(type2)).toEqual({ ok: false, reason: "at-quota" });
    await s.clock.advance(59_999);
    expect(s.pool.atQuota()).toBe(true);
    await s.clock.advance(1);
    expect(s.pool.atQuota()).toBe(false);
  });

  it("holds creates after a quota error until an instance vanishes from the listing", async () => {
    const s = await setup();
    const a = await readyWorker(s);
    await readyWorker(s);
    s.cloud.failNext("create", new QuotaError("no more"));
    s.pool.create(type1);
    await s.pool.settled();
    expect(logged(s, "quota error -- waiting for next instance shutdown")).toHaveLength(1);
    await s.clock.advance(10 * 60_000);
    expect(s.pool.atQuota()).toBe(true);
    // A shutdown alone does not clear it; the VM leaving the listing does.
    s.cloud.hold("destroy");
    expect(s.pool.shutdown(a)).toBe(true);
    await s.pool.syncNow();
    expect(s.pool.atQuota()).toBe(true);
    s.cloud.release();
    await s.pool.settled();
    await s.pool.syncNow();
    expect(s.pool.atQuota()).toBe(false);
  });

  it("is at quota at MaxInstances, counting pending creates and shutdown workers", async () => {
    const s = await setup({ config: { maxInstances: 2 } });
    const a = await readyWorker(s);
    s.cloud.hold("create");
    expect(s.pool.create(type1).ok).toBe(true);
    expect(logged(s, "now at MaxInstances limit of 2 instances")).toHaveLength(1);
    expect(s.pool.atQuota()).toBe(true);
    expect(s.pool.create(type1)).toEqual({ ok: false, reason: "at-quota" });
    s.cloud.release();
    await s.pool.settled();
    s.cloud.hold("destroy");
    s.pool.shutdown(a);
    expect(s.pool.atQuota()).toBe(true);
  });

  it.each([
    ["instance-type", [type1], [type1p, type2]],
    ["quota-group", [type1, type2], [type1p]], // the stub's groups: "t" and "t-p"
    ["all", [type1, type1p, type2], []],
  ] as const)("holds creates for a minute after a %s capacity error", async (scope, held, free) => {
    const s = await setup();
    s.cloud.failNext("create", new CapacityError("no capacity", scope));
    s.pool.create(type1);
    await s.pool.settled();
    expect(logged(s, "capacity error -- pausing instance create calls")).toHaveLength(1);
    for (const t of held) expect(s.pool.atCapacity(t)).toBe(true);
    for (const t of free) expect(s.pool.atCapacity(t)).toBe(false);
    expect(s.pool.create(type1)).toEqual({ ok: false, reason: "at-capacity" });
    await s.clock.advance(60_000);
    for (const t of held) expect(s.pool.atCapacity(t)).toBe(false);
    expect(s.pool.atQuota()).toBe(false);
  });

  it("keeps capacity keys of types and quota groups apart", async () => {
    // A provider type named like the quota group of another type must not collide.
    const tType = itype("t", "t", 0.1);
    const s = await setup({ config: { instanceTypes: { type1, t: tType } } });
    s.cloud.failNext("create", new CapacityError("no", "quota-group"));
    s.pool.create(type1); // group "t"
    await s.pool.settled();
    expect(s.pool.atCapacity(type1)).toBe(true);
    expect(s.pool.atCapacity(tType)).toBe(true); // same group "t"
    const s2 = await setup({ config: { instanceTypes: { type1, t: tType } } });
    s2.cloud.failNext("create", new CapacityError("no", "instance-type"));
    s2.pool.create(tType); // type key "t"
    await s2.pool.settled();
    expect(s2.pool.atCapacity(tType)).toBe(true);
    expect(s2.pool.atCapacity(type1)).toBe(false); // group "t" not held
  });

  it("throttles creates until a rate-limit error's earliest retry", async () => {
    const s = await setup();
    s.cloud.failNext("create", new RateLimitError("slow down", new Date(T0 + 30_000)));
    s.pool.create(type1);
    await s.pool.settled();
    expect(logged(s, "create failed")[0]!.fields).toMatchObject({
      isCapacityError: false,
      isQuotaError: false,
    });
    expect(s.pool.create(type1)).toEqual({ ok: false, reason: "throttled" });
    await s.clock.advance(30_000);
    expect(s.pool.create(type1).ok).toBe(true);
    // A rate-limit error whose retry time has passed is ignored.
    await s.pool.settled();
    s.cloud.failNext("create", new RateLimitError("old", new Date(T0)));
    s.pool.create(type1);
    await s.pool.settled();
    expect(s.pool.create(type1).ok).toBe(true);
  });

  it("refuses creates while the runner binary cannot be loaded, and says so in the health check", async () => {
    const s = await setup();
    const broken = new WorkerPool({
      instanceSet: s.cloud.instanceSet,
      executorFactory: inProcessExecutorFactory(s.cloud),
      clock: s.clock,
      logger: recordingLogger(s.logs),
      registry: new Registry(),
      config: {
        instanceSetId: instanceSetId(SET_ID),
        clusterId: "zzzzz",
        instanceTypes: { type1 },
        imageId: "",
        bootProbeCommand: "",
        deployRunnerBinary: "/nonexistent",
        publicKey: null,
        apiHost: "",
        apiInsecure: false,
        systemRootToken: "x",
        localKeepBlobBuffersPerVcpu: 0,
        driver: "stub",
      },
      readFile: () => Promise.reject(new Error("open /nonexistent: no such file or directory")),
    });
    expect(await broken.checkHealth()).toEqual({
      ok: false,
      error: "error loading runner binary: open /nonexistent: no such file or directory",
    });
    expect(broken.create(type1)).toEqual({ ok: false, reason: "runner-unavailable" });
    expect(logged(s, "failed to load runner program").length).toBeGreaterThan(0);
  });
});

describe("sync and adoption", () => {
  it("adopts listed VMs as unknown, with idle behaviour from their tags", async () => {
    const s = await setup();
    const a = await foreignVm(s);
    const b = await foreignVm(s, { [keys.idleBehavior]: "hold" });
    const c = await foreignVm(s, { [keys.idleBehavior]: "bogus" });
    const counting = s.pool.countWorkers();
    await s.pool.syncNow();
    expect(await counting).toEqual({ unknown: 3, booting: 0, idle: 0, running: 0, shutdown: 0 });
    expect(logged(s, "loaded initial instance list")[0]!.fields["N"]).toBe(3);
    expect(view(s.pool, a.id)).toMatchObject({ worker_state: "unknown", idle_behavior: "run" });
    expect(view(s.pool, b.id)).toMatchObject({ worker_state: "unknown", idle_behavior: "hold" });
    expect(view(s.pool, c.id)).toMatchObject({ worker_state: "unknown", idle_behavior: "run" });
    expect(logged(s, "instance appeared in cloud")[0]!.fields).toMatchObject({
      Instance: a.id,
      InstanceType: "type1",
      State: "unknown",
    });
  });

  it("drains VMs whose type left the config (unless held) and shuts them down once idle", async () => {
    const s = await setup();
    const gone = await foreignVm(s, {}, other);
    const held = await foreignVm(s, { [keys.idleBehavior]: "hold" }, other);
    await s.pool.syncNow();
    expect(view(s.pool, gone.id)).toMatchObject({
      idle_behavior: "drain",
      arvados_instance_type: "other",
      provider_instance_type: "",
      price: 0,
    });
    expect(view(s.pool, held.id)?.idle_behavior).toBe("hold");
    expect(
      logged(s, 'draining instance that was tagged with an unrecognized InstanceType "other"'),
    ).toHaveLength(1);
    await s.pool.probeNow(); // both boot: unknown → idle
    expect(view(s.pool, gone.id)?.worker_state).toBe("idle");
    await s.pool.probeNow(); // the drained one goes at the next tick
    expect(view(s.pool, gone.id)?.worker_state).toBe("shutdown");
    expect(view(s.pool, held.id)?.worker_state).toBe("idle");
  });

  it("a new pool over the same cloud rediscovers running containers without starting any twice", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    expect(s.pool.startContainer(id, ctr(1))).toBe(true);
    await s.pool.settled();
    await s.pool.stop();
    expect(s.cloud.vm(id)!.runs()).toHaveLength(1);

    const pool2 = await s.newPool();
    await pool2.syncNow();
    expect(view(pool2, id)?.worker_state).toBe("unknown");
    await pool2.probeNow();
    const v = view(pool2, id)!;
    expect(v.worker_state).toBe("running");
    expect(v.running_container_uuids).toEqual([ctr(1).uuid]);
    expect(v.last_container_uuid).toBe(ctr(1).uuid);
    expect(pool2.running()).toEqual(new Map([[ctr(1).uuid, null]]));
    expect(logged(s, "crunch-run process detected")).toHaveLength(1);
    expect(pool2.startContainer(id, ctr(1))).toBe(true);
    await pool2.settled();
    const detaches = commands(s, id).filter((c) => c.includes("--detach"));
    expect(detaches).toHaveLength(1);
    // The runner was already there with the right hash: no second upload.
    expect(commands(s, id).filter((c) => c.includes('cat >"$dstfile"'))).toHaveLength(1);
    expect(logged(s, "runner binary already exists on worker, with correct hash")).toHaveLength(1);
  });

  it("removes workers that vanish from the listing, abandoning their containers", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    const sub = s.pool.subscribe();
    await s.cloud.vanish(id);
    await s.pool.syncNow();
    expect(await sub.wait()).toBe(true);
    expect(s.pool.instances()).toEqual([]);
    expect(s.pool.running().size).toBe(0);
    expect(logged(s, "instance disappeared in cloud")).toHaveLength(1);
    const m = await s.registry
      .getSingleMetric("arvados_dispatchcloud_instances_disappeared")!
      .get();
    expect(m.values.find((v) => v.labels["state"] === "running")?.value).toBe(1);
    expect(await outcome(s.registry, "disappeared")).toBe(0); // success was reported first
  });

  it("suspends listing after a rate-limit error until its earliest retry", async () => {
    const s = await setup();
    s.cloud.failNext("list", new RateLimitError("slow", new Date(T0 + 20_000)));
    await s.pool.syncNow();
    expect(logged(s, "suspending remote calls due to rate-limit error")[0]!.fields).toMatchObject({
      CallType: "list instances",
    });
    await s.pool.syncNow();
    expect(s.cloud.calls("list")).toHaveLength(1);
    expect(s.pool.loaded).toBe(false);
    await s.clock.advance(20_000);
    await s.pool.syncNow();
    expect(s.cloud.calls("list")).toHaveLength(2);
    expect(s.pool.loaded).toBe(true);
  });

  it("saves the type and idle behaviour tags with the full tag map when they differ", async () => {
    const s = await setup();
    const vm = await foreignVm(s, { [keys.instanceType]: "type1", [keys.idleBehavior]: "run" });
    await s.pool.syncNow();
    expect(s.pool.setIdleBehavior(vm.id, "hold")).toEqual({ ok: true });
    await s.pool.settled();
    const calls = s.cloud.calls("setTags");
    expect(calls).toHaveLength(1);
    expect(calls[0]!.tags).toEqual({
      ...vm.tags,
      [keys.idleBehavior]: "hold",
    });
    expect(calls[0]!.tags![keys.instanceSecret]).toBe("f".repeat(40));
    // Listing now shows the saved tags: nothing more to save.
    await s.pool.syncNow();
    await s.pool.settled();
    expect(s.cloud.calls("setTags")).toHaveLength(1);
    expect(s.pool.setIdleBehavior("nope", "run")).toEqual({
      ok: false,
      error: "requested instance does not exist",
    });
  });
});

describe("probes", () => {
  it("boot probe, runner upload and run probe take a booting worker into service", async () => {
    const s = await setup();
    const id = await createWorker(s);
    await s.clock.advance(3000);
    await s.pool.probeNow();
    expect(commands(s, id)).toEqual([
      "cat /var/run/arvados-instance-secret", // the executor's host check
      "systemctl is-system-running",
      `md5sum ${RUNNER_CMD}`,
      `set -e; dstdir="/tmp/arvados-crunch-run/"; dstfile="${RUNNER_CMD}"; mkdir -p "$dstdir"; touch "$dstfile"; chmod 0755 "$dstdir" "$dstfile"; cat >"$dstfile"`,
      `${RUNNER_CMD} --list`,
    ]);
    expect(s.cloud.vm(id)!.files.get(RUNNER_CMD)).toEqual(RUNNER);
    expect(view(s.pool, id)?.worker_state).toBe("idle");
    expect(await outcome(s.registry, "success")).toBe(1);
    expect(logged(s, "probes succeeded, instance is in service")).toHaveLength(1);
    const ssh = await s.registry
      .getSingleMetric("arvados_dispatchcloud_instances_time_to_ssh_seconds")!
      .get();
    expect(ssh.values.find((v) => v.metricName?.endsWith("_sum"))?.value).toBe(3);
    const ready = await s.registry
      .getSingleMetric("arvados_dispatchcloud_instances_time_to_ready_for_container_seconds")!
      .get();
    expect(ready.values.find((v) => v.metricName?.endsWith("_count"))?.value).toBe(1);
    // Ready workers get only the run probe: the runner is uploaded once per VM.
    await s.pool.probeNow();
    expect(commands(s, id).slice(5)).toEqual([`${RUNNER_CMD} --list`]);
  });

  it("uses sudo for runner commands of non-root users but runs the boot probe verbatim", async () => {
    const s = await setup({ stub: { remoteUser: "crunch" } });
    const id = await createWorker(s);
    await s.pool.probeNow();
    const cmds = commands(s, id);
    expect(cmds[0]).toBe("sudo cat /var/run/arvados-instance-secret"); // the executor's check
    expect(cmds.slice(1)).toEqual([
      "systemctl is-system-running",
      `md5sum ${RUNNER_CMD}`,
      `sudo sh -c 'set -e; dstdir="/tmp/arvados-crunch-run/"; dstfile="${RUNNER_CMD}"; mkdir -p "$dstdir"; touch "$dstfile"; chmod 0755 "$dstdir" "$dstfile"; cat >"$dstfile"'`,
      `sudo ${RUNNER_CMD} --list`,
    ]);
  });

  it("uses CrunchRunCommand and deploys nothing when DeployRunnerBinary is empty", async () => {
    const s = await setup({ config: { deployRunnerBinary: "", bootProbeCommand: "" } });
    const id = await createWorker(s);
    await s.pool.probeNow();
    expect(commands(s, id)).toEqual([
      "cat /var/run/arvados-instance-secret",
      "true",
      "crunch-run --list",
    ]);
  });

  it("sends the price history with --stdin-prices", async () => {
    const s = await setup({ priceHistory: true });
    const id = await readyWorker(s);
    expect(commands(s, id).at(-1)).toBe(`${RUNNER_CMD} --list --stdin-prices`);
    expect(s.cloud.vm(id)!.lastPrices).toEqual([
      { StartTime: "2025-12-31T23:59:00Z", Price: 0.04 },
      { StartTime: "2025-12-31T23:58:00Z", Price: 0.03 },
    ]);
  });

  it("drains a worker that reports itself broken (run behaviour only) with outcome failure", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    const held = await readyWorker(s);
    s.pool.setIdleBehavior(held, "hold");
    s.cloud.vm(id)!.setBroken(true);
    s.cloud.vm(held)!.setBroken(true);
    await s.pool.probeNow();
    expect(logged(s, "probe reported broken instance")).toHaveLength(1);
    expect(view(s.pool, id)).toMatchObject({ worker_state: "shutdown", idle_behavior: "drain" });
    expect(view(s.pool, held)).toMatchObject({ worker_state: "idle", idle_behavior: "hold" });
    // Outcome success was already reported, so failure does not count again for this worker.
    expect(await outcome(s.registry, "failure")).toBe(0);
  });

  it("reports failure for a booting worker that says broken", async () => {
    const s = await setup();
    const id = await createWorker(s);
    s.cloud.vm(id)!.setBroken(true);
    await s.pool.probeNow();
    expect(await outcome(s.registry, "failure")).toBe(1);
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
  });

  it("treats a stale run lock as broken once it lasts longer than TimeoutStaleRunLock", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    s.cloud.vm(id)!.markStale(ctr(1).uuid);
    await s.pool.probeNow();
    expect(logged(s, "probe reported stale run lock")).toHaveLength(1);
    // The stale container is not running: it ended.
    expect(s.pool.running().get(ctr(1).uuid)).toBeInstanceOf(Date);
    expect(view(s.pool, id)?.worker_state).toBe("idle");
    await s.clock.advance(5000);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.idle_behavior).toBe("run"); // not longer than 5 s yet
    await s.clock.advance(1);
    await s.pool.probeNow();
    expect(logged(s, "reporting broken after reporting stale run lock for too long")).toHaveLength(
      1,
    );
    expect(view(s.pool, id)).toMatchObject({ idle_behavior: "drain", worker_state: "shutdown" });
  });

  it("skips a worker whose previous probe is still running", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.cloud.vm(id)!.setSilent(true);
    const first = s.pool.probeNow();
    await s.clock.advance(0);
    await s.pool.probeNow();
    expect(s.logs.some((l) => l.msg === "still waiting for last probe to finish")).toBe(true);
    await s.clock.advance(60_000); // the probe command times out
    await first;
    expect(logged(s, "probe failed")).toHaveLength(1);
  });

  it("never launches more than MaxProbesPerSecond probes", async () => {
    const s = await setup({ config: { maxProbesPerSecond: 4, probeIntervalMs: 2000 } });
    for (let i = 0; i < 10; i++) await foreignVm(s);
    await s.pool.syncNow();
    s.pool.start();
    for (let i = 0; i < 12; i++) await s.clock.advance(500);
    const times = s.cloud
      .vms()
      .flatMap((vm) =>
        vm.commands.filter((c) => c.command.startsWith("systemctl")).map((c) => c.at),
      )
      .sort((a, b) => a - b);
    expect(times.length).toBeGreaterThanOrEqual(10);
    for (let i = 4; i < times.length; i++)
      expect(times[i]! - times[i - 4]!).toBeGreaterThanOrEqual(1000);
  });
});

/**
 * Real time as the pool sees it: `now()` in whole milliseconds (like Date.now()) and timers
 * that fire up to 1 ms early by that reading, as Node's setTimeout may. Sleeps of 1 ms or less
 * run their full length, so time always moves on.
 */
function earlyTimerClock(manual: ManualClock): Clock {
  return {
    now: () => Math.floor(manual.now()),
    sleep: (ms, signal) => manual.sleep(ms > 1 ? ms - 1 : ms, signal),
  };
}

describe("probe pacing", () => {
  for (const perSecond of [100, 30]) {
    it(`never launches more than ${perSecond} probes in any 1 s window when timers fire early`, async () => {
      const s = await setup({
        config: { maxProbesPerSecond: perSecond, probeIntervalMs: 200 },
        poolClock: earlyTimerClock,
      });
      for (let i = 0; i < 40; i++) await foreignVm(s);
      await s.pool.syncNow();
      await s.pool.probeNow(); // unpaced: every worker idle, so each probe is one --list
      const startedAt = s.clock.now();
      s.pool.start();
      await s.clock.advance(4000);
      // Launch times as the pool's clock reads them (whole ms), where the invariant holds.
      const times = s.cloud
        .vms()
        .flatMap((vm) =>
          vm.commands
            .filter((c) => c.at > startedAt && c.command.includes("--list"))
            .map((c) => Math.floor(c.at)),
        )
        .sort((a, b) => a - b);
      // The loop kept busy (40 workers every 200 ms is more than the limit allows) ...
      expect(times.length).toBeGreaterThan(3 * perSecond);
      // ... and no window [t, t + 1000) holds more than the limit.
      const busiest = Math.max(
        ...times.map((t) => times.filter((u) => u >= t && u < t + 1000).length),
      );
      expect(busiest).toBe(perSecond);
    });
  }
});

describe("stop signal listeners", () => {
  it("lifts the listener cap on its own stop signal and leaves no listener behind", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on("warning", onWarning);
    cleanups.push(() => {
      process.off("warning", onWarning);
      return Promise.resolve();
    });
    // Like the SSH executor: a listener on the caller's signal while a command runs. --list
    // commands are held until released, so all probes are in flight at once.
    let stopSignal: AbortSignal | undefined;
    let holding = false;
    let held = 0;
    let release = (): void => {};
    const gate = new Promise<void>((r) => (release = r));
    const s = await setup({
      config: { maxProbesPerSecond: 1000, probeIntervalMs: 1000 },
      executorFactory: (inner) => (target) => {
        const ex = inner(target);
        return {
          setTarget: (t) => ex.setTarget(t),
          close: () => ex.close(),
          async execute(command: string, options: ExecuteOptions = {}) {
            const signal = options.signal;
            if (signal === undefined) return ex.execute(command, options);
            stopSignal = signal;
            const onAbort = (): void => {};
            signal.addEventListener("abort", onAbort);
            try {
              if (command.includes("--list") && holding) {
                held++;
                await gate;
              }
              return await ex.execute(command, options);
            } finally {
              signal.removeEventListener("abort", onAbort);
            }
          },
        };
      },
    });
    for (let i = 0; i < 30; i++) await foreignVm(s);
    await s.pool.syncNow();
    await s.pool.probeNow();
    expect(stopSignal).toBeDefined();
    const signal = stopSignal!;
    holding = true;
    s.pool.start();
    await s.clock.waitForSleepers(2); // the sync and probe loops wait
    const idle = getEventListeners(signal, "abort").length;
    await s.clock.advance(1100); // the tick at +1 s launches 30 probes 1 ms apart
    expect(held).toBe(30);
    expect(getEventListeners(signal, "abort").length).toBeGreaterThanOrEqual(idle + 30);
    release();
    await s.pool.settled();
    await new Promise((r) => setImmediate(r));
    expect(getEventListeners(signal, "abort").length).toBeLessThanOrEqual(idle);
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    await s.pool.stop();
    await new Promise((r) => setImmediate(r));
    expect(getEventListeners(signal, "abort")).toEqual([]);
  });
});

describe("transitions", () => {
  it("unknown → idle on boot, deploy and run probes; running if containers are found", async () => {
    const s = await setup();
    const a = await foreignVm(s);
    const b = await foreignVm(s);
    await s.cloud.vm(b.id)!.exec(`crunch-run --detach --stdin-config '${ctr(7).uuid}'`, {
      stdin: () => Promise.resolve(Buffer.from("{}")),
    });
    await s.pool.syncNow();
    await s.pool.probeNow();
    expect(view(s.pool, a.id)?.worker_state).toBe("idle");
    expect(view(s.pool, b.id)?.worker_state).toBe("running");
    expect(await outcome(s.registry, "success")).toBe(2);
  });

  it("unknown stays unknown, tracking containers, while the boot probe fails", async () => {
    const s = await setup({ config: { bootProbeCommand: "false" } });
    const vm = await foreignVm(s);
    await s.cloud.vm(vm.id)!.exec(`crunch-run --detach --stdin-config '${ctr(1).uuid}'`, {
      stdin: () => Promise.resolve(Buffer.from("{}")),
    });
    await s.pool.syncNow();
    await s.pool.probeNow();
    expect(view(s.pool, vm.id)).toMatchObject({
      worker_state: "unknown",
      running_container_uuids: [ctr(1).uuid],
    });
    expect(logged(s, "crunch-run probe succeeded, but boot probe is still failing")).toHaveLength(
      1,
    );
    // Containers keep it alive past TimeoutBooting (Arvados would destroy it: a deliberate difference).
    await s.clock.advance(10 * 60_000);
    await s.pool.probeNow();
    expect(view(s.pool, vm.id)?.worker_state).toBe("unknown");
  });

  it("unknown → shutdown (aborted) at TimeoutBooting since it appeared", async () => {
    const s = await setup({ config: { bootProbeCommand: "false" } });
    const vm = await foreignVm(s);
    await s.pool.syncNow();
    await s.clock.advance(10 * 60_000 - 1);
    await s.pool.probeNow();
    expect(view(s.pool, vm.id)?.worker_state).toBe("unknown");
    await s.clock.advance(1);
    await s.pool.probeNow();
    expect(view(s.pool, vm.id)?.worker_state).toBe("shutdown");
    expect(await outcome(s.registry, "aborted")).toBe(1);
    await s.pool.settled();
    expect(s.cloud.vm(vm.id)).toBeUndefined(); // destroyed
  });

  it("booting → shutdown with outcome failure when probes fail for TimeoutBooting", async () => {
    const s = await setup({
      stub: { bootDelayMs: 24 * HOUR },
      config: { timeoutBootingMs: 60_000 },
    });
    const id = await createWorker(s);
    await s.clock.advance(59_999);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("booting");
    await s.clock.advance(1);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(await outcome(s.registry, "failure")).toBe(1);
    expect(logged(s, "boot failed")).toHaveLength(1);
    expect(
      s.logs.some((l) =>
        l.msg.startsWith("new instance unresponsive, shutting down -- `arvados-server cloudtest`"),
      ),
    ).toBe(true);
  });

  it("a booting worker whose run probe alone fails is shut down without an outcome, then counts as disappeared", async () => {
    const s = await setup({
      config: {
        deployRunnerBinary: "",
        crunchRunCommand: "/opt/missing/crunch-run",
        timeoutBootingMs: 60_000,
      },
    });
    const id = await createWorker(s);
    await s.pool.probeNow();
    expect(logged(s, "probe failed")[0]!.fields["stderr"]).toContain("not found");
    await s.clock.advance(60_000);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(logged(s, "boot failed")).toHaveLength(0);
    expect(await outcome(s.registry, "failure")).toBe(0);
    await s.pool.settled();
    await s.pool.syncNow();
    expect(await outcome(s.registry, "disappeared")).toBe(1);
  });

  it("a held booting worker is never shut down for failing probes", async () => {
    const s = await setup({
      stub: { bootDelayMs: 24 * HOUR },
      config: { timeoutBootingMs: 60_000 },
    });
    const id = await createWorker(s);
    s.pool.setIdleBehavior(id, "hold");
    await s.clock.advance(120_000);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("booting");
  });

  it("booting → shutdown (aborted) when drained", async () => {
    const s = await setup({ stub: { bootDelayMs: HOUR } });
    const id = await createWorker(s);
    expect(s.pool.setIdleBehavior(id, "drain")).toEqual({ ok: true });
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(await outcome(s.registry, "aborted")).toBe(1);
  });

  it("booting/idle → shutdown by the scheduler, unless held or running", async () => {
    const s = await setup({ stub: { bootDelayMs: HOUR } });
    const booting = await createWorker(s);
    expect(s.pool.shutdown(booting)).toBe(true);
    expect(view(s.pool, booting)?.worker_state).toBe("shutdown");
    const ready = async () => {
      const id = await createWorker(s);
      s.cloud.vm(id)!.bootNow();
      await s.pool.probeNow();
      expect(view(s.pool, id)?.worker_state).toBe("idle");
      return id;
    };
    const idle = await ready();
    const held = await ready();
    const busy = await ready();
    s.pool.setIdleBehavior(held, "hold");
    s.pool.startContainer(busy, ctr(1));
    expect(s.pool.shutdown(held)).toBe(false);
    expect(s.pool.shutdown(busy)).toBe(false);
    expect(s.pool.shutdown("nonexistent")).toBe(false);
    expect(s.pool.shutdown(idle)).toBe(true);
    expect(view(s.pool, idle)?.worker_state).toBe("shutdown");
    expect(logged(s, "shutdown requested")).toHaveLength(5);
  });

  it("idle → running on StartContainer, with the exact command and stdin", async () => {
    const s = await setup({
      config: { crunchRunArgumentsList: ["--foo", "--extra='args'"], runtimeEngine: "stub" },
    });
    const id = await readyWorker(s);
    expect(s.pool.startContainer(id, ctr(1))).toBe(true);
    expect(view(s.pool, id)).toMatchObject({
      worker_state: "running",
      running_container_uuids: [ctr(1).uuid],
    });
    await s.pool.settled();
    expect(commands(s, id).at(-1)).toBe(
      `${RUNNER_CMD} --detach --stdin-config '--runtime-engine=stub' '--foo' '--extra='\\''args'\\''' '${ctr(1).uuid}'`,
    );
    const run = s.cloud.vm(id)!.runs()[0]!;
    expect(run.args).toEqual(["--runtime-engine=stub", "--foo", "--extra='args'"]);
    expect(run.config).toMatchObject({ Env: { ARVADOS_API_TOKEN: "root-token" }, Cluster: null });
    expect(view(s.pool, id)?.last_container_uuid).toBe(ctr(1).uuid);
    expect(logged(s, "crunch-run process started")).toHaveLength(1);
    const q = await s.registry
      .getSingleMetric("arvados_dispatchcloud_containers_time_from_queue_to_crunch_run_seconds")!
      .get();
    expect(q.values.find((v) => v.metricName?.endsWith("_sum"))?.value).toBe(1);
  });

  it("refuses StartContainer on missing, booting, held or drained workers", async () => {
    const s = await setup({ stub: { bootDelayMs: HOUR } });
    const booting = await createWorker(s);
    expect(s.pool.startContainer(booting, ctr(1))).toBe(false);
    expect(s.pool.startContainer("nope", ctr(1))).toBe(false);
    s.cloud.vm(booting)!.bootNow();
    await s.pool.probeNow();
    s.pool.setIdleBehavior(booting, "hold");
    expect(s.pool.startContainer(booting, ctr(1))).toBe(false);
  });

  it("idle → running when the run probe lists a container; running → idle when it ends", async () => {
    const s = await setup({ stub: { containerRunTimeMs: 30_000 } });
    const id = await readyWorker(s);
    await s.cloud.vm(id)!.exec(`crunch-run --detach --stdin-config '${ctr(2).uuid}'`, {
      stdin: () => Promise.resolve(Buffer.from("{}")),
    });
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("running");
    await s.clock.advance(30_000);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("idle");
    expect(logged(s, "crunch-run process ended")).toHaveLength(1);
    expect(s.pool.running()).toEqual(new Map([[ctr(2).uuid, new Date(T0 + 30_000)]]));
    s.pool.forgetContainer(ctr(2).uuid);
    expect(s.pool.running().size).toBe(0);
  });

  it("idle → shutdown at TimeoutIdle since last busy, and at once when drained", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    const drained = await readyWorker(s);
    await s.clock.advance(59_999);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("idle");
    s.pool.setIdleBehavior(drained, "drain");
    expect(view(s.pool, drained)?.worker_state).toBe("shutdown");
    await s.clock.advance(1);
    await s.pool.probeNow();
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(logged(s, "shutdown worker")[0]!.fields).toMatchObject({ State: "idle" });
  });

  it("idle/running → shutdown when probes fail for TimeoutProbe, containers included", async () => {
    const s = await setup({ config: { timeoutProbeMs: 120_000 } });
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    await s.pool.probeNow();
    s.cloud.vm(id)!.setSilent(true);
    for (let i = 0; i < 2; i++) {
      const p = s.pool.probeNow();
      await s.clock.advance(60_000);
      await p;
      expect(view(s.pool, id)?.worker_state).toBe("running");
    }
    const p = s.pool.probeNow(); // starts 120 s after the last success
    await s.clock.advance(60_000);
    await p;
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(logged(s, "instance unresponsive, shutting down")).toHaveLength(1);
    // The container stays in Running() until the VM leaves the listing.
    expect(s.pool.running().get(ctr(1).uuid)).toBeNull();
  });

  it("bounds a probe command by TimeoutProbe when that is under a minute", async () => {
    const s = await setup({ config: { timeoutProbeMs: 20_000 } });
    const id = await readyWorker(s);
    s.cloud.vm(id)!.setSilent(true);
    const p = s.pool.probeNow();
    await s.clock.advance(20_000); // not the full minute
    await p;
    expect(logged(s, "probe failed")).toHaveLength(1);
    const second = s.pool.probeNow(); // starts 20 s after the last success
    await s.clock.advance(20_000);
    await second;
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(logged(s, "instance unresponsive, shutting down")).toHaveLength(1);
  });

  it("any → shutdown on KillInstance, even when held", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.setIdleBehavior(id, "hold");
    expect(s.pool.killInstance(id, "via management API: test")).toEqual({ ok: true });
    expect(view(s.pool, id)?.worker_state).toBe("shutdown");
    expect(logged(s, "shutting down")[0]!.fields["Reason"]).toBe("via management API: test");
    expect(s.pool.killInstance("nope", "x")).toEqual({ ok: false, error: "instance not found" });
  });

  it("shutdown: destroy is retried after TimeoutShutdown until the VM is gone", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.cloud.failNext("destroy", new Error("destroy failed once"));
    s.cloud.failNext("destroy", new Error("destroy failed twice"));
    s.pool.killInstance(id, "test");
    await s.pool.settled();
    expect(logged(s, "shutdown failed")).toHaveLength(1);
    await s.clock.advance(10_000);
    await s.pool.syncNow(); // not more than TimeoutShutdown yet
    await s.pool.settled();
    expect(s.cloud.calls("destroy")).toHaveLength(1);
    await s.clock.advance(1);
    await s.pool.syncNow();
    await s.pool.settled();
    expect(logged(s, "worker still listed after shutdown; retrying")).toHaveLength(1);
    expect(s.cloud.calls("destroy")).toHaveLength(2);
    await s.clock.advance(10_001);
    await s.pool.syncNow();
    await s.pool.settled();
    expect(s.cloud.calls("destroy")).toHaveLength(3);
    expect(s.cloud.vm(id)).toBeUndefined();
    await s.pool.syncNow();
    expect(s.pool.instances()).toEqual([]);
    const gone = await s.registry
      .getSingleMetric(
        "arvados_dispatchcloud_instances_time_from_shutdown_request_to_disappearance_seconds",
      )!
      .get();
    expect(gone.values.find((v) => v.metricName?.endsWith("_sum"))?.value).toBe(0); // from the latest attempt
  });
});

describe("killing containers", () => {
  it("sends SIGTERM at once and every TimeoutSignal; success ends the runner", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    const vm = s.cloud.vm(id)!;
    vm.unkillable = true;
    expect(s.pool.killContainer(ctr(1).uuid, "test")).toBe(true);
    expect(s.pool.killContainer(ctr(1).uuid, "again")).toBe(true); // no second loop
    await s.pool.settled();
    const kills = () =>
      vm.commands.filter((c) => c.command.includes("--kill")).map((c) => c.at - T0);
    expect(kills()).toEqual([0]);
    expect(commands(s, id).at(-1)).toBe(`${RUNNER_CMD} --kill 15 ${ctr(1).uuid}`);
    await s.clock.advance(5000);
    await s.pool.settled();
    expect(kills()).toEqual([0, 5000]);
    expect(logged(s, "kill attempt unsuccessful")).toHaveLength(2);
    vm.unkillable = false;
    await s.clock.advance(5000);
    await s.pool.settled();
    expect(kills()).toEqual([0, 5000, 10000]);
    expect(view(s.pool, id)?.worker_state).toBe("idle");
    expect(s.pool.running().get(ctr(1).uuid)).toEqual(new Date(T0 + 10_000));
    await s.clock.advance(60_000);
    expect(kills()).toHaveLength(3);
    expect(s.pool.killContainer(ctr(1).uuid, "gone")).toBe(false);
  });

  it("gives up after TimeoutTERM and drains the worker, which then shuts down", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    s.cloud.vm(id)!.unkillable = true;
    s.pool.killContainer(ctr(1).uuid, "test");
    await s.pool.settled();
    await s.clock.advance(120_000);
    await s.pool.settled();
    expect(view(s.pool, id)?.worker_state).toBe("running");
    await s.clock.advance(5000); // first tick past the deadline
    await s.pool.settled();
    expect(logged(s, "unkillable container, draining worker")).toHaveLength(1);
    expect(view(s.pool, id)).toMatchObject({ idle_behavior: "drain", worker_state: "shutdown" });
  });

  it("a held worker with an unkillable container stays up", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    s.pool.setIdleBehavior(id, "hold");
    s.cloud.vm(id)!.unkillable = true;
    s.pool.killContainer(ctr(1).uuid, "test");
    await s.clock.advance(130_000);
    await s.pool.settled();
    expect(logged(s, "unkillable container, but worker has IdleBehavior=Hold")).toHaveLength(1);
    expect(view(s.pool, id)).toMatchObject({ idle_behavior: "hold", worker_state: "running" });
  });
});

describe("metrics", () => {
  it("registers every pool metric with Arvados's names and labels", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    await s.clock.advance(4000);
    await createWorker(s, type2);
    const names = (await s.registry.getMetricsAsJSON()).map((m) => m.name).sort();
    expect(names).toEqual(
      [
        "containers_running",
        "probe_age_seconds_max",
        "probe_age_seconds_median",
        "instances_total",
        "instances_price",
        "vcpus_total",
        "memory_bytes_total",
        "boot_outcomes",
        "instances_disappeared",
        "instances_time_to_ssh_seconds",
        "instances_time_to_ready_for_container_seconds",
        "instances_time_from_shutdown_request_to_disappearance_seconds",
        "containers_time_from_queue_to_crunch_run_seconds",
        "instances_run_probe_duration_seconds",
      ]
        .map((n) => `arvados_dispatchcloud_${n}`)
        .sort(),
    );
    const text = await s.registry.metrics();
    expect(text).toContain("arvados_dispatchcloud_containers_running 1");
    expect(text).toContain(
      'arvados_dispatchcloud_instances_total{category="inuse",instance_type="type1"} 1',
    );
    expect(text).toContain(
      'arvados_dispatchcloud_instances_total{category="booting",instance_type="type2"} 1',
    );
    expect(text).toContain(
      'arvados_dispatchcloud_instances_total{category="hold",instance_type="type1p"} 0',
    );
    expect(text).toContain('arvados_dispatchcloud_instances_price{category="inuse"} 0.1');
    expect(text).toContain('arvados_dispatchcloud_vcpus_total{category="booting"} 2');
    expect(text).toContain(`arvados_dispatchcloud_memory_bytes_total{category="inuse"} ${4 << 30}`);
    expect(text).toContain("arvados_dispatchcloud_probe_age_seconds_median 0");
    expect(text).toContain('arvados_dispatchcloud_boot_outcomes{outcome="disappeared"} 0');
    expect(text).toContain('arvados_dispatchcloud_instances_disappeared{state="shutdown"} 0');
    expect(text).toContain("arvados_dispatchcloud_probe_age_seconds_max 4");
    expect(text).toContain(
      'arvados_dispatchcloud_instances_run_probe_duration_seconds_count{outcome="success"}',
    );
    expect(text).toMatch(/arvados_dispatchcloud_instances_time_to_ssh_seconds\{quantile="0.99"\}/);
  });
});

describe("public API details", () => {
  it("sorts instances by id then type, and Running() merges exited entries", async () => {
    const s = await setup();
    const a = await readyWorker(s, type2);
    const b = await readyWorker(s, type1);
    s.cloud.hold("create");
    s.pool.create(type2);
    s.pool.create(type1);
    expect(s.pool.instances().map((v) => [v.instance, v.arvados_instance_type])).toEqual([
      ["", "type1"],
      ["", "type2"],
      [a, "type2"],
      [b, "type1"],
    ]);
    expect(s.pool.unallocated()).toEqual(
      new Map([
        ["type1", 2],
        ["type2", 2],
      ]),
    );
    s.cloud.release();
  });

  it("calls subscribed listeners after notifications, coalesced, until unsubscribed", async () => {
    const s = await setup();
    let calls = 0;
    const unsubscribe = s.pool.subscribe(() => calls++);
    await readyWorker(s);
    await s.clock.advance(0);
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(5); // create, appear, in service… coalesce
    unsubscribe();
    const before = calls;
    s.pool.killInstance(s.cloud.vms()[0]!.id, "x");
    await s.clock.advance(0);
    expect(calls).toBe(before);
  });

  it("takes the controller's created_at for the queue→crunch-run metric", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.startContainer(id, { uuid: ctr(1).uuid, created_at: "2025-12-31T23:59:50Z" });
    await s.pool.settled();
    const q = await s.registry
      .getSingleMetric("arvados_dispatchcloud_containers_time_from_queue_to_crunch_run_seconds")!
      .get();
    expect(q.values.find((v) => v.metricName?.endsWith("_sum"))?.value).toBe(10);
  });

  it("Stop() destroys nothing and kills nothing", async () => {
    const s = await setup();
    const id = await readyWorker(s);
    s.pool.start();
    s.pool.startContainer(id, ctr(1));
    await s.pool.settled();
    await s.pool.stop();
    await s.clock.advance(HOUR);
    expect(s.cloud.calls("destroy")).toHaveLength(0);
    expect(s.cloud.vm(id)!.runs()).toHaveLength(1);
    expect(s.cloud.vm(id)!.commands.filter((c) => c.command.includes("--kill"))).toHaveLength(0);
  });
});
