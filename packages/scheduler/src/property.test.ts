// Generated-queue property test: many seeded random worlds (queue, instance types, pool with a
// quota and capacity limits), several mapping passes each, interleaved with world events
// (creates finishing, locks succeeding, containers starting and finishing). After every pass
// the invariants below must hold. A failure names its seed; `vitest run -t "seed 17"` replays
// exactly that world (the PRNG is seeded, the clock is manual, nothing else is random).
import type {
  Clock,
  ContainerState,
  ContainerUuid,
  IdleBehavior,
  InstanceId,
  InstanceResources,
  InstanceType,
  InstanceView,
  QueueEntry,
  QueueOpResult,
  QueuedContainer,
  WorkerState,
} from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import { FreeResources } from "./resources.js";
import { Scheduler } from "./scheduler.js";
import * as status from "./status.js";
import {
  FakeQueue,
  fixtureType,
  fixtureUuid,
  ManualClock,
  RecordingLogger,
  Rng,
  StubPool,
  type FakeContainer,
} from "./testing/index.js";

const GiB = 2 ** 30;
const SEEDS = Array.from({ length: 200 }, (_, i) => i + 1);
const PASSES = 10;

/** A queue that checks every lock request (property 1) and can hold locks in flight. */
class SimQueue extends FakeQueue {
  readonly inFlight = new Set<ContainerUuid>();
  readonly lockRequests: ContainerUuid[] = [];
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(
    types: readonly InstanceType[],
    clock: Clock,
    factor: number,
    private readonly violations: string[],
  ) {
    super(types, clock, factor);
  }

  /** Locks requested from now on stay in flight until releaseLocks(). */
  holdLocks(): void {
    if (this.gate === undefined) this.gate = new Promise((r) => (this.openGate = r));
  }
  releaseLocks(): void {
    this.openGate?.();
    this.gate = undefined;
    this.openGate = undefined;
  }
  get holding(): boolean {
    return this.gate !== undefined;
  }

  override lock(uuid: ContainerUuid): Promise<QueueOpResult> {
    const cached = this.get(uuid)?.state;
    const db = this.db.find((c) => c.uuid === uuid)?.state;
    if (cached !== "Queued" || db !== "Queued") {
      this.violations.push(`lock requested for ${uuid} in state ${cached} (db ${db})`);
    }
    if (this.inFlight.has(uuid)) {
      this.violations.push(`lock requested for ${uuid} while its previous lock is in flight`);
    }
    this.inFlight.add(uuid);
    this.lockRequests.push(uuid);
    const gate = this.gate;
    return (async () => {
      try {
        if (gate !== undefined) await gate;
        return await super.lock(uuid);
      } finally {
        this.inFlight.delete(uuid);
      }
    })();
  }
}

/**
 * The stub pool plus what the real pool does and the stub does not: refuse creates at quota
 * or capacity (after recording that the scheduler asked, which it must not), and really shut
 * down idle/booting workers. Starts of a container already on a worker are recorded.
 */
class SimPool extends StubPool {
  created = 0;
  constructor(private readonly violations: string[]) {
    super();
  }
  override create(type: InstanceType): InstanceView | null {
    if (this.atQuota() || this.atCapacity(type)) {
      this.violations.push(
        `create(${type.Name}) asked while ${this.atQuota() ? "at quota" : "at capacity"}`,
      );
      this.creates.push(type);
      return null;
    }
    const v = super.create(type);
    if (v !== null) this.created++;
    return v;
  }
  override startContainer(id: InstanceId, container: QueuedContainer): boolean {
    const where = this.workers.find((w) => w.running.includes(container.uuid));
    if (this.runningMap.has(container.uuid) || where !== undefined) {
      this.violations.push(
        `start ${container.uuid} on ${id} while already known to the pool (on ${where?.id ?? "none"})`,
      );
    }
    return super.startContainer(id, container);
  }
  override shutdown(id: InstanceId): boolean {
    this.shutdowns.push(id);
    const i = this.workers.findIndex((w) => w.id === id);
    const w = this.workers[i];
    if (
      w === undefined ||
      w.idleBehavior === "hold" ||
      (w.state !== "idle" && w.state !== "booting") ||
      w.running.length > 0
    ) {
      return false;
    }
    this.workers.splice(i, 1);
    return true;
  }
}

