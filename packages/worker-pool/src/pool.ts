import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { readFile } from "node:fs/promises";
import {
  WORKER_STATES,
  containerUuid,
  pendingInstanceView,
  type ActionResult,
  type Clock,
  type ContainerUuid,
  type IdleBehavior,
  type InstanceId,
  type InstanceType,
  type InstanceView,
  type Logger,
  type WorkerState,
} from "@dispatch-cloud/arvados-types";
import {
  CapacityError,
  QuotaError,
  RateLimitError,
  createTags,
  errorMessage,
  initCommandWithSecret,
  tagKeys,
  type Instance,
  type InstanceSet,
  type TagKeys,
} from "@dispatch-cloud/cloud-driver-api";
import type { Registry } from "prom-client";
import type { ExecutorFactory } from "./executor.js";
import { CreateHolds } from "./holds.js";
import { PoolMetrics } from "./metrics.js";
import { probeLoop } from "./probe-loop.js";
import { RunnerProgramLoader } from "./runner-program.js";
import {
  MAX_CREATE_OPS_THROTTLE_MS,
  placeholderType,
  resolveSettings,
  type Settings,
} from "./settings.js";
import { Subscribers, type PoolSubscription } from "./subscription.js";
import { BackgroundTasks, Gate } from "./tasks.js";
import { Throttle, suspendedMessage } from "./throttle.js";
import type { ContainerToStart, CreateResult, WorkerCounts, WorkerPoolConfig } from "./types.js";
import { Worker, type WorkerContext } from "./worker.js";

export interface WorkerPoolDeps {
  /** The decorated instance set (metrics, rate limit, default tags, tag filter). */
  readonly instanceSet: InstanceSet;
  readonly executorFactory: ExecutorFactory;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly config: WorkerPoolConfig;
  /** Uniform in [0, 1), for probe jitter. Default Math.random. */
  readonly random?: () => number;
  /** Reads DeployRunnerBinary. Default fs.readFile. */
  readonly readFile?: (path: string) => Promise<Buffer>;
}

/**
 * The fleet, as Arvados's pool.go: creates (with quota, capacity and rate-limit holds), listing
 * sync and adoption, the probe loop, the scheduler's and the management API's calls, and the
 * pool metrics. Each VM's own life (probes, runner deployment, container starts and kills,
 * shutdown rules) is its Worker's.
 *
 * Not a port of Arvados's code; the behaviour follows spec/cloud-side.md §5.
 */
export class WorkerPool {
  readonly #s: Settings;
  readonly #keys: TagKeys;
  readonly #set: InstanceSet;
  readonly #executorFactory: ExecutorFactory;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: PoolMetrics;
  readonly #random: () => number;
  readonly #program: RunnerProgramLoader;
  readonly #ctx: WorkerContext;

  readonly #workers = new Map<InstanceId, Worker>();
  /** Unfinished creates, by instance secret. */
  readonly #creating = new Map<string, { readonly time: number; readonly type: InstanceType }>();
  readonly #exited = new Map<ContainerUuid, number>();
  readonly #holds: CreateHolds;
  readonly #createThrottle = new Throttle();
  readonly #listThrottle = new Throttle();
  /** Opens at the first successful listing. */
  readonly #loaded = new Gate();
  readonly #subs: Subscribers;
  #seq = 0;
  readonly #stop = new AbortController();
  readonly #tasks: BackgroundTasks;
  #started = false;
  #metricsQueued = false;

