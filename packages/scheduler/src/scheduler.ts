import {
  systemClock,
  type Clock,
  type InstanceType,
  type Logger,
  type QueuedContainer,
  type TimerHandle,
  type Timers,
} from "@dispatch-cloud/arvados-types";
import type { Registry } from "prom-client";
import { ConcurrencyLimit } from "./concurrency.js";
import { fixStaleLocks } from "./fix-stale-locks.js";
import { errText, formatDuration } from "./format.js";
import { SchedulerMetrics } from "./metrics.js";
import { ContainerOperations } from "./operations.js";
import type { ContainerQueue, WorkerPool } from "./ports.js";
import { PositionTexts, runQueue, type PassDeps, type ScheduledEntry } from "./run-queue.js";
import { Syncer } from "./sync.js";
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

/**
 * Decides which container runs where: locks queued containers, asks the pool for instances,
 * starts containers on ready ones, and tells waiting users why they wait. This is the loop
 * (dispatcher-core §1.3); its phases are the mapping pass (run-queue.ts), the stale-lock fixer
 * (fix-stale-locks.ts) and the syncer (sync.ts).
 */
export class Scheduler<C extends QueuedContainer = QueuedContainer> {
  private readonly queue: ContainerQueue<C>;
  private readonly pool: WorkerPool;
  private readonly logger: Logger;
  private readonly clock: Pick<Clock, "now"> & Timers;
  private readonly metrics: SchedulerMetrics;
  private readonly pollIntervalMs: number;
  private readonly staleLockTimeoutMs: number;
  private readonly limit: ConcurrencyLimit;
  private readonly ops: ContainerOperations<C>;
  private readonly syncer: Syncer<C>;
  private readonly pass: PassDeps<C>;
  private scheduled: readonly ScheduledEntry<C>[] = [];

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
    this.pollIntervalMs = opts.pollIntervalMs ?? 10_000;
    this.staleLockTimeoutMs = opts.staleLockTimeoutMs ?? 60_000;
    const last503 = opts.last503 ?? (() => null);
    const initial = opts.initialQuotaEstimate ?? 0;
    this.metrics = new SchedulerMetrics(opts.registry, () => this.pool.atQuota());
    this.limit = new ConcurrencyLimit(
      initial > 0 ? initial : (opts.maxInstances ?? 0),
      opts.supervisorFraction ?? 0,
      this.metrics,
    );
    this.ops = new ContainerOperations(this.queue, this.pool, this.logger, (ms) =>
      this.armWakeup(ms),
    );
    this.syncer = new Syncer(this.queue, this.pool, this.logger, this.ops);
    this.pass = {
      queue: this.queue,
      pool: this.pool,
      logger: this.logger,
      types: new Map(opts.instanceTypes.map((t) => [t.Name, t])),
      maxRunningPerInstance: opts.maxRunningContainersPerInstance ?? 0,
      metrics: this.metrics,
      ops: this.ops,
      limit: this.limit,
      texts: new PositionTexts(),
      now: () => this.clock.now(),
      last503: () => last503()?.getTime() ?? 0,
      publish: (scheduled) => (this.scheduled = scheduled),
    };
  }

  /** The sorted queue with statuses from the latest pass (for the management API). */
  lastQueue(): readonly ScheduledEntry<C>[] {
    return this.scheduled;
  }

  /** Current dynamic cap on concurrently running containers (0 = none). */
  maxConcurrentContainers(): number {
    return this.limit.maxContainers;
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
  settled(): Promise<void> {
    return this.ops.settled();
  }

  // ---- the phases ------------------------------------------------------------------------

  /** One mapping pass: lock, start, create, report statuses, and react to quota. */
  runQueue(): Promise<void> {
    return runQueue(this.pass);
  }

  /** Reconcile queue states with what the pool runs: cancel, kill, requeue, forget. */
  sync(): Promise<void> {
    return this.syncer.sync();
  }

  /**
   * After a restart, containers we locked may sit on VMs the pool has not re-probed yet. Wait
   * (up to StaleLockTimeout) for unknown workers to report, then unlock what is still unaccounted.
   */
  fixStaleLocks(signal?: AbortSignal): Promise<void> {
    const { queue, pool, logger, clock, staleLockTimeoutMs } = this;
    return fixStaleLocks({ queue, pool, logger, clock, staleLockTimeoutMs }, signal);
  }

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
}