interface World {
  rng: Rng;
  clock: ManualClock;
  types: InstanceType[];
  queue: SimQueue;
  pool: SimPool;
  logger: RecordingLogger;
  sched: Scheduler<FakeContainer>;
  quota: number;
  maxRun: number;
  violations: string[];
  nextUuid: number;
  last503: Date | null;
  /** Priority pairs (H, L) that property 3 actually compared, to show it is not vacuous. */
  pairs: number;
}

const CPU_CHOICES = [0, 1, 1, 1, 2, 2, 3, 4];
const RAM_CHOICES = [0.25, 0.5, 1, 1, 2, 3, 4.5];

function newContainer(w: World, state: ContainerState, preemptibleTypes: boolean): FakeContainer {
  const uuid = fixtureUuid(w.nextUuid++);
  return {
    uuid,
    state,
    priority: w.rng.chance(0.1) ? 0 : w.rng.int(1, 6),
    runtime_constraints: {
      vcpus: w.rng.pick(CPU_CHOICES),
      ram: Math.floor(w.rng.pick(RAM_CHOICES) * GiB),
    },
    scheduling_parameters: {
      supervisor: w.rng.chance(0.15),
      preemptible: preemptibleTypes && w.rng.chance(0.25),
    },
    created_at: new Date(w.clock.now()).toISOString(),
  };
}

function build(seed: number): World {
  const rng = new Rng(seed);
  const clock = new ManualClock();
  const violations: string[] = [];
  // Instance types: a random subset of type1..type6, some with a preemptible twin (same
  // ProviderType, as config's automatic twins).
  const types: InstanceType[] = [];
  for (let i = 1; i <= 6; i++) {
    if (!rng.chance(0.65)) continue;
    types.push(fixtureType(i));
    if (rng.chance(0.4)) {
      types.push(fixtureType(i, { Name: `type${i}.preemptible`, Preemptible: true }));
    }
  }
  if (types.length === 0) types.push(fixtureType(rng.int(1, 4)));
  const preemptibleTypes = types.some((t) => t.Preemptible);
  const factor = rng.pick([1, 1, 1.5, 2]);
  const queue = new SimQueue(types, clock, factor, violations);
  const pool = new SimPool(violations);
  const logger = new RecordingLogger();
  const maxRun = rng.chance(0.7) ? 0 : rng.int(1, 3);

  const w: World = {
    rng,
    clock,
    types,
    queue,
    pool,
    logger,
    // Filled below, once the scheduler options are known.
    sched: undefined as unknown as Scheduler<FakeContainer>,
    quota: Infinity,
    maxRun,
    violations,
    nextUuid: 1,
    last503: null,
    pairs: 0,
  };

  // Existing workers, some already running containers that fit them.
  const nWorkers = rng.int(0, 6);
  const states: WorkerState[] = ["booting", "idle", "idle", "running", "unknown"];
  const behaviors: IdleBehavior[] = ["run", "run", "run", "run", "run", "hold", "drain"];
  for (let i = 0; i < nWorkers; i++) {
    const type = rng.pick(types);
    const state = rng.pick(states);
    const worker = pool.addWorker(type, state, rng.pick(behaviors));
    if (state !== "running" && state !== "unknown") continue;
    const free = FreeResources.ofType(type);
    for (let k = rng.int(0, 3); k > 0; k--) {
      if (maxRun > 0 && worker.running.length >= maxRun) break;
      const c = newContainer(w, rng.chance(0.8) ? "Running" : "Locked", false);
      const need = queue.needs(c);
      if (!free.accommodates(need)) continue;
      free.subtract(need);
      queue.add(c);
      worker.running.push(c.uuid);
      pool.runningMap.set(c.uuid, null);
    }
    // Rarely, a crunch-run the queue does not know (the scheduler must treat the VM as full).
    if (rng.chance(0.05) && (maxRun === 0 || worker.running.length < maxRun)) {
      const stray = fixtureUuid(900_000 + seed * 100 + i);
      worker.running.push(stray);
      pool.runningMap.set(stray, null);
    }
  }
  for (let n = rng.int(3, 25); n > 0; n--) {
    queue.add(newContainer(w, rng.chance(0.65) ? "Queued" : "Locked", preemptibleTypes));
  }

  const maxInstances = rng.chance(0.3) ? 0 : rng.int(1, 10);
  const cloudQuota = rng.chance(0.5) ? Infinity : rng.int(Math.max(0, nWorkers - 1), nWorkers + 5);
  w.quota = Math.min(cloudQuota, maxInstances > 0 ? maxInstances : Infinity);
  pool.quota = w.quota;
  for (const t of types) {
    if (rng.chance(0.25) && !pool.capacity.has(t.ProviderType)) {
      pool.capacity.set(t.ProviderType, rng.int(0, 2));
    }
  }
  w.sched = new Scheduler<FakeContainer>({
    queue,
    pool,
    logger,
    clock,
    instanceTypes: types,
    maxInstances,
    initialQuotaEstimate: rng.chance(0.2) ? rng.int(1, 6) : 0,
    supervisorFraction: rng.pick([0, 0, 0.3, 0.5]),
    maxRunningContainersPerInstance: maxRun,
    last503: () => w.last503,
  });
  return w;
}

