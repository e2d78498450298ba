// The mapping pass (dispatcher-core §3.2), step by step: sort the instances and the queue,
// account for what already runs, adjust the concurrency cap, walk the queue deciding for each
// entry (lock, start, create, or a status saying why it waits), publish the statuses, and give
// back what is over quota.
import type {
  ContainerState,
  ContainerUuid,
  InstanceType,
  InstanceView,
  Logger,
  QueueEntry,
  QueuedContainer,
} from "@dispatch-cloud/arvados-types";
import type { PassLimits } from "./concurrency.js";
import type { ConcurrencyLimit } from "./concurrency.js";
import type { SchedulerMetrics } from "./metrics.js";
import type { ContainerOperations } from "./operations.js";
import type { ContainerQueue, WorkerPool } from "./ports.js";
import { FreeResources } from "./resources.js";
import { compareSlots, SlotIndex, type Slot } from "./slots.js";
import * as status from "./status.js";

/** One queue entry as the latest pass left it, with the status users see. */
export interface ScheduledEntry<C extends QueuedContainer = QueuedContainer> {
  readonly entry: QueueEntry<C>;
  readonly schedulingStatus: string;
}

/** What a pass reads and drives. */
export interface PassDeps<C extends QueuedContainer> {
  readonly queue: ContainerQueue<C>;
  readonly pool: WorkerPool;
  readonly logger: Logger;
  /** Configured instance types by name. */
  readonly types: ReadonlyMap<string, InstanceType>;
  /** MaxRunningContainersPerInstance (0 = unlimited). */
  readonly maxRunningPerInstance: number;
  readonly metrics: SchedulerMetrics;
  readonly ops: ContainerOperations<C>;
  readonly limit: ConcurrencyLimit;
  readonly texts: PositionTexts;
  now(): number;
  /** When the API client last saw a 503, ms (0 = never). */
  last503(): number;
  /** Step 9: the sorted queue with statuses, for the management API. */
  publish(scheduled: readonly ScheduledEntry<C>[]): void;
}

/** One mapping pass. */
export async function runQueue<C extends QueuedContainer>(d: PassDeps<C>): Promise<void> {
  // Inputs, snapshot at the start of the pass.
  const running = d.pool.running();
  const views = d.pool.instances();
  const counts = await d.pool.countWorkers();
  let totalInstances = 0;
  for (const n of Object.values(counts)) totalInstances += n ?? 0;
  const { entries } = d.queue.entries();

  const slots = sortInstances(views, d.types); // 1
  const queue = sortQueue(entries, running); // 2
  subtractRunning(slots, entries); // 3
  const limits = d.limit.adjust(running.size, totalInstances, d.now(), d.last503(), () =>
    d.pool.atQuota(),
  ); // 4
  const pass = new Mapping(d, slots, queue, limits, running.size); // 5
  pass.walk(); // 6
  d.metrics.allocatedNotStarted.set(pass.allocatedNotStarted); // 7
  d.metrics.notAllocatedOverQuota.set(pass.overquota.length + pass.overmaxsuper.length);
  d.publish(pass.statuses(d.pool.atQuota())); // 8, 9
  if (pass.overquota.length === 0 && pass.overmaxsuper.length === 0) return;
  await unlockOverQuota(d, pass, running, totalInstances); // 10
  if (pass.overquota.length > 0) shutdownIdle(d.pool, slots); // 11
}

// ---- 1. instances ---------------------------------------------------------------------------

/** Cheapest first, bigger first among equal prices; free resources are the type's. */
function sortInstances(
  views: readonly InstanceView[],
  types: ReadonlyMap<string, InstanceType>,
): Slot[] {
  const slots: Slot[] = views.map((view) => {
    const type = types.get(view.arvados_instance_type);
    return { view, type, free: FreeResources.ofType(type), containers: [] };
  });
  slots.sort(compareSlots);
  return slots;
}

// ---- 2. queue -------------------------------------------------------------------------------

/**
 * The queue in pass order. What the pass reads of each entry is read once, in arrival order,
 * into arrays: sorting and walking then stay off the entry objects, which sit all over the heap
 * in a large queue.
 */
