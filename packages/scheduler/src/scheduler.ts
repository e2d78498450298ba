import {
  systemClock,
  type Clock,
  type ContainerState,
  type ContainerUuid,
  type InstanceType,
  type Logger,
  type QueueEntry,
  type QueuedContainer,
  type TimerHandle,
  type Timers,
} from "@dispatch-cloud/arvados-types";
import type { Registry } from "prom-client";
import { SchedulerMetrics } from "./metrics.js";
import { FreeResources } from "./resources.js";
import { compareSlots, SlotIndex, type Slot } from "./slots.js";
import * as status from "./status.js";
import type { ContainerQueue, WorkerPool } from "./ports.js";

export interface SchedulerOptions<C extends QueuedContainer = QueuedContainer> {
  readonly queue: ContainerQueue<C>;
  readonly pool: WorkerPool;
  readonly logger: Logger;
  /** Every configured instance type (InstanceTypes), used to order and fill instances. */
  readonly instanceTypes: readonly InstanceType[];
  /** Registry for the scheduler gauges; none ⇒ gauges are kept but not exported. */
  readonly registry?: Registry;
  readonly clock?: Pick<Clock, "now"> & Timers;
  /** Containers.CloudVMs.PollInterval, ms (default 10 s). */
  readonly pollIntervalMs?: number;
  /** Containers.StaleLockTimeout, ms (default 1 min). */
  readonly staleLockTimeoutMs?: number;
  /** Containers.CloudVMs.MaxInstances (0 = unlimited). */
  readonly maxInstances?: number;
  /** Containers.CloudVMs.InitialQuotaEstimate (0 ⇒ MaxInstances). */
  readonly initialQuotaEstimate?: number;
  /** Containers.CloudVMs.SupervisorFraction (0 = no supervisor limit). */
  readonly supervisorFraction?: number;
  /** Containers.CloudVMs.MaxRunningContainersPerInstance (0 = unlimited). */
  readonly maxRunningContainersPerInstance?: number;
  /** When the API client last saw a 503 (null if never). */
  readonly last503?: () => Date | null;
}

/** One queue entry as the latest pass left it, with the status users see. */
export interface ScheduledEntry<C extends QueuedContainer = QueuedContainer> {
  readonly entry: QueueEntry<C>;
  readonly schedulingStatus: string;
}

type OpName = "lock" | "cancel" | "kill" | "requeue";

const quietAfter503Ms = 60_000;

/**
 * Decides which container runs where: locks queued containers, asks the pool for instances,
 * starts containers on ready ones, and tells waiting users why they wait.
 */
export class Scheduler<C extends QueuedContainer = QueuedContainer> {
  private readonly queue: ContainerQueue<C>;
  private readonly pool: WorkerPool;
  private readonly logger: Logger;
  private readonly clock: Pick<Clock, "now"> & Timers;
  private readonly types: ReadonlyMap<string, InstanceType>;
  private readonly metrics: SchedulerMetrics;
  private readonly pollIntervalMs: number;
  private readonly staleLockTimeoutMs: number;
  private readonly supervisorFraction: number;
  private readonly maxRunningPerInstance: number;
  private readonly last503: () => Date | null;

  private maxContainers: number;
  private last503time = 0;
  private instancesWithinQuota = 0;
  private scheduled: readonly ScheduledEntry<C>[] = [];

  /** Container UUID → the async operation in flight for it (at most one). */
  private readonly ops = new Map<ContainerUuid, OpName>();
  private readonly inflight = new Set<Promise<void>>();
  private warnedUnexpectedState = false;
  /**
   * The two "waiting in queue at position N" texts by N, built once: a long queue otherwise
   * makes tens of thousands of identical strings per pass that live until the next one.
   */
  private readonly cloudResourcesTexts: string[] = [];
  private readonly clusterCapacityTexts: string[] = [];