interface Before {
  entries: ReadonlyMap<ContainerUuid, QueueEntry<FakeContainer>>;
  running: ReadonlyMap<ContainerUuid, Date | null>;
  views: readonly InstanceView[];
  workerCount: number;
  created: number;
  inFlight: ReadonlySet<ContainerUuid>;
  startsAt: number;
  logAt: number;
  locksAt: number;
}

function snapshot(w: World): Before {
  return {
    entries: w.queue.entries().entries,
    running: w.pool.running(),
    views: w.pool.instances(),
    workerCount: w.pool.workers.length,
    created: w.pool.created,
    inFlight: new Set(w.queue.inFlight),
    startsAt: w.pool.starts.length,
    logAt: w.logger.lines.length,
    locksAt: w.queue.lockRequests.length,
  };
}

function needOf(w: World, uuid: ContainerUuid): InstanceResources | undefined {
  const row = w.queue.db.find((c) => c.uuid === uuid);
  return row === undefined ? undefined : w.queue.needs(row);
}

function leq(a: InstanceResources, b: InstanceResources): boolean {
  return (
    a.VCPUs <= b.VCPUs &&
    a.RAM <= b.RAM &&
    a.Scratch <= b.Scratch &&
    a.GPUs <= b.GPUs &&
    a.GPUVRAM <= b.GPUVRAM
  );
}

const typeNames = (e: QueueEntry) => e.instanceTypes.map((t) => t.Name);