interface SortedQueue<C extends QueuedContainer> {
  /** Entries by position in the pass. */
  readonly sorted: QueueEntry<C>[];
  /** Position → index in arrival order, which the arrays below use. */
  readonly order: number[];
  readonly uuids: ContainerUuid[];
  readonly states: ContainerState[];
  readonly priorities: number[];
  /** Running ones before the others, and within each, Locked ones first (0–3). */
  readonly rank: Uint8Array;
  readonly supervisorAt: Uint8Array;
}

/** Running first, then Locked, then priority, then first seen, then UUID. */
function sortQueue<C extends QueuedContainer>(
  entries: ReadonlyMap<ContainerUuid, QueueEntry<C>>,
  running: ReadonlyMap<ContainerUuid, Date | null>,
): SortedQueue<C> {
  const n = entries.size;
  const byArrival: QueueEntry<C>[] = [];
  const uuids: ContainerUuid[] = [];
  const states: ContainerState[] = [];
  const priorities: number[] = [];
  const firstSeen: number[] = [];
  const rank = new Uint8Array(n);
  const supervisorAt = new Uint8Array(n);
  const order: number[] = [];
  for (const ent of entries.values()) {
    const c = ent.container;
    const k = byArrival.length;
    byArrival.push(ent);
    uuids.push(c.uuid);
    states.push(c.state);
    priorities.push(c.priority);
    firstSeen.push(ent.firstSeenAt.getTime());
    rank[k] = (running.has(c.uuid) ? 0 : 2) + (c.state === "Locked" ? 0 : 1);
    supervisorAt[k] = c.scheduling_parameters?.supervisor === true ? 1 : 0;
    order.push(k);
  }
  order.sort((a, b) => {
    if (rank[a] !== rank[b]) return rank[a]! - rank[b]!;
    const pa = priorities[a]!;
    const pb = priorities[b]!;
    if (pa !== pb) return pb - pa;
    const fa = firstSeen[a]!;
    const fb = firstSeen[b]!;
    if (fa !== fb) return fa - fb;
    const ua = uuids[a]!;
    const ub = uuids[b]!;
    return ua < ub ? -1 : ua > ub ? 1 : 0;
  });
  const sorted = order.map((k) => byArrival[k]!);
  return { sorted, order, uuids, states, priorities, rank, supervisorAt };
}

// ---- 3. what already runs -------------------------------------------------------------------

/**
 * Take what already runs on each instance from its free resources. We subtract the stored
 * needs, tmp mounts included (Arvados recomputes them without mounts and may over-pack
 * scratch); a container the queue does not know makes the instance full.
 */
function subtractRunning<C extends QueuedContainer>(
  slots: readonly Slot[],
  entries: ReadonlyMap<ContainerUuid, QueueEntry<C>>,
): void {
  for (const slot of slots) {
    for (const uuid of slot.view.running_container_uuids ?? []) {
      const ent = entries.get(uuid);
      if (ent === undefined) {
        slot.free = FreeResources.none();
        break;
      }
      slot.free.subtract(ent.instanceResources);
    }
    slot.containers = [...(slot.view.running_container_uuids ?? [])];
  }
}

// ---- 5, 6, 8. the walk --------------------------------------------------------------------

/** One pass's walk over the sorted queue, and what it leaves behind. */
class Mapping<C extends QueuedContainer> {
  /** Entries from the first one over quota to the end (the walk stops there). */
  overquota: QueueEntry<C>[] = [];
  /** Supervisors beyond the supervisor cap. */
  readonly overmaxsuper: QueueEntry<C>[] = [];
  allocatedNotStarted = 0;
  readonly #d: PassDeps<C>;
  readonly #q: SortedQueue<C>;
  readonly #limits: PassLimits;
  /** The index lets each container look only at instances of its eligible types. */
  readonly #index: SlotIndex;
  readonly #atCapacityMemo = new Map<string, boolean>();
  /** Containers running or being started, counting those this pass starts or locks. */
  #trying: number;
  /** The last queue position handed out. */
  #qpos = 0;
  #supervisors = 0;
  /** By position in the pass; none until the entry gets one. */
  readonly #statuses: string[] = [];

  constructor(
    d: PassDeps<C>,
    slots: readonly Slot[],
    q: SortedQueue<C>,
    limits: PassLimits,
    running: number,
  ) {
    this.#d = d;
    this.#q = q;
    this.#limits = limits;
    this.#index = new SlotIndex(slots, d.maxRunningPerInstance, d.logger);
    this.#trying = running;
  }