  private wakeRequested = false;
  private wakeWaiter: (() => void) | undefined;
  private wakeTimer: TimerHandle | undefined;
  private abort: AbortController | undefined;
  private done: Promise<void> | undefined;

  constructor(opts: SchedulerOptions<C>) {
    this.queue = opts.queue;
    this.pool = opts.pool;
    this.logger = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.types = new Map(opts.instanceTypes.map((t) => [t.Name, t]));
    this.pollIntervalMs = opts.pollIntervalMs ?? 10_000;
    this.staleLockTimeoutMs = opts.staleLockTimeoutMs ?? 60_000;
    this.supervisorFraction = opts.supervisorFraction ?? 0;
    this.maxRunningPerInstance = opts.maxRunningContainersPerInstance ?? 0;
    this.last503 = opts.last503 ?? (() => null);
    const initial = opts.initialQuotaEstimate ?? 0;
    this.maxContainers = initial > 0 ? initial : (opts.maxInstances ?? 0);
    this.metrics = new SchedulerMetrics(opts.registry, () => this.pool.atQuota());
  }

  /** The sorted queue with statuses from the latest pass (for the management API). */
  lastQueue(): readonly ScheduledEntry<C>[] {
    return this.scheduled;
  }

  /** Current dynamic cap on concurrently running containers (0 = none). */
  maxConcurrentContainers(): number {
    return this.maxContainers;
  }

  /** Start the run loop in the background. */
  start(): void {
    if (this.abort !== undefined) return;
    this.abort = new AbortController();
    this.armWakeup(1000);
    this.done = this.run(this.abort.signal);
  }

  /** Stop the run loop and wait for it and the operations it started. */
  async stop(): Promise<void> {
    if (this.abort === undefined) return;
    this.abort.abort();
    this.wakeUp();
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    await this.done;
    await this.settled();
  }