/** Check every property for the pass that just ran; push what fails onto w.violations. */
function checkPass(w: World, b: Before, pass: number): void {
  const bad = (msg: string) => w.violations.push(`pass ${pass}: ${msg}`);
  const starts = w.pool.starts.slice(b.startsAt);
  const creates = w.logger.lines
    .slice(b.logAt)
    .filter((l) => l.msg === "creating new instance")
    .map((l) => ({
      uuid: l.fields["ContainerUUID"] as ContainerUuid,
      type: l.fields["InstanceType"] as string,
    }));
  const statusOf = new Map(
    w.sched.lastQueue().map((e) => [e.entry.container.uuid, e.schedulingStatus]),
  );

  // 1. Only Locked, not-yet-running containers are started, each at most once (the start
  // itself is checked against the pool's live state in SimPool; locks in SimQueue).
  const seen = new Set<ContainerUuid>();
  for (const s of starts) {
    const e = b.entries.get(s.uuid);
    if (e?.container.state !== "Locked" || b.running.has(s.uuid)) {
      bad(`started ${s.uuid} in state ${e?.container.state}, running=${b.running.has(s.uuid)}`);
    }
    if (seen.has(s.uuid)) bad(`started ${s.uuid} twice in one pass`);
    seen.add(s.uuid);
  }

  // 2a. Every worker's containers fit its type under §2.10 accounting (the sum over any order
  // is the same, so replaying in list order suffices), and MaxRunningContainersPerInstance.
  for (const worker of w.pool.workers) {
    const free = FreeResources.ofType(worker.type);
    const hasStray = worker.running.some((u) => needOf(w, u) === undefined);
    for (const u of worker.running) {
      const need = needOf(w, u);
      if (need === undefined) continue;
      if (!free.accommodates(need)) {
        bad(`${worker.id} (${worker.type.Name}) over-packed: ${worker.running.join(", ")}`);
        break;
      }
      free.subtract(need);
    }
    if (w.maxRun > 0 && worker.running.length > w.maxRun) {
      bad(`${worker.id} runs ${worker.running.length} > MaxRunningContainersPerInstance`);
    }
    // A VM running a crunch-run the queue does not know is full (§3.2 step 3).
    if (hasStray && starts.some((s) => s.instance === worker.id)) {
      bad(`started a container on ${worker.id}, which runs an unknown container`);
    }
  }
  // 2b. No create beyond quota / MaxInstances (SimPool also flags a create asked at quota).
  const made = w.pool.created - b.created;
  if (made > 0 && b.workerCount + made > w.quota) {
    bad(`${made} created with ${b.workerCount} workers and quota ${w.quota}`);
  }

  // 3. Priority. Derived from §3.2: entries are handled in order running, Locked, Queued, then
  // priority; each decision only looks at state that is monotone within a pass (free
  // resources and per-instance counts only shrink, `trying` only grows, AtQuota/AtCapacity
  // only become true, a refused create stays refused). Hence, for containers H and L of the
  // same state class with H.priority > L.priority (so H is handled first):
  //
  // 3a (Locked). If L was started on instance X or had an instance of type A created for it,
  // and that type is eligible for H, then H was allocated too (status "preparing" or
  // "waiting for a … instance", i.e. started, reserved on an instance, or given a new one),
  // unless (i) H hit the supervisor limit, (ii) H waits for its previous attempt to exit, or
  // (iii) L was *started* on X and H did not fit what X had free just before L was placed
  // there (resources per §2.10 or MaxRunningContainersPerInstance) — then X could not have
  // taken H when H's turn came either, so H legitimately did not get X. A create for L admits
  // no exception: H saw the same or fewer capacity limits and, had its own create been
  // refused, L's would have been too.
  //
  // Not checked: Queued H against Locked L. Locked entries go first on purpose (§3.2 step
  // 2b, §3.9: an already-locked container must not burn lock_count waiting), and a Queued
  // container is only locked in a pass, never given an instance (§9.9), so a Locked
  // lower-priority container may take the last instance or the last maxContainers slot
  // ahead of a Queued higher-priority one. That is Arvados's documented behaviour.
  const allocated = (u: ContainerUuid) => {
    const s = statusOf.get(u) ?? "";
    return s === status.preparingRuntimeEnvironment || /^Waiting for a .* instance to boot/.test(s);
  };
  const alone = (u: ContainerUuid) => {
    const s = statusOf.get(u) ?? "";
    return s.startsWith("Waiting in workflow queue") || s === status.waitingForPreviousAttempt;
  };
  const fitBeforeStart = (h: QueueEntry, x: InstanceId, startIdx: number): boolean => {
    const view = b.views.find((v) => v.instance === x);
    const type = w.types.find((t) => t.Name === view?.arvados_instance_type);
    if (view === undefined || type === undefined) return false;
    const free = FreeResources.ofType(type);
    let count = 0;
    for (const u of view.running_container_uuids ?? []) {
      const e = b.entries.get(u);
      if (e === undefined) return false;
      free.subtract(e.instanceResources);
      count++;
    }
    for (const s of starts.slice(0, startIdx)) {
      if (s.instance !== x) continue;
      const e = b.entries.get(s.uuid);
      if (e !== undefined) free.subtract(e.instanceResources);
      count++;
    }
    if (w.maxRun > 0 && count >= w.maxRun) return false;
    return free.accommodates(h.instanceResources);
  };
  const lockedPairs = (
    lUuid: ContainerUuid,
    typeName: string,
    how: string,
    exempt: (h: QueueEntry) => boolean,
  ) => {
    const l = b.entries.get(lUuid);
    if (l === undefined) return;
    for (const h of b.entries.values()) {
      const hu = h.container.uuid;
      if (hu === lUuid || h.container.state !== "Locked" || b.running.has(hu)) continue;
      if (!(h.container.priority > l.container.priority)) continue;
      if (!typeNames(h).includes(typeName)) continue;
      w.pairs++;
      if (allocated(hu) || alone(hu) || exempt(h)) continue;
      bad(
        `priority ${h.container.priority} ${hu} [${typeNames(h).join(",")}] got nothing ("${statusOf.get(hu)}") while priority ${l.container.priority} ${lUuid} ${how}`,
      );
    }
  };
  starts.forEach((s, i) => {
    const view = b.views.find((v) => v.instance === s.instance);
    if (view === undefined) {
      bad(`started ${s.uuid} on ${s.instance}, not an instance at the start of the pass`);
      return;
    }
    lockedPairs(
      s.uuid,
      view.arvados_instance_type,
      `was started on ${s.instance} (${view.arvados_instance_type})`,
      (h) => !fitBeforeStart(h, s.instance, i),
    );
  });
  for (const c of creates) {
    lockedPairs(c.uuid, c.type, `got a new ${c.type}`, () => false);
  }

  // 3b (Queued). If L was asked to be locked in this pass, then H was too (or its lock was
  // still in flight, so the scheduler could not ask again), unless H hit the supervisor limit
  // — provided every type eligible for L is eligible for H and H needs no more than L in any
  // resource: then whatever existing instance or available type let L be locked would have
  // let H be locked at its earlier turn. (A bigger H may legitimately find no room on an
  // instance that still takes L.)
  const lockedNow = new Set(w.queue.lockRequests.slice(b.locksAt));
  for (const lu of lockedNow) {
    const l = b.entries.get(lu);
    if (l === undefined) continue;
    for (const h of b.entries.values()) {
      const hu = h.container.uuid;
      if (hu === lu || h.container.state !== "Queued" || b.running.has(hu)) continue;
      if (!(h.container.priority > l.container.priority)) continue;
      if (!typeNames(l).every((n) => typeNames(h).includes(n))) continue;
      if (!leq(h.instanceResources, l.instanceResources)) continue;
      w.pairs++;
      if (lockedNow.has(hu) || b.inFlight.has(hu) || alone(hu)) continue;
      bad(
        `Queued priority ${h.container.priority} ${hu} not locked ("${statusOf.get(hu)}") while priority ${l.container.priority} ${lu} was`,
      );
    }
  }
}