  /** Decide for each entry in order; stops at the first one over quota. */
  walk(): void {
    const n = this.#q.sorted.length;
    for (let i = 0; i < n; i++) if (this.#decide(i)) return;
  }

  /** Decide for the entry at position `i`. True when the walk must stop (over quota). */
  #decide(i: number): boolean {
    const q = this.#q;
    const k = q.order[i]!;
    const ent = q.sorted[i]!;
    const state = q.states[k]!;
    const supervisor = q.supervisorAt[k] === 1;
    if (supervisor) this.#supervisors++;
    if (q.rank[k]! < 2) {
      // Already on a worker.
      if (state === "Queued" || state === "Locked") {
        this.#statuses[i] = status.preparingRuntimeEnvironment;
      }
      return false;
    }
    if (q.priorities[k]! < 1) {
      this.#statuses[i] = status.priorityZero(state);
      return false;
    }
    const { maxContainers, maxSupervisors } = this.#limits;
    if (supervisor && maxSupervisors > 0 && this.#supervisors > maxSupervisors) {
      this.overmaxsuper.push(ent);
      this.#statuses[i] = status.supervisorLimitReached(this.overmaxsuper.length);
      return false;
    }
    if (state !== "Queued" && state !== "Locked") return false;
    if (maxContainers > 0 && this.#trying >= maxContainers) return false;
    this.#trying++;
    // Computed only now that it matters; neither has side effects beyond the capacity memo.
    const best = this.#index.best(ent);
    const availableType = this.#availableType(ent);
    return state === "Queued"
      ? this.#queued(i, q.uuids[k]!, best, availableType)
      : this.#locked(i, q.uuids[k]!, best, availableType);
  }

  /** The cheapest eligible type the cloud is not out of (per provider type, memoised). */
  #availableType(ent: QueueEntry<C>): InstanceType | undefined {
    for (const t of ent.instanceTypes) {
      const key = capacityKey(t);
      if (this.#atCapacityMemo.get(key) === true) continue;
      if (this.#d.pool.atCapacity(t)) {
        this.#atCapacityMemo.set(key, true);
        continue;
      }
      return t;
    }
    return undefined;
  }

  /** A Queued container: lock it if it can run, reserving room on the best instance. */
  #queued(i: number, uuid: ContainerUuid, best?: Slot, availableType?: InstanceType): boolean {
    const { pool, ops, logger } = this.#d;
    if (best === undefined && pool.atQuota()) {
      this.overquota = this.#q.sorted.slice(i);
      return true;
    }
    if (best === undefined && availableType === undefined) return false;
    if (ops.has(uuid)) {
      // Deviation: Arvados asks the pool to kill and tries to lock again, which only logs
      // "uuidLock not available" and re-arms a 250 ms wake-up. The operation in flight
      // notifies when it ends, so a long queue skips a pool scan per entry per pass.
    } else if (pool.killContainer(uuid, "about to lock")) {
      logger.info(
        { ContainerUUID: uuid },
        "not locking: crunch-run process from previous attempt has not exited",
      );
      return false;
    } else {
      ops.lock(uuid);
    }
    if (best !== undefined) this.#index.reserve(best, this.#q.sorted[i]!);
    return false;
  }