  /** Resolves when every lock/cancel/kill/requeue started so far has finished. */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all(this.inflight);
  }

  // ---- run loop -------------------------------------------------------------------------

  private async run(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) return;
      const r = await this.queue.update(signal);
      if (r.ok) break;
      const d = Math.max(this.pollIntervalMs / 10, 1000);
      this.logger.warn({ error: r.error.message }, `error updating queue: ${r.error.message}`);
      this.logger.info({}, `waiting ${formatDuration(d)} before retry`);
      await this.sleep(d, signal);
    }
    const poller = this.pollLoop(signal);

    const t0 = this.clock.now();
    this.logger.info({}, "FixStaleLocks starting.");
    try {
      await this.fixStaleLocks(signal);
    } catch (err) {
      this.logger.error({ error: errText(err) }, "FixStaleLocks failed");
    }
    this.logger.info(
      {},
      `FixStaleLocks finished (${formatDuration(this.clock.now() - t0)}), starting scheduling.`,
    );

    const unsubQueue = this.queue.subscribe(() => this.wakeUp());
    const unsubPool = this.pool.subscribe(() => this.wakeUp());
    try {
      while (!signal.aborted) {
        try {
          await this.runQueue();
          await this.sync();
          this.updateMetrics();
        } catch (err) {
          this.logger.error({ error: errText(err) }, "scheduling pass failed");
        }
        await this.waitForWake();
      }
    } finally {
      unsubQueue();
      unsubPool();
      await poller;
    }
  }

  private async pollLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const t0 = this.clock.now();
      const r = await this.queue.update(signal);
      if (!r.ok && !signal.aborted) {
        this.logger.warn({ error: r.error.message }, `error updating queue: ${r.error.message}`);
      }
      // A slow controller gets proportionally slower polling.
      await this.sleep(Math.max(this.pollIntervalMs, this.clock.now() - t0), signal);
    }
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const onAbort = () => {
        this.clock.clearTimeout(h);
        resolve();
      };
      const h = this.clock.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Like a 1-slot channel: notifications during a pass coalesce into one more pass. */
  private wakeUp(): void {
    this.wakeRequested = true;
    const w = this.wakeWaiter;
    this.wakeWaiter = undefined;
    w?.();
  }

  private waitForWake(): Promise<void> {
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wakeWaiter = () => {
        this.wakeRequested = false;
        resolve();
      };
    });
  }

  private armWakeup(ms: number): void {
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    this.wakeTimer = this.clock.setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeUp();
    }, ms);
  }

  // ---- per-container async operations ---------------------------------------------------

  /** Claim `uuid` for `op` unless another operation on it is in flight; then retry the pass soon. */
  private claim(uuid: ContainerUuid, op: OpName): boolean {
    const current = this.ops.get(uuid);
    if (current !== undefined) {
      this.logger.debug(
        { ContainerUUID: uuid },
        `uuidLock not available, Op=${current} in progress`,
      );
      this.armWakeup(250);
      return false;
    }
    this.ops.set(uuid, op);
    return true;
  }

  /** Count `p` for settled() until it ends. */
  private track(p: Promise<void>): void {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    void p.then(done, (err: unknown) => {
      done();
      throw err;
    });
  }

  /** Run `fn` unless another operation on `uuid` is in flight; then retry the pass soon. */
  private uuidOp(uuid: ContainerUuid, op: OpName, fn: () => Promise<void> | void): void {
    if (!this.claim(uuid, op)) return;
    const p = (async () => {
      try {
        await fn();
      } catch (err) {
        this.logger.error({ ContainerUUID: uuid, error: errText(err) }, `${op} failed`);
      } finally {
        this.ops.delete(uuid);
      }
    })();
    this.track(p);
  }

  private lockContainer(uuid: ContainerUuid): void {
    if (!this.claim(uuid, "lock")) return;
    this.track(this.lockOp(uuid));
  }

  /**
   * What uuidOp would run for a lock, in one async function instead of two: a long queue locks
   * thousands of containers per pass, and each lock holds its frames until the controller
   * answers. Errors, logs and the end of the operation fall on the same turns as uuidOp's.
   */
  private async lockOp(uuid: ContainerUuid): Promise<void> {
    try {
      try {
        if (this.queue.get(uuid)?.state !== "Queued") {
          this.logger
            .child({ ContainerUUID: uuid })
            .debug(
              {},
              "container no longer queued by the time we decided to lock it, doing nothing",
            );
          return;
        }
        const r = await this.queue.lock(uuid);
        if (!r.ok) {
          this.logger
            .child({ ContainerUUID: uuid })
            .warn({ error: r.error.message }, "error locking container");
          return;
        }
        const after = this.queue.get(uuid);
        if (after === undefined) {
          this.logger
            .child({ ContainerUUID: uuid })
            .error({}, "(BUG?) container disappeared from queue after Lock succeeded");
        } else if (after.state !== "Locked") {
          this.logger
            .child({ ContainerUUID: uuid })
            .warn({}, `(race?) container has state=${after.state} after Lock succeeded`);
        }
      } finally {
        // The turn uuidOp takes to await its inner function.
        await Promise.resolve();
      }
    } catch (err) {
      this.logger.error({ ContainerUUID: uuid, error: errText(err) }, "lock failed");
    } finally {
      this.ops.delete(uuid);
    }
  }

  private cancelContainer(uuid: ContainerUuid, reason: string): void {
    this.uuidOp(uuid, "cancel", async () => {
      const log = this.logger.child({ ContainerUUID: uuid });
      log.info({}, `cancelling container because ${reason}`);
      const r = await this.queue.cancel(uuid);
      if (!r.ok) log.warn({ error: r.error.message }, "error cancelling container");
    });
  }

  private killContainer(uuid: ContainerUuid, reason: string): void {
    this.uuidOp(uuid, "kill", () => {
      this.pool.killContainer(uuid, reason);
      this.pool.forgetContainer(uuid);
    });
  }

  private requeueContainer(uuid: ContainerUuid, reason: string): void {
    this.uuidOp(uuid, "requeue", async () => {
      const log = this.logger.child({ ContainerUUID: uuid });
      log.info({}, `requeueing locked container because ${reason}`);
      const r = await this.queue.unlock(uuid);
      if (!r.ok) log.warn({ error: r.error.message }, "error requeueing container");
    });
  }

  // ---- stale-lock fixer ----------------------------------------------------------------

  /**
   * After a restart, containers we locked may sit on VMs the pool has not re-probed yet. Wait
   * (up to StaleLockTimeout) for unknown workers to report, then unlock what is still unaccounted.
   */
  async fixStaleLocks(signal?: AbortSignal): Promise<void> {
    let notified: (() => void) | undefined;
    let expired = false;
    const poke = () => {
      const n = notified;
      notified = undefined;
      n?.();
    };
    const unsub = this.pool.subscribe(poke);
    const timer = this.clock.setTimeout(() => {
      expired = true;
      poke();
    }, this.staleLockTimeoutMs);
    const onAbort = () => poke();
    signal?.addEventListener("abort", onAbort);
    let stale: ContainerUuid[] = [];
    try {
      for (;;) {
        const counts = await this.pool.countWorkers(signal);
        if (!((counts.unknown ?? 0) > 0) || signal?.aborted) break;
        const running = this.pool.running();
        stale = [];
        for (const [uuid, ent] of this.queue.entries().entries) {
          if (ent.container.state === "Locked" && !running.has(uuid)) stale.push(uuid);
        }
        if (stale.length === 0) return;
        if (expired) break;
        await new Promise<void>((resolve) => (notified = resolve));
        if (expired) break;
      }
      // Deliberately as Arvados: the list computed before the last wait is the one unlocked.
      for (const uuid of stale) {
        if (signal?.aborted) return;
        const r = await this.queue.unlock(uuid, signal);
        if (!r.ok) {
          this.logger.warn(
            { ContainerUUID: uuid, error: r.error.message },
            `Unlock ${uuid}: ${r.error.message}`,
          );
        }
      }
    } finally {
      unsub();
      this.clock.clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  // ---- mapping pass ----------------------------------------------------------------------

  /** One mapping pass: lock, start, create, report statuses, and react to quota. */
  async runQueue(): Promise<void> {
    const running = this.pool.running();
    const views = this.pool.instances();
    const counts = await this.pool.countWorkers();
    let totalInstances = 0;
    for (const n of Object.values(counts)) totalInstances += n ?? 0;
    const { entries } = this.queue.entries();

    // 1. Instances, cheapest first, bigger first among equal prices.
    const slots: Slot[] = views.map((view) => {
      const type = this.types.get(view.arvados_instance_type);
      return { view, type, free: FreeResources.ofType(type), containers: [] };
    });
    slots.sort(compareSlots);

    // 2. Entries: running, then Locked, then priority, then first seen, then UUID. What the
    // pass reads of each entry is read once, in arrival order, into arrays: sorting and walking
    // then stay off the entry objects, which sit all over the heap in a large queue.
    const n = entries.size;
    const byArrival: QueueEntry<C>[] = [];
    const uuids: ContainerUuid[] = [];
    const states: ContainerState[] = [];
    const priorities: number[] = [];
    const firstSeen: number[] = [];
    /** Running ones before the others, and within each, Locked ones first (0–3). */
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

    // 3. What already runs on each instance. We subtract the stored needs, tmp mounts
    // included (Arvados recomputes them without mounts and may over-pack scratch).
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

    // 4. The dynamic concurrency cap.
    const now = this.clock.now();
    const l503 = this.last503()?.getTime() ?? 0;
    if (l503 > this.last503time) {
      this.last503time = l503;
      this.maxContainers = Math.max(1, running.size - 1);
    } else if (
      this.maxContainers > 0 &&
      (this.last503time === 0 || now - this.last503time > quietAfter503Ms)
    ) {
      const raised = Math.floor((running.size * 11) / 10) + 1;
      if (raised > this.maxContainers) this.maxContainers = raised;
    }
    this.metrics.last503Time.set(this.last503time === 0 ? 0 : this.last503time / 1000);
    if (this.instancesWithinQuota > 0 && this.instancesWithinQuota < totalInstances) {
      this.instancesWithinQuota = totalInstances;
    }
    if (this.pool.atQuota()) {
      if (this.maxContainers === 0 || this.maxContainers > totalInstances) {
        this.maxContainers = totalInstances > 0 ? totalInstances : 1;
      }
      this.instancesWithinQuota = totalInstances;
    } else if (
      this.instancesWithinQuota > 0 &&
      this.maxContainers > this.instancesWithinQuota + 1
    ) {
      this.maxContainers = this.instancesWithinQuota + 1;
    }
    this.metrics.maxConcurrentContainers.set(this.maxContainers);
    const maxContainers = this.maxContainers;
    let maxSupervisors = Math.floor(maxContainers * this.supervisorFraction);
    if (maxSupervisors < 1 && this.supervisorFraction > 0 && maxContainers > 0) maxSupervisors = 1;

    // 5. Per-pass state. The index lets each container look only at instances of its types.
    const index = new SlotIndex(slots, this.maxRunningPerInstance, this.logger);
    const atCapacityMemo = new Map<string, boolean>();
    let overquota: QueueEntry<C>[] = [];
    const overmaxsuper: QueueEntry<C>[] = [];
    let allocatedNotStarted = 0;
    let trying = running.size;
    let qpos = 0;
    let supervisors = 0;
    /** By position in `sorted`; none until the entry gets one. */
    const statuses: string[] = [];

    // 6. Walk the queue in order.
    tryrun: for (let i = 0; i < n; i++) {
      const k = order[i]!;
      const ent = sorted[i]!;
      const uuid = uuids[k]!;
      const state = states[k]!;
      const supervisor = supervisorAt[k] === 1;
      if (supervisor) supervisors++;
      if (rank[k]! < 2) {
        if (state === "Queued" || state === "Locked") {
          statuses[i] = status.preparingRuntimeEnvironment;
        }
        continue;
      }
      if (priorities[k]! < 1) {
        statuses[i] = status.priorityZero(state);
        continue;
      }
      if (supervisor && maxSupervisors > 0 && supervisors > maxSupervisors) {
        overmaxsuper.push(ent);
        statuses[i] = status.supervisorLimitReached(overmaxsuper.length);
        continue;
      }
      if (state !== "Queued" && state !== "Locked") continue;
      if (maxContainers > 0 && trying >= maxContainers) continue;
      trying++;

      // Computed only now that it matters; neither has side effects beyond the capacity memo.
      const best = index.best(ent);
      let availableType: InstanceType | undefined;
      for (const t of ent.instanceTypes) {
        const key = capacityKey(t);
        if (atCapacityMemo.get(key) === true) continue;
        if (this.pool.atCapacity(t)) {
          atCapacityMemo.set(key, true);
          continue;
        }
        availableType = t;
        break;
      }

      if (state === "Queued") {
        if (best === undefined && this.pool.atQuota()) {
          overquota = sorted.slice(i);
          break tryrun;
        }
        if (best === undefined && availableType === undefined) continue;
        if (this.ops.has(uuid)) {
          // Deviation: Arvados asks the pool to kill and tries to lock again, which only logs
          // "uuidLock not available" and re-arms a 250 ms wake-up. The operation in flight
          // notifies when it ends, so a long queue skips a pool scan per entry per pass.
        } else if (this.pool.killContainer(uuid, "about to lock")) {
          this.logger.info(
            { ContainerUUID: uuid },
            "not locking: crunch-run process from previous attempt has not exited",
          );
          continue;
        } else {
          this.lockContainer(uuid);
        }
        if (best !== undefined) index.reserve(best, ent);
        continue;
      }

      // Locked.
      if (best !== undefined) {
        index.reserve(best, ent);
        const workerState = best.view.worker_state;
        if (best.view.instance === "" || (workerState !== "idle" && workerState !== "running")) {
          statuses[i] = status.waitingNewInstance(best.view.arvados_instance_type);
          allocatedNotStarted++;
        } else if (this.pool.killContainer(uuid, "about to start")) {
          statuses[i] = status.waitingForPreviousAttempt;
          this.logger.info(
            { ContainerUUID: uuid, Instance: best.view.instance },
            "not restarting yet: crunch-run process from previous attempt has not exited",
          );
        } else if (this.pool.startContainer(best.view.instance, ent.container)) {
          statuses[i] = status.preparingRuntimeEnvironment;
        } else {
          statuses[i] = status.waitingNewInstance(best.view.arvados_instance_type);
          allocatedNotStarted++;
        }
        continue;
      }
      if (this.pool.atQuota()) {
        overquota = sorted.slice(i);
        break tryrun;
      }
      if (availableType === undefined) {
        qpos++;
        statuses[i] = status.waitingInstanceType(
          qpos,
          ent.instanceTypes.map((t) => t.Name).join(", "),
        );
        continue;
      }
      const created = this.pool.create(availableType);
      if (created === null) continue;
      statuses[i] = status.waitingNewInstance(availableType.Name);
      this.logger.info(
        { ContainerUUID: uuid, InstanceType: availableType.Name },
        "creating new instance",
      );
      allocatedNotStarted++;
      const slot: Slot = {
        view: created,
        type: availableType,
        free: FreeResources.ofType(availableType),
        containers: [],
      };
      // Only the index needs it: `slots` is walked again just for idle instances to shut down,
      // and this one is about to hold a container.
      index.add(slot);
      index.reserve(slot, ent);
    }

    // 7. Gauges.
    this.metrics.allocatedNotStarted.set(allocatedNotStarted);
    this.metrics.notAllocatedOverQuota.set(overquota.length + overmaxsuper.length);

    // 8. Everyone still without a status waits; capacity-blocked Locked ones took positions first.
    const atQuota = this.pool.atQuota();
    const out: ScheduledEntry<C>[] = [];
    for (let i = 0; i < n; i++) {
      let s = statuses[i] ?? "";
      const state = states[order[i]!];
      if (s === "" && (state === "Queued" || state === "Locked")) {
        qpos++;
        s = atQuota
          ? positionText(this.cloudResourcesTexts, qpos, status.waitingCloudResources)
          : positionText(this.clusterCapacityTexts, qpos, status.waitingClusterCapacity);
      }
      out.push({ entry: sorted[i]!, schedulingStatus: s });
    }
    // 9.
    this.scheduled = out;

    if (overquota.length === 0 && overmaxsuper.length === 0) return;

    // 10. Give back locks that capacity cannot serve soon. The head of the line keeps its
    // lock while instances exist, so it does not burn lock_count on every pass.
    const unlock =
      totalInstances > 0 && overquota.length > 1
        ? [...overmaxsuper, ...overquota.slice(1)]
        : [...overmaxsuper, ...overquota];
    for (const ent of unlock) {
      const uuid = ent.container.uuid;
      if (this.queue.get(uuid)?.state !== "Locked" || running.has(uuid)) continue;
      this.logger.info(
        { ContainerUUID: uuid },
        "unlock because pool capacity is used by higher priority containers",
      );
      const r = await this.queue.unlock(uuid);
      if (!r.ok)
        this.logger.warn({ ContainerUUID: uuid, error: r.error.message }, "error unlocking");
    }

    // 11. At quota, idle instances are worth more as room for other types.
    if (overquota.length > 0) {
      for (const slot of slots) {
        if (slot.containers.length === 0) this.pool.shutdown(slot.view.instance);
      }
    }
  }

  // ---- syncer ----------------------------------------------------------------------------

  /** Reconcile queue states with what the pool runs: cancel, kill, requeue, forget. */
  async sync(): Promise<void> {
    const counts = await this.pool.countWorkers();
    const anyUnknown = (counts.unknown ?? 0) > 0;
    const running = this.pool.running();
    const { entries, threshold } = this.queue.entries();
    const thresholdMs = threshold.getTime();
    for (const [uuid, ent] of entries) {
      const ctr = ent.container;
      const inRunning = running.has(uuid);
      const exitTime = running.get(uuid) ?? null;
      const exited = exitTime !== null;
      // The cache was fetched after crunch-run exited, so its state is final.
      const fresh = exited && thresholdMs > exitTime.getTime();
      switch (ctr.state) {
        case "Running":
          if (!inRunning) {
            if (!anyUnknown) this.cancelContainer(uuid, "not running on any worker");
          } else if (exited && fresh) {
            this.cancelContainer(uuid, "state=Running after crunch-run exited");
          } else if (ctr.priority === 0) {
            this.killContainer(uuid, "priority=0");
          }
          break;
        case "Complete":
        case "Cancelled":
          if (inRunning) {
            this.killContainer(uuid, `state=${ctr.state}`);
          } else {
            this.logger.info(
              { ContainerUUID: uuid, State: ctr.state },
              "container finished -- dropping from queue",
            );
            this.queue.forget(uuid);
          }
          break;
        case "Queued":
          if (inRunning) {
            this.killContainer(uuid, "pool says running, but queue says state=Queued");
          } else if (ctr.priority === 0) {
            this.logger.info(
              { ContainerUUID: uuid, State: ctr.state },
              "container on hold -- dropping from queue",
            );
            this.queue.forget(uuid);
          }
          break;
        case "Locked":
          if (inRunning && exited && fresh) {
            this.requeueContainer(uuid, "crunch-run exited");
          } else if (inRunning && !exited && ctr.priority === 0) {
            this.killContainer(uuid, "priority=0");
          } else if (!inRunning && ctr.priority === 0) {
            this.requeueContainer(uuid, "priority=0");
          }
          break;
        default:
          if (!this.warnedUnexpectedState) {
            this.warnedUnexpectedState = true;
            this.logger.error(
              { ContainerUUID: uuid, State: String(ctr.state) },
              "BUG: unexpected state",
            );
          }
      }
    }
    for (const uuid of running.keys()) {
      if (!entries.has(uuid)) this.killContainer(uuid, "not in queue");
    }
  }

  // ---- metrics ---------------------------------------------------------------------------

  /** containers_longest_wait_time_seconds: the oldest container still waiting to start. */
  updateMetrics(): void {
    const running = this.pool.running();
    let earliest = Infinity;
    for (const [uuid, ent] of this.queue.entries().entries) {
      const c = ent.container;
      if (c.priority <= 0 || (c.state !== "Queued" && c.state !== "Locked")) continue;
      if (running.has(uuid)) continue;
      const t = Date.parse(c.created_at);
      if (Number.isFinite(t) && t < earliest) earliest = t;
    }
    this.metrics.longestWaitTimeSeconds.set(
      earliest === Infinity ? 0 : Math.max(0, (this.clock.now() - earliest) / 1000),
    );
  }
}

function positionText(cache: string[], position: number, make: (p: number) => string): string {
  let t = cache[position];
  if (t === undefined) {
    t = make(position);
    cache[position] = t;
  }
  return t;
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

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A duration the way Go prints one (`1s`, `250ms`, `1m30s`), for familiar log lines. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h > 0 ? `${h}h` : ""}${h > 0 || m > 0 ? `${m}m` : ""}${Number(s.toFixed(3))}s`;
}
