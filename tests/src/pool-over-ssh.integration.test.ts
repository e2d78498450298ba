/*
 * The worker pool driving fake VMs over real SSH: the stub cloud serves each VM with an
 * in-process ssh2 server on 127.0.0.1 and the pool talks to it through the real SSH executor,
 * with the dispatcher key as both the key installed on new VMs and the executor's identity.
 *
 * One ManualClock drives the pool, the stub cloud (boot delays, container run time, broken and
 * silent knobs) and the executor's command timeouts, so pool timeouts cost no wall time. SSH
 * handshakes take real time: the tests await the pool's own `probeNow()`/`settled()`, or wait on
 * a condition, never sleep.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import {
  instanceSetId,
  type InstanceType,
  type InstanceView,
  type Timers as ExecutorClock,
} from "@dispatch-cloud/arvados-types";
import { describe, expect, it, vi } from "vitest";
import { Registry } from "prom-client";
import {
  INSTANCE_SECRET_PATH,
  createTags,
  generateEd25519KeyPair,
  initCommandWithSecret,
  tagKeys,
  type SshKeyPair,
} from "@dispatch-cloud/cloud-driver-api";
import {
  ManualClock,
  cleanupAfterEach,
  recordingLogger,
  testInstanceType,
  type LogEntry,
} from "@dispatch-cloud/cloud-driver-api/testing";
import { createStubCloud, type FakeVm, type StubCloud } from "@dispatch-cloud/driver-stub/testing";
import type { StubParameters } from "@dispatch-cloud/driver-stub";
import { createSshExecutorFactory } from "@dispatch-cloud/ssh-executor";
import {
  WorkerPool,
  detachStdin,
  installCommand,
  type WorkerPoolConfig,
} from "@dispatch-cloud/worker-pool";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const HOUR = 3_600_000;
const SET_ID = "zzzzz-gj3su-000000000000000";
const keys = tagKeys();
const RUNNER = Buffer.from("#!/bin/sh\necho fake crunch-run\n");
const RUNNER_MD5 = createHash("md5").update(RUNNER).digest("hex");
const RUNNER_CMD = `/tmp/arvados-crunch-run/crunch-run~${RUNNER_MD5}`;
const SECRET_CMD = `cat ${INSTANCE_SECRET_PATH}`;
const BOOT_PROBE = "systemctl is-system-running";
const MD5_CMD = `md5sum ${RUNNER_CMD}`;
const INSTALL_CMD = installCommand(RUNNER_CMD, "root");
const LIST_CMD = `${RUNNER_CMD} --list`;
const TIMEOUT_PROBE_MS = 2_000;
const TIMEOUT_BOOTING_MS = 20_000;
const TIMEOUT_SHUTDOWN_MS = 10_000;
/** Bounded waits on things that take real time (SSH handshakes); far above what they need. */
const WAIT = { timeout: 5_000, interval: 5 };

const type1: InstanceType = testInstanceType({
  Name: "type1",
  ProviderType: "t1.small",
  RAM: 4 << 30,
  Price: 0.1,
});

/** The executor's timer interface on the ManualClock, so per-command timeouts follow test time. */
function executorClock(clock: ManualClock): ExecutorClock {
  return {
    setTimeout(fn, ms) {
      const ac = new AbortController();
      clock.sleep(ms, ac.signal).then(fn, () => undefined);
      return ac;
    },
    clearTimeout(handle) {
      (handle as AbortController).abort();
    },
  };
}

const cleanups = cleanupAfterEach();

interface Harness {
  readonly clock: ManualClock;
  readonly cloud: StubCloud;
  readonly key: SshKeyPair;
  readonly logs: LogEntry[];
  readonly pool: WorkerPool;
  readonly registry: Registry;
  /** Another pool over the same cloud, clock and key: a restarted dispatcher. */
  newPool(): Promise<WorkerPool>;
}