  /** A Locked container: start it on the best instance, or create one for it. */
  #locked(i: number, uuid: ContainerUuid, best?: Slot, availableType?: InstanceType): boolean {
    const { pool, logger } = this.#d;
    const ent = this.#q.sorted[i]!;
    if (best !== undefined) {
      this.#index.reserve(best, ent);
      const workerState = best.view.worker_state;
      if (best.view.instance === "" || (workerState !== "idle" && workerState !== "running")) {
        this.#statuses[i] = status.waitingNewInstance(best.view.arvados_instance_type);
        this.allocatedNotStarted++;
      } else if (pool.killContainer(uuid, "about to start")) {
        this.#statuses[i] = status.waitingForPreviousAttempt;
        logger.info(
          { ContainerUUID: uuid, Instance: best.view.instance },
          "not restarting yet: crunch-run process from previous attempt has not exited",
        );
      } else if (pool.startContainer(best.view.instance, ent.container)) {
        this.#statuses[i] = status.preparingRuntimeEnvironment;
      } else {
        this.#statuses[i] = status.waitingNewInstance(best.view.arvados_instance_type);
        this.allocatedNotStarted++;
      }
      return false;
    }
    if (pool.atQuota()) {
      this.overquota = this.#q.sorted.slice(i);
      return true;
    }
    if (availableType === undefined) {
      this.#qpos++;
      this.#statuses[i] = status.waitingInstanceType(
        this.#qpos,
        ent.instanceTypes.map((t) => t.Name).join(", "),
      );
      return false;
    }
    const created = pool.create(availableType);
    if (created === null) return false;
    this.#statuses[i] = status.waitingNewInstance(availableType.Name);
    logger.info({ ContainerUUID: uuid, InstanceType: availableType.Name }, "creating new instance");
    this.allocatedNotStarted++;
    const slot: Slot = {
      view: created,
      type: availableType,
      free: FreeResources.ofType(availableType),
      containers: [],
    };
    // Only the index needs it: the pass's instances are walked again just for idle ones to shut
    // down, and this one is about to hold a container.
    this.#index.add(slot);
    this.#index.reserve(slot, ent);
    return false;
  }

  /**
   * Everyone still without a status waits, at the next queue position: capacity-blocked
   * Locked ones took positions first.
   */
  statuses(atQuota: boolean): ScheduledEntry<C>[] {
    const q = this.#q;
    const texts = this.#d.texts;
    const out: ScheduledEntry<C>[] = [];
    for (let i = 0; i < q.sorted.length; i++) {
      let s = this.#statuses[i] ?? "";
      const state = q.states[q.order[i]!];
      if (s === "" && (state === "Queued" || state === "Locked")) {
        this.#qpos++;
        s = atQuota ? texts.cloudResources(this.#qpos) : texts.clusterCapacity(this.#qpos);
      }
      out.push({ entry: q.sorted[i]!, schedulingStatus: s });
    }
    return out;
  }
}

// ---- 10, 11. over quota -------------------------------------------------------------------

/**
 * Give back locks that capacity cannot serve soon. The head of the line keeps its lock while
 * instances exist, so it does not burn lock_count on every pass.
 */
async function unlockOverQuota<C extends QueuedContainer>(
  d: PassDeps<C>,
  pass: Mapping<C>,
  running: ReadonlyMap<ContainerUuid, Date | null>,
  totalInstances: number,
): Promise<void> {
  const { overquota, overmaxsuper } = pass;
  const unlock =
    totalInstances > 0 && overquota.length > 1
      ? [...overmaxsuper, ...overquota.slice(1)]
      : [...overmaxsuper, ...overquota];
  for (const ent of unlock) {
    const uuid = ent.container.uuid;
    if (d.queue.get(uuid)?.state !== "Locked" || running.has(uuid)) continue;
    d.logger.info(
      { ContainerUUID: uuid },
      "unlock because pool capacity is used by higher priority containers",
    );
    const r = await d.queue.unlock(uuid);
    if (!r.ok) d.logger.warn({ ContainerUUID: uuid, error: r.error.message }, "error unlocking");
  }
}

/** At quota, idle instances are worth more as room for other types. */
function shutdownIdle(pool: WorkerPool, slots: readonly Slot[]): void {
  for (const slot of slots) {
    if (slot.containers.length === 0) pool.shutdown(slot.view.instance);
  }
}

// ---- helpers --------------------------------------------------------------------------------

/**
 * The two "waiting in queue at position N" texts by N, built once: a long queue otherwise makes
 * tens of thousands of identical strings per pass that live until the next one.
 */
export class PositionTexts {
  readonly #cloudResources: string[] = [];
  readonly #clusterCapacity: string[] = [];

  cloudResources(position: number): string {
    return (this.#cloudResources[position] ??= status.waitingCloudResources(position));
  }

  clusterCapacity(position: number): string {
    return (this.#clusterCapacity[position] ??= status.waitingClusterCapacity(position));
  }
}

const capacityKeys = new WeakMap<InstanceType, string>();

/** The atCapacity memo's key: capacity is per provider type and preemptibility. */
function capacityKey(t: InstanceType): string {
  let k = capacityKeys.get(t);
  if (k === undefined) {
    k = `${t.ProviderType}, preemptible=${t.Preemptible}`;
    capacityKeys.set(t, k);
  }
  return k;
}