  constructor(deps: WorkerPoolDeps) {
    this.#s = resolveSettings(deps.config);
    this.#keys = tagKeys(this.#s.tagKeyPrefix);
    this.#set = deps.instanceSet;
    this.#executorFactory = deps.executorFactory;
    this.#clock = deps.clock;
    this.#log = deps.logger;
    this.#random = deps.random ?? Math.random;
    this.#metrics = new PoolMetrics(deps.registry);
    this.#subs = new Subscribers(this.#log);
    this.#tasks = new BackgroundTasks(this.#log);
    this.#holds = new CreateHolds((type) => this.#set.instanceQuotaGroup(type));
    this.#program = new RunnerProgramLoader({
      deployRunnerBinary: deps.config.deployRunnerBinary,
      deployRunnerDirectory: this.#s.deployRunnerDirectory,
      crunchRunCommand: this.#s.crunchRunCommand,
      readFile: deps.readFile ?? ((p) => readFile(p)),
      logger: this.#log,
      onLoaded: () => this.#notify(),
    });
    this.#ctx = {
      settings: this.#s,
      keys: this.#keys,
      metrics: this.#metrics,
      runnerProgram: this.#program,
      stopSignal: this.#stop.signal,
      now: () => this.#now(),
      sleep: (ms) => this.#sleep(ms),
      nextSeq: () => ++this.#seq,
      notify: () => this.#notify(),
      spawn: (p, track) => this.#spawn(p, track),
      tracked: (p) => this.#tasks.tracked(p),
      containerExited: (uuid, at) => this.#exited.set(uuid, at),
    };
    // Every in-flight command, sleep and cloud call listens on the stop signal until it ends,
    // so a pool of a thousand workers legitimately holds a thousand listeners; Node's default
    // cap of 10 would only print a false MaxListenersExceededWarning. Each operation removes
    // its listener when it finishes (the tests count them), so lifting the cap hides no leak.
    setMaxListeners(0, this.#stop.signal);
    this.#updateMetrics();
  }

  /** Start the sync and probe loops and the first runner load. Idempotent. */
  start(): void {
    if (this.#started || this.#stop.signal.aborted) return;
    this.#started = true;
    this.#spawn(this.#program.load());
    this.#spawn(this.#syncLoop(), false);
    this.#spawn(this.#probeLoop(), false);
  }

  /**
   * Stop the loops and close the executors. Destroys no VM and kills no container: a new
   * pool over the same cloud adopts everything.
   */
  async stop(): Promise<void> {
    this.#stop.abort(new Error("worker pool stopped"));
    this.#subs.closeAll();
    await Promise.all(
      [...this.#workers.values()].map((w) => w.executor.close().catch(() => undefined)),
    );
  }

  // ---------------------------------------------------------------- public API

  /**
   * Without an argument: a one-slot channel to wait on. With a listener: it is called
   * (coalesced, in a microtask) after notifications; the result unsubscribes.
   */
  subscribe(): PoolSubscription;
  subscribe(listener: () => void): () => void;
  subscribe(listener?: () => void): PoolSubscription | (() => void) {
    return this.#subs.subscribe(listener);
  }

  unsubscribe(sub: PoolSubscription): void {
    this.#subs.unsubscribe(sub);
  }

  /**
   * Ask for one new VM of `type`. Returns at once: the cloud call runs in the background and
   * a placeholder view (instance "", state booting) stands for it meanwhile.
   */
  create(type: InstanceType): CreateResult {
    const log = this.#log.child({ InstanceType: type.Name });
    if (this.#program.program === null) {
      // Boot would certainly fail without the runner; a load attempt notifies on success.
      this.#spawn(this.#program.load());
      return { ok: false, reason: "runner-unavailable" };
    }
    if (this.atCapacity(type)) return { ok: false, reason: "at-capacity" };
    if (this.atQuota()) return { ok: false, reason: "at-quota" };
    const now = this.#now();
    if (now < this.#createThrottle.until) return { ok: false, reason: "throttled" };
    const maxOps = this.#s.maxConcurrentInstanceCreateOps;
    if (maxOps > 0 && this.#creating.size >= maxOps) {
      log.info(
        { MaxConcurrentInstanceCreateOps: maxOps },
        "reached MaxConcurrentInstanceCreateOps",
      );
      this.#throttle(
        this.#createThrottle,
        now + MAX_CREATE_OPS_THROTTLE_MS,
        "reached MaxConcurrentInstanceCreateOps",
      );
      return { ok: false, reason: "max-concurrent-creates" };
    }
    const secret = randomBytes(20).toString("hex");
    this.#creating.set(secret, { time: now, type });
    this.#spawn(this.#doCreate(secret, type, log));
    if (this.#s.maxInstances > 0 && this.#total() === this.#s.maxInstances) {
      log.info({}, `now at MaxInstances limit of ${this.#s.maxInstances} instances`);
    }
    return { ok: true, view: pendingInstanceView(type) };
  }

  /** No creates until instances go away (quota error, or MaxInstances reached). */
  atQuota(): boolean {
    return this.#holds.atQuota(this.#now(), this.#total(), this.#s.maxInstances);
  }

  /** A capacity error holds creates of this type (for everything, its quota group or itself). */
  atCapacity(type: InstanceType): boolean {
    return this.#holds.atCapacity(type, this.#now());
  }

  /** One view per worker plus one per pending create, sorted by instance id then type name. */
  instances(): InstanceView[] {
    const out: InstanceView[] = [];
    for (const w of this.#workers.values()) out.push(w.view());
    for (const c of this.#creating.values()) out.push(pendingInstanceView(c.type));
    return out.sort((a, b) =>
      a.instance !== b.instance
        ? cmp(a.instance, b.instance)
        : cmp(a.arvados_instance_type, b.arvados_instance_type),
    );
  }

  /**
   * Workers that could take a new container, by type name: pending creates plus booting,
   * unknown and empty idle workers with behaviour `run`. (Arvados removed this method; kept
   * for callers that plan by type.)
   */
  unallocated(): Map<string, number> {
    const out = new Map<string, number>();
    const add = (name: string): void => {
      out.set(name, (out.get(name) ?? 0) + 1);
    };
    for (const c of this.#creating.values()) add(c.type.Name);
    for (const w of this.#workers.values()) {
      if (w.idleBehavior !== "run") continue;
      if (w.state === "booting" || w.state === "unknown") add(w.instType.Name);
      else if (w.state === "idle" && w.containers === 0) add(w.instType.Name);
    }
    return out;
  }

  /** Workers by state (pending creates excluded). Waits for the first successful listing. */
  async countWorkers(signal?: AbortSignal): Promise<WorkerCounts> {
    if (!this.#loaded.isOpen) {
      await this.#loaded.wait(signal, "countWorkers aborted before the first instance list");
    }
    const counts = Object.fromEntries(WORKER_STATES.map((s) => [s, 0])) as Record<
      WorkerState,
      number
    >;
    for (const w of this.#workers.values()) counts[w.state]++;
    return counts;
  }

  /** True once the first listing succeeded. */
  get loaded(): boolean {
    return this.#loaded.isOpen;
  }

  /**
   * Containers the pool knows: null for every running or starting one (shutdown workers
   * included), the exit time for each exited one not yet forgotten (overriding "running").
   */
  running(): Map<ContainerUuid, Date | null> {
    const out = new Map<ContainerUuid, Date | null>();
    for (const w of this.#workers.values()) {
      for (const uuid of w.running.keys()) out.set(uuid, null);
      for (const uuid of w.starting.keys()) out.set(uuid, null);
    }
    for (const [uuid, t] of this.#exited) out.set(uuid, new Date(t));
    return out;
  }

  /** Start crunch-run for `ctr` on an idle or running `run` worker; false otherwise. */
  startContainer(id: InstanceId | string, ctr: ContainerToStart): boolean {
    const w = this.#workers.get(id as InstanceId);
    return w !== undefined && w.startContainer(containerUuid(ctr.uuid), ctr);
  }

  /**
   * Ask crunch-run to stop `uuid` (SIGTERM every TimeoutSignal, giving up after TimeoutTERM).
   * False if no worker tracks it.
   */
  killContainer(uuid: ContainerUuid | string, reason: string): boolean {
    for (const w of this.#workers.values()) {
      const rr = w.runner(containerUuid(uuid));
      if (rr !== undefined) {
        rr.kill(reason);
        return true;
      }
    }
    this.#log.debug({ ContainerUUID: uuid, Reason: reason }, "cannot kill: already disappeared");
    return false;
  }

  /** Drop the "exited" record of a container (no effect if it has none). */
  forgetContainer(uuid: ContainerUuid | string): void {
    this.#exited.delete(containerUuid(uuid));
  }

  /** The scheduler's shutdown: only booting or idle workers that are not held. */
  shutdown(id: InstanceId | string): boolean {
    const w = this.#workers.get(id as InstanceId);
    this.#log.info({ Instance: id }, "shutdown requested");
    if (w === undefined || w.idleBehavior === "hold") return false;
    if (w.state !== "booting" && w.state !== "idle") return false;
    w.reportBootOutcome("aborted");
    w.shutdown();
    return true;
  }

  /** Shut a VM down now, whatever its state and behaviour (management API). */
  killInstance(id: InstanceId | string, reason: string): ActionResult {
    const w = this.#workers.get(id as InstanceId);
    if (w === undefined) return { ok: false, error: "instance not found" };
    w.logger.info({ Reason: reason }, "shutting down");
    w.reportBootOutcome("aborted");
    w.shutdown();
    return { ok: true };
  }

  setIdleBehavior(id: InstanceId | string, behavior: IdleBehavior): ActionResult {
    const w = this.#workers.get(id as InstanceId);
    if (w === undefined) return { ok: false, error: "requested instance does not exist" };
    w.setIdleBehavior(behavior);
    this.#notify();
    return { ok: true };
  }

  /** Healthy unless the runner binary cannot be loaded. */
  async checkHealth(): Promise<ActionResult> {
    await this.#program.load();
    if (this.#program.program !== null) return { ok: true };
    return { ok: false, error: `error loading runner binary: ${this.#program.error}` };
  }

  // ------------------------------------------------- loop bodies (also for tests)

  /** One listing reconciliation (§5.5). Errors are logged, never thrown. */
  async syncNow(): Promise<void> {
    const now0 = this.#now();
    if (now0 < this.#listThrottle.until) {
      this.#log.warn({ error: this.#listThrottle.message }, "sync failed");
      return;
    }
    const seqAtStart = this.#seq;
    let listed: Instance[];
    try {
      listed = await this.#set.instances(
        { [this.#keys.instanceSetId]: this.#s.config.instanceSetId },
        this.#stop.signal,
      );
    } catch (err) {
      if (this.#stop.signal.aborted) return;
      if (RateLimitError.is(err) && err.earliestRetry.getTime() > this.#now()) {
        this.#log.warn(
          { CallType: "list instances", error: errorMessage(err) },
          "suspending remote calls due to rate-limit error",
        );
        this.#throttle(
          this.#listThrottle,
          err.earliestRetry.getTime(),
          suspendedMessage(this.#now(), err),
        );
      }
      this.#log.warn({ error: errorMessage(err) }, "sync failed");
      return;
    }
    if (this.#stop.signal.aborted) return;
    const now = this.#now();
    for (const inst of listed) {
      const w = this.#listed(inst);
      if (
        w.state === "shutdown" &&
        w.destroyed !== null &&
        now - w.destroyed > this.#s.timeoutShutdownMs
      ) {
        w.logger.info({}, "worker still listed after shutdown; retrying");
        w.shutdown();
      }
    }
    for (const w of this.#workers.values()) {
      if (w.updatedSeq > seqAtStart) continue;
      w.logger.info({ State: w.state }, "instance disappeared in cloud");
      w.reportBootOutcome("disappeared");
      this.#metrics.instancesDisappeared.inc({ state: w.state });
      if (w.destroyed !== null) {
        this.#metrics.timeFromShutdownToGone.observe((now - w.destroyed) / 1000);
      }
      this.#workers.delete(w.id);
      w.disappeared();
      this.#notify();
    }
    if (this.#holds.releaseQuota(this.#total())) this.#notify();
    if (!this.#loaded.isOpen) {
      this.#log.info({ N: this.#workers.size }, "loaded initial instance list");
      this.#loaded.open();
      this.#notify();
    }
  }

  /**
   * One probe tick without the pacing of the loop: shut down what is eligible, then probe
   * every other worker and wait for the probes to finish.
   */
  async probeNow(): Promise<void> {
    await Promise.all(this.#probeCandidates().map((w) => w.probe()));
  }

  /** Wait until every background operation the pool started so far has finished. */
  async settled(): Promise<void> {
    await this.#tasks.settled();
  }

  // ---------------------------------------------------------------- loops

  async #syncLoop(): Promise<void> {
    for (;;) {
      await this.syncNow();
      if (!(await this.#sleep(this.#s.syncIntervalMs))) return;
    }
  }

  #probeLoop(): Promise<void> {
    return probeLoop({
      intervalMs: this.#s.probeIntervalMs,
      maxProbesPerSecond: this.#s.maxProbesPerSecond,
      now: () => this.#now(),
      sleep: (ms) => this.#sleep(ms),
      random: this.#random,
      candidates: () => this.#probeCandidates(),
      current: (w) => this.#workers.get(w.id) === w,
      launch: (w) => this.#spawn(w.probe()),
    });
  }

  /** Every worker not shut down, after shutting down those the idle rules say should go. */
  #probeCandidates(): Worker[] {
    const out: Worker[] = [];
    for (const w of this.#workers.values()) {
      if (w.state === "shutdown" || w.shutdownIfIdle()) continue;
      out.push(w);
    }
    return out;
  }

  // ---------------------------------------------------------------- adoption and creates

  /** A VM in the listing: update its worker, or adopt it as a new one. */
  #listed(inst: Instance): Worker {
    const existing = this.#workers.get(inst.id);
    if (existing !== undefined) {
      existing.listed(inst);
      return existing;
    }
    const typeName = inst.tags[this.#keys.instanceType] ?? "";
    const configured = Object.hasOwn(this.#s.config.instanceTypes, typeName)
      ? this.#s.config.instanceTypes[typeName]
      : undefined;
    return this.#adopt(inst, configured ?? placeholderType(typeName), configured === undefined);
  }

  #adopt(inst: Instance, type: InstanceType, unrecognizedType: boolean): Worker {
    const secret = inst.tags[this.#keys.instanceSecret] ?? "";
    const w = new Worker(this.#ctx, {
      instance: inst,
      type,
      created: this.#creating.has(secret),
      unrecognizedType,
      executorFactory: this.#executorFactory,
      logger: this.#log,
    });
    this.#workers.set(inst.id, w);
    w.logger.info({ State: w.state, IdleBehavior: w.idleBehavior }, "instance appeared in cloud");
    this.#notify();
    return w;
  }

  async #doCreate(secret: string, type: InstanceType, log: Logger): Promise<void> {
    const tags = createTags(this.#keys, this.#s.config.instanceSetId, type, secret);
    try {
      const inst = await this.#set.create({
        instanceType: type,
        imageId: this.#s.config.imageId,
        tags,
        initCommand: initCommandWithSecret(secret, this.#s.instanceInitCommand),
        publicKey: this.#s.config.publicKey,
      });
      // Still in `creating`, so the worker starts as booting.
      const existing = this.#workers.get(inst.id);
      if (existing !== undefined) existing.listed(inst);
      else this.#adopt(inst, type, false);
    } catch (err) {
      this.#createFailed(err, type, log);
    } finally {
      this.#creating.delete(secret);
      this.#notify();
    }
  }

  #createFailed(err: unknown, type: InstanceType, log: Logger): void {
    const now = this.#now();
    if (QuotaError.is(err)) {
      const until = this.#holds.quotaError(this.#total() - 1, now, log);
      if (until !== null) this.#notifyAt(until);
    }
    if (CapacityError.is(err)) this.#notifyAt(this.#holds.capacityError(err.scope, type, now, log));
    log.error(
      {
        error: errorMessage(err),
        isCapacityError: CapacityError.is(err),
        isQuotaError: QuotaError.is(err),
      },
      "create failed",
    );
    if (RateLimitError.is(err) && err.earliestRetry.getTime() > now) {
      this.#throttle(this.#createThrottle, err.earliestRetry.getTime(), suspendedMessage(now, err));
    }
  }

  // ---------------------------------------------------------------- plumbing

  /** Workers plus unfinished creates. */
  #total(): number {
    return this.#workers.size + this.#creating.size;
  }

  #now(): number {
    return this.#clock.now();
  }

  /** Sleep on the clock; false once the pool is stopped. */
  async #sleep(ms: number): Promise<boolean> {
    if (this.#stop.signal.aborted) return false;
    try {
      await this.#clock.sleep(Math.max(0, ms), this.#stop.signal);
      return !this.#stop.signal.aborted;
    } catch {
      return false;
    }
  }

  #throttle(t: Throttle, until: number, message: string): void {
    t.suspend(until, message);
    this.#notifyAt(until);
  }

  #notifyAt(when: number): void {
    this.#spawn(
      (async () => {
        if (await this.#sleep(when - this.#now())) this.#notify();
      })(),
      false,
    );
  }

  #spawn(p: Promise<void>, track = true): void {
    this.#tasks.spawn(p, track);
  }

  #notify(): void {
    this.#subs.post();
    if (!this.#metricsQueued) {
      this.#metricsQueued = true;
      queueMicrotask(() => {
        this.#metricsQueued = false;
        this.#updateMetrics();
      });
    }
  }

  #updateMetrics(): void {
    const typeNames = Object.keys(this.#s.config.instanceTypes);
    this.#metrics.update(this.#workers.values(), typeNames, this.#now());
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