async function setup(
  opts: { stub?: Partial<StubParameters>; config?: Partial<WorkerPoolConfig> } = {},
): Promise<Harness> {
  const clock = new ManualClock(T0);
  const key = generateEd25519KeyPair("dispatcher");
  const logs: LogEntry[] = [];
  const dir = await mkdtemp(path.join(tmpdir(), "pool-over-ssh-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const runnerPath = path.join(dir, "crunch-run");
  await writeFile(runnerPath, RUNNER);
  const cloud = createStubCloud({
    clock,
    serveSsh: true,
    parameters: { containerRunTimeMs: HOUR, ...opts.stub },
  });
  cleanups.push(() => cloud.stop());
  const make = async () => {
    const registry = new Registry();
    const logger = recordingLogger(logs);
    const pool = new WorkerPool({
      instanceSet: cloud.instanceSet,
      executorFactory: createSshExecutorFactory({
        privateKey: key.privateKey,
        logger: logger.child({ Component: "ssh" }),
        clock: executorClock(clock),
      }),
      clock,
      logger,
      registry,
      random: () => 0,
      config: {
        instanceSetId: instanceSetId(SET_ID),
        clusterId: "zzzzz",
        instanceTypes: { type1 },
        imageId: "img-1",
        bootProbeCommand: BOOT_PROBE,
        deployRunnerBinary: runnerPath,
        publicKey: key.publicKey,
        apiHost: "",
        apiInsecure: false,
        systemRootToken: "root-token-for-the-test",
        localKeepBlobBuffersPerVcpu: 0,
        driver: "stub",
        maxConcurrentInstanceCreateOps: 0,
        timeoutProbeMs: TIMEOUT_PROBE_MS,
        timeoutBootingMs: TIMEOUT_BOOTING_MS,
        timeoutShutdownMs: TIMEOUT_SHUTDOWN_MS,
        // Idle shutdown is not under test here; keep it out of the way of clock jumps.
        timeoutIdleMs: 10 * HOUR,
        ...opts.config,
      },
    });
    cleanups.push(() => pool.stop());
    expect(await pool.checkHealth()).toEqual({ ok: true });
    return { pool, registry };
  };
  const first = await make();
  return {
    clock,
    cloud,
    key,
    logs,
    pool: first.pool,
    registry: first.registry,
    newPool: async () => (await make()).pool,
  };
}

const view = (pool: WorkerPool, id: string): InstanceView | undefined =>
  pool.instances().find((v) => v.instance === id);
const state = (pool: WorkerPool, id: string) => view(pool, id)?.worker_state;
const commands = (vm: FakeVm): string[] => vm.commands.map((c) => c.command);
const logged = (h: Harness, msg: string) => h.logs.filter((l) => l.msg === msg);

async function outcome(registry: Registry, o: string): Promise<number> {
  const m = await registry.getSingleMetric("arvados_dispatchcloud_boot_outcomes")!.get();
  return m.values.find((v) => v.labels["outcome"] === o)?.value ?? 0;
}

const ctr = (n: number) => ({
  uuid: `zzzzz-dz642-${String(n).padStart(15, "0")}`,
  createdAt: new Date(T0 - 1000),
});

/** Ask the pool for a VM and wait for the create call to return; the worker is booting. */
async function createVm(h: Harness): Promise<FakeVm> {
  expect(h.pool.create(type1).ok).toBe(true);
  await h.pool.settled();
  const vm = h.cloud.vms().at(-1)!;
  expect(state(h.pool, vm.id)).toBe("booting");
  return vm;
}

/** Create a VM and probe it into service over SSH. */
async function readyVm(h: Harness): Promise<FakeVm> {
  const vm = await createVm(h);
  await h.pool.probeNow();
  expect(state(h.pool, vm.id)).toBe("idle");
  return vm;
}

describe("worker pool over real SSH to stub VMs", () => {
  it("boots a VM through the secret host-key check, uploads the runner once, detaches and lists a container", async () => {
    const h = await setup({ stub: { bootDelayMs: 5_000 } });
    const vm = await createVm(h);
    expect(vm.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(vm.authorizedKey).toBe(h.key.publicKey);

    // Not booted yet: the VM's sshd refuses connections, so no command reaches it.
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("booting");
    expect(commands(vm)).toEqual([]);

    await h.clock.advance(5_000);
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("idle");
    // The host key is accepted only after the VM shows the secret from its tag; then the boot
    // probe, the runner check that finds nothing, the upload, and the run probe.
    expect(commands(vm)).toEqual([SECRET_CMD, BOOT_PROBE, MD5_CMD, INSTALL_CMD, LIST_CMD]);
    expect(vm.files.get(INSTANCE_SECRET_PATH)!.toString()).toBe(vm.tags[keys.instanceSecret]);
    expect(vm.files.get(RUNNER_CMD)).toEqual(RUNNER);
    expect(await outcome(h.registry, "success")).toBe(1);
    expect(logged(h, "probes succeeded, instance is in service")).toHaveLength(1);

    // A ready worker's probe is the run probe alone, on the same (already verified) connection.
    await h.pool.probeNow();
    expect(commands(vm).slice(5)).toEqual([LIST_CMD]);

    const c = ctr(1);
    expect(h.pool.startContainer(vm.id, c)).toBe(true);
    await h.pool.settled();
    const detach = commands(vm).slice(6);
    expect(detach).toEqual([
      `${RUNNER_CMD} --detach --stdin-config '--runtime-engine=docker' '${c.uuid}'`,
    ]);
    // The token travels on stdin, never in argv.
    expect(detach[0]).not.toContain("root-token-for-the-test");
    const runs = vm.runs();
    expect(runs).toHaveLength(1);
    expect(runs[0]!.uuid).toBe(c.uuid);
    expect(runs[0]!.args).toEqual(["--runtime-engine=docker"]);
    // The stdin document arrived intact over the SSH channel.
    const sent = detachStdin({
      uuid: c.uuid,
      instanceType: type1,
      address: vm.address,
      apiHost: "",
      apiInsecure: false,
      systemRootToken: "root-token-for-the-test",
      localKeepBlobBuffersPerVcpu: 0,
      driver: "stub",
      clusterConfigJson: undefined,
    });
    expect(runs[0]!.config).toEqual(JSON.parse(sent));
    expect((runs[0]!.config as { Env: Record<string, string> }).Env["ARVADOS_API_TOKEN"]).toBe(
      "root-token-for-the-test",
    );

    // The run probe lists it: had --list not shown it, the pool would record it as exited.
    await h.pool.probeNow();
    expect(view(h.pool, vm.id)).toMatchObject({
      worker_state: "running",
      running_container_uuids: [c.uuid],
      last_container_uuid: c.uuid,
    });
    expect(h.pool.running().get(c.uuid as never)).toBeNull();

    // Once crunch-run on the VM finishes, the next --list no longer shows it.
    await h.clock.advance(HOUR);
    expect(vm.runs()).toEqual([]);
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("idle");
    expect(h.pool.running().get(c.uuid as never)).toBeInstanceOf(Date);
    expect(commands(vm).filter((x) => x === INSTALL_CMD)).toHaveLength(1);
  });

  it("a new pool adopts the VM, finds the runner in place and rediscovers the container without starting it again", async () => {
    const h = await setup();
    const vm = await readyVm(h);
    const c = ctr(2);
    expect(h.pool.startContainer(vm.id, c)).toBe(true);
    await h.pool.settled();
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("running");
    const pid = vm.runs()[0]!.pid;
    await h.pool.stop();

    const before = vm.commands.length;
    const pool2 = await h.newPool();
    await pool2.syncNow();
    expect(state(pool2, vm.id)).toBe("unknown");
    await pool2.probeNow();
    expect(view(pool2, vm.id)).toMatchObject({
      worker_state: "running",
      running_container_uuids: [c.uuid],
      last_container_uuid: c.uuid,
    });
    // A new executor, so a new connection and a new secret check; the runner's hash matches,
    // so nothing is uploaded.
    expect(commands(vm).slice(before)).toEqual([SECRET_CMD, BOOT_PROBE, MD5_CMD, LIST_CMD]);
    expect(
      logged(h, "runner binary already exists on worker, with correct hash").map(
        (l) => l.fields["Instance"],
      ),
    ).toEqual([vm.id]);
    expect(logged(h, "crunch-run process detected").map((l) => l.fields["ContainerUUID"])).toEqual([
      c.uuid,
    ]);

    // The scheduler offering the same container again does not start a second crunch-run.
    expect(pool2.startContainer(vm.id, c)).toBe(true);
    await pool2.settled();
    await pool2.probeNow();
    expect(commands(vm).filter((x) => x.includes("--detach"))).toHaveLength(1);
    expect(commands(vm).filter((x) => x === INSTALL_CMD)).toHaveLength(1);
    expect(vm.runs().map((r) => [r.uuid, r.pid])).toEqual([[c.uuid, pid]]);
    expect(state(pool2, vm.id)).toBe("running");
  });

  it("drains a VM that reports itself broken and destroys it once its container is done", async () => {
    const h = await setup({
      stub: { brokenEvery: 1, brokenAfterMs: 5_000, containerRunTimeMs: 30_000 },
    });
    const vm = await readyVm(h);
    const c = ctr(3);
    expect(h.pool.startContainer(vm.id, c)).toBe(true);
    await h.pool.settled();

    await h.clock.advance(5_000); // the VM now says `broken` to --list
    await h.pool.probeNow();
    expect(logged(h, "probe reported broken instance")).toHaveLength(1);
    expect(view(h.pool, vm.id)).toMatchObject({ worker_state: "running", idle_behavior: "drain" });
    await h.pool.settled();
    expect(vm.tags[keys.idleBehavior]).toBe("drain");
    // No new work for a draining worker, and its running container is left alone.
    expect(h.pool.startContainer(vm.id, ctr(4))).toBe(false);
    expect(h.cloud.vm(vm.id)).toBeDefined();
    expect(h.cloud.calls("destroy")).toEqual([]);

    await h.clock.advance(30_000); // the container finishes
    await h.pool.probeNow(); // --list: nothing runs any more → idle
    expect(state(h.pool, vm.id)).toBe("idle");
    await h.pool.probeNow(); // the tick's eligibility check shuts the drained idle worker down
    expect(state(h.pool, vm.id)).toBe("shutdown");
    await h.pool.settled();
    expect(h.cloud.vm(vm.id)).toBeUndefined();
    await h.pool.syncNow();
    expect(h.pool.instances()).toEqual([]);
    expect(commands(vm).filter((x) => x.includes("--detach"))).toHaveLength(1);
  });

  it("shuts down a VM that stops answering once a probe bounded by TimeoutProbe fails", async () => {
    const h = await setup({ stub: { silentEvery: 1, silentAfterMs: 5_000 } });
    const vm = await readyVm(h);
    await h.clock.advance(5_000); // silent from now on: commands hang on the open connection

    const lists = commands(vm).filter((x) => x === LIST_CMD).length;
    let done = false;
    const probing = h.pool.probeNow().then(() => {
      done = true;
    });
    // The run probe reached the VM over SSH and hangs there.
    await vi.waitFor(
      () => expect(commands(vm).filter((x) => x === LIST_CMD)).toHaveLength(lists + 1),
      WAIT,
    );
    await h.clock.advance(TIMEOUT_PROBE_MS - 1);
    expect(done).toBe(false);
    expect(state(h.pool, vm.id)).toBe("idle");
    // TimeoutProbe (2 s, under a minute) bounds the command: it fails now, and since the
    // last good probe is more than TimeoutProbe ago, the worker is given up.
    await h.clock.advance(1);
    await vi.waitFor(() => expect(done).toBe(true), WAIT);
    await probing;
    const failed = logged(h, "probe failed");
    expect(failed).toHaveLength(1);
    expect(String(failed[0]!.fields["error"])).toContain(`timed out after ${TIMEOUT_PROBE_MS} ms`);
    expect(logged(h, "instance unresponsive, shutting down")).toHaveLength(1);
    expect(state(h.pool, vm.id)).toBe("shutdown");
    await h.pool.settled();
    expect(h.cloud.vm(vm.id)).toBeUndefined();
  });

  it("retries a failing destroy at each sync after TimeoutShutdown until the VM is gone (pool loops on the manual clock)", async () => {
    const h = await setup({ config: { syncIntervalMs: 5_000 } });
    const vm = await readyVm(h);
    h.cloud.failNext("destroy", new Error("stub: destroy refused"));
    h.cloud.failNext("destroy", new Error("stub: destroy refused again"));
    h.pool.start();
    expect(h.pool.shutdown(vm.id)).toBe(true);
    expect(state(h.pool, vm.id)).toBe("shutdown");

    // Let the sync loop run on test time until the VM is gone from the cloud and the pool.
    await vi.waitFor(async () => {
      await h.clock.advance(2_500);
      expect(h.cloud.vm(vm.id)).toBeUndefined();
      expect(h.pool.instances()).toEqual([]);
    }, WAIT);

    const destroys = h.cloud.calls("destroy");
    expect(destroys.map((d) => [d.instanceId, d.outcome])).toEqual([
      [vm.id, "error"],
      [vm.id, "error"],
      [vm.id, "ok"],
    ]);
    // Each retry waited for TimeoutShutdown after the previous attempt.
    for (let i = 1; i < destroys.length; i++) {
      expect(destroys[i]!.at - destroys[i - 1]!.at).toBeGreaterThan(TIMEOUT_SHUTDOWN_MS);
    }
    expect(logged(h, "shutdown failed")).toHaveLength(2);
    expect(logged(h, "worker still listed after shutdown; retrying")).toHaveLength(2);
    expect(logged(h, "instance disappeared in cloud")).toHaveLength(1);
  });

  it("reads no secret when the driver verifies the host key itself", async () => {
    const h = await setup({ stub: { hostKeyCheck: "compare" } });
    const vm = await createVm(h);
    // Even a wrong secret file does not matter: the driver's own check decides.
    vm.files.set(INSTANCE_SECRET_PATH, Buffer.from("0".repeat(40)));
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("idle");
    expect(commands(vm)).toEqual([BOOT_PROBE, MD5_CMD, INSTALL_CMD, LIST_CMD]);
  });

  it("never uses a VM it created whose secret does not match its tag, and gives it up at TimeoutBooting", async () => {
    const h = await setup();
    const vm = await createVm(h);
    // Someone else answers at this address: the VM's secret is not the one its tag names.
    vm.files.set(INSTANCE_SECRET_PATH, Buffer.from("0".repeat(40)));

    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("booting");
    const failures = logged(h, "boot probe failed");
    expect(failures.map((l) => l.level)).toEqual(["warn"]);
    expect(String(failures[0]!.fields["error"])).toContain("bad instance secret");
    expect(h.pool.startContainer(vm.id, ctr(5))).toBe(false);

    await h.clock.advance(TIMEOUT_BOOTING_MS);
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("shutdown");
    expect(await outcome(h.registry, "failure")).toBe(1);
    await h.pool.settled();
    expect(h.cloud.vm(vm.id)).toBeUndefined();
    // Every connection stopped at the secret check: nothing else ever ran on it.
    expect(commands(vm).length).toBeGreaterThanOrEqual(2);
    expect(new Set(commands(vm))).toEqual(new Set([SECRET_CMD]));
    expect(vm.files.has(RUNNER_CMD)).toBe(false);
  });

  it("never uses an adopted VM whose secret does not match its tag, even for the unknown-state deploy and run probe", async () => {
    const h = await setup();
    const inst = await h.cloud.instanceSet.create({
      instanceType: type1,
      imageId: "img-1",
      tags: createTags(keys, SET_ID, type1, "a".repeat(40)),
      initCommand: initCommandWithSecret("b".repeat(40), ""),
      publicKey: h.key.publicKey,
    });
    const vm = h.cloud.vm(inst.id)!;
    await h.pool.syncNow();
    expect(state(h.pool, vm.id)).toBe("unknown");

    await h.pool.probeNow();
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("unknown");
    expect(view(h.pool, vm.id)!.running_container_uuids).toEqual([]);
    // Boot probe, md5sum, upload and --list were all attempted; each new connection failed the
    // secret check before any of them could run.
    expect(commands(vm).length).toBeGreaterThanOrEqual(2);
    expect(new Set(commands(vm))).toEqual(new Set([SECRET_CMD]));
    expect(vm.files.has(RUNNER_CMD)).toBe(false);
    expect(
      logged(h, "boot probe failed").every((l) =>
        String(l.fields["error"]).includes("bad instance secret"),
      ),
    ).toBe(true);

    await h.clock.advance(TIMEOUT_BOOTING_MS);
    await h.pool.probeNow();
    expect(state(h.pool, vm.id)).toBe("shutdown");
    await h.pool.settled();
    expect(h.cloud.vm(vm.id)).toBeUndefined();
  });

  it("gives up a booting VM that goes silent during the runner upload, at TimeoutBooting", async () => {
    const h = await setup();
    const vm = await createVm(h);
    // The VM stops answering just as the upload reaches it (a hung disk, say).
    const exec = vm.exec.bind(vm);
    vm.exec = (command, request) => {
      if (command === INSTALL_CMD) vm.setSilent(true);
      return exec(command, request);
    };
    void h.pool.probeNow();
    await vi.waitFor(() => expect(commands(vm)).toContain(INSTALL_CMD), WAIT);
    for (let i = 0; i < 3 && state(h.pool, vm.id) !== "shutdown"; i++) {
      const probe = h.pool.probeNow();
      await h.clock.advance(TIMEOUT_BOOTING_MS);
      await probe;
    }
    expect(state(h.pool, vm.id)).toBe("shutdown");
  });
});