/** Things that happen between passes: VMs boot, locks land, crunch-run starts and ends. */
async function worldEvents(w: World): Promise<void> {
  const { rng, queue, pool, clock } = w;
  if (queue.holding ? rng.chance(0.6) : false) queue.releaseLocks();
  if (!queue.holding) {
    await w.sched.settled();
    if (rng.chance(0.3)) queue.holdLocks();
  }
  for (const wk of pool.workers) {
    if (wk.state === "booting" && rng.chance(0.5)) wk.state = "idle";
    else if (wk.state === "unknown" && rng.chance(0.5))
      wk.state = wk.running.length > 0 ? "running" : "idle";
  }
  for (const c of queue.db) {
    const r = pool.runningMap.get(c.uuid);
    if (r !== null) continue; // not running, or already exited
    if (c.state === "Locked" && rng.chance(0.5)) c.state = "Running";
    else if (c.state === "Running" && rng.chance(0.3)) finish(w, c, "Complete");
    else if (c.state === "Locked" && rng.chance(0.05)) finish(w, c, undefined);
  }
  for (const wk of pool.workers)
    if (wk.state === "running" && wk.running.length === 0) wk.state = "idle";
  const preemptibleTypes = w.types.some((t) => t.Preemptible);
  for (let n = rng.chance(0.3) ? rng.int(1, 3) : 0; n > 0; n--) {
    queue.add(newContainer(w, "Queued", preemptibleTypes));
  }
  if (rng.chance(0.15)) {
    const c = rng.pick(queue.db);
    if (c.state === "Queued" || c.state === "Locked") c.priority = rng.int(0, 6);
  }
  if (rng.chance(0.05)) w.last503 = new Date(clock.now());
  pool.canCreate = rng.chance(0.75) ? Infinity : rng.int(0, 2);
  clock.advance(rng.int(1, 30) * 1000);
}

/** crunch-run exits; the container ends in `state` (undefined: it crashed before Running). */
function finish(w: World, c: FakeContainer, state: ContainerState | undefined): void {
  if (state !== undefined) c.state = state;
  w.pool.exit(c.uuid, new Date(w.clock.now()));
}

async function runSeed(seed: number): Promise<string[]> {
  const w = build(seed);
  for (let pass = 1; pass <= PASSES; pass++) {
    if (pass === 1 || w.rng.chance(0.85)) await w.queue.update();
    const before = snapshot(w);
    await w.sched.runQueue();
    checkPass(w, before, pass);
    await w.sched.sync();
    await worldEvents(w);
    if (w.violations.length > 0) break;
  }
  w.queue.releaseLocks();
  await w.sched.settled();
  return w.violations;
}

describe("scheduler properties over generated queues", () => {
  it.each(SEEDS)("seed %i", async (seed) => {
    const violations = await runSeed(seed);
    expect(violations, `seed ${seed}: ${violations.join("\n")}`).toEqual([]);
  });

  // Guard against a generator that never exercises what the properties are about.
  it("the generated worlds start, create, lock and hit limits", async () => {
    let starts = 0;
    let creates = 0;
    let locks = 0;
    let refused = 0;
    let pairs = 0;
    for (const seed of SEEDS.slice(0, 40)) {
      const w = build(seed);
      for (let pass = 1; pass <= PASSES; pass++) {
        await w.queue.update();
        const before = snapshot(w);
        await w.sched.runQueue();
        checkPass(w, before, pass);
        await w.sched.sync();
        await worldEvents(w);
      }
      w.queue.releaseLocks();
      await w.sched.settled();
      expect(w.violations, `seed ${seed}`).toEqual([]);
      pairs += w.pairs;
      starts += w.pool.starts.length;
      creates += w.pool.created;
      locks += w.queue.lockRequests.length;
      refused += w.sched
        .lastQueue()
        .filter((e) => e.schedulingStatus.startsWith("Waiting in")).length;
    }
    expect(starts).toBeGreaterThan(100);
    expect(creates).toBeGreaterThan(50);
    expect(locks).toBeGreaterThan(75);
    expect(refused).toBeGreaterThan(100);
    expect(pairs).toBeGreaterThan(60);
  });
});
