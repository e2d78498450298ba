import { createHash, randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { readFile } from "node:fs/promises";
import {
  WORKER_STATES,
  goTime,
  isIdleBehavior,
  pendingInstanceView,
  type ActionResult,
  type Clock,
  type ContainerUuid,
  type ExecResult,
  type ExecuteOptions,
  type ExecutorTarget,
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
  errorMessage,
  initCommandWithSecret,
  tagKeys,
  type Instance,
  type InstanceSet,
  type InstanceTags,
  type TagKeys,
} from "@dispatch-cloud/cloud-driver-api";
import type { Registry } from "prom-client";
import {
  detachCommand,
  detachStdin,
  installCommand,
  killCommand,
  listCommand,
  md5sumCommand,
  md5sumExpected,
  parseListOutput,
  pricesJson,
} from "./commands.js";
import type { Executor, ExecutorFactory } from "./executor.js";
import { INSTANCE_CATEGORIES, PoolMetrics, type InstanceCategory } from "./metrics.js";
import {
  CAPACITY_ERROR_TTL_MS,
  MAX_CREATE_OPS_THROTTLE_MS,
  QUOTA_ERROR_TTL_MS,
  SIGTERM,
  placeholderType,
  resolveSettings,
  type Settings,
} from "./settings.js";
import type {
  BootOutcome,
  ContainerToStart,
  CreateResult,
  WorkerCounts,
  WorkerPoolConfig,
} from "./types.js";

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
 * A one-slot notification channel: notifications that arrive while nobody waits coalesce
 * into one, so a subscriber sees at least one wake-up after every change.
 */
export interface PoolSubscription {
  /**
   * Resolves true at the next notification (at once if one arrived since the last wait);
   * false when unsubscribed or aborted.
   */
  wait(signal?: AbortSignal): Promise<boolean>;
}

class Subscription implements PoolSubscription {
  #pending = false;
  #closed = false;
  #waiters = new Set<(v: boolean) => void>();

  post(): void {
    if (this.#waiters.size === 0) {
      this.#pending = true;
      return;
    }
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w(true);
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#waiters) w(false);
    this.#waiters.clear();
  }

  wait(signal?: AbortSignal): Promise<boolean> {
    if (this.#closed || signal?.aborted) return Promise.resolve(false);
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const done = (v: boolean): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve(v);
      };
      const onAbort = (): void => {
        this.#waiters.delete(done);
        resolve(false);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(done);
    });
  }
}

/** A suspension of one kind of cloud call until a time. */
interface Throttle {
  until: number;
  message: string;
}

/** One crunch-run process the pool tracks on a worker. */
class Runner {
  /** A kill was requested (the escalation loop runs at most once). */
  stopping = false;
  /** TimeoutTERM passed without the process going away. */
  givenUp = false;
  closed = false;
  constructor(readonly uuid: string) {}
  close(): void {
    this.closed = true;
  }
}

interface Worker {
  readonly id: InstanceId;
  state: WorkerState;
  idleBehavior: IdleBehavior;
  instance: Instance;
  instType: InstanceType;
  readonly executor: Executor;
  logger: Logger;
  appeared: number;
  probed: number;
  updated: number;
  /** Increases at every change of `updated`: sync and probe compare this, not times. */
  updatedSeq: number;
  busy: number;
  destroyed: number | null;
  firstSshConnection: number | null;
  lastUuid: string;
  readonly running: Map<string, Runner>;
  readonly starting: Map<string, Runner>;
  probing: boolean;
  bootOutcomeReported: boolean;
  timeToReadyReported: boolean;
  staleRunLockSince: number | null;
}

interface RunnerProgram {
  /** The remote command that runs crunch-run. */
  readonly cmd: string;
  /** The binary to install, or null when nothing is deployed. */
  readonly data: Buffer | null;
  readonly hash: string;
}

interface ProbeResult {
  readonly ok: boolean;
  readonly running: string[];
  readonly broken: boolean;
}

/**
 * Deviation: Arvados runs probe commands without a timeout, so a VM that stops answering on an
 * open connection blocks its probes until TCP gives up. A minute (the SSH dial timeout) bounds
 * each probe command, or less where TimeoutBooting/TimeoutProbe is shorter: a command cannot
 * usefully outlast the time after which the worker is given up anyway.
 */
const PROBE_COMMAND_TIMEOUT_MS = 60_000;

/** Errors of a boot probe that just mean "not up yet" (logged at debug). */
const EXPECTED_BOOT_ERROR =
  /no address|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|connect|timed out|booting/i;

/**
 * Every VM's life from create to gone: creates (with quota, capacity and rate-limit holds),
 * listing sync and adoption, boot and run probes, runner deployment, container start and kill,
 * idle shutdown and destroy retries, and the pool metrics.
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
  readonly #readFile: (path: string) => Promise<Buffer>;

  readonly #workers = new Map<InstanceId, Worker>();
  /** Unfinished creates, by instance secret. */
  readonly #creating = new Map<string, { readonly time: number; readonly type: InstanceType }>();
  readonly #exited = new Map<string, number>();
  /** Set after a quota error: "at quota until fewer than this many instances exist". */
  #quotaFewerThan: number | null = null;
  #quotaUntil = 0;
  /** Capacity holds by namespaced key (`all`, `group:…`, `type:…`) → deadline. */
  readonly #capacity = new Map<string, number>();
  readonly #createThrottle: Throttle = { until: 0, message: "" };
  readonly #listThrottle: Throttle = { until: 0, message: "" };
  #loaded = false;
  readonly #loadedWaiters = new Set<() => void>();
  readonly #subs = new Set<Subscription>();
  #seq = 0;
  #runner: RunnerProgram | null = null;
  #runnerError: string | null = null;
  #runnerLoading: Promise<void> | null = null;
  readonly #stop = new AbortController();
  readonly #tasks = new Set<Promise<void>>();
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
    this.#readFile = deps.readFile ?? ((p) => readFile(p));
    this.#metrics = new PoolMetrics(deps.registry);
    // Every in-flight command, sleep and cloud call listens on the stop signal until it ends,
    // so a pool of a thousand workers legitimately holds a thousand listeners; Node's default
    // cap of 10 would only print a false MaxListenersExceededWarning. Each operation removes
    // its listener when it finishes (the tests count them), so lifting the cap hides no leak.
    setMaxListeners(0, this.#stop.signal);
    if (deps.config.deployRunnerBinary === "") {
      this.#runner = { cmd: this.#s.crunchRunCommand, data: null, hash: "" };
    }
    this.#updateMetrics();
  }

  /** Start the sync and probe loops and the first runner load. Idempotent. */
  start(): void {
    if (this.#started || this.#stop.signal.aborted) return;
    this.#started = true;
    this.#spawn(this.#loadRunner());
    this.#spawn(this.#syncLoop(), false);
    this.#spawn(this.#probeLoop(), false);
  }

  /**
   * Stop the loops and close the executors. Destroys no VM and kills no container: a new
   * pool over the same cloud adopts everything.
   */
  async stop(): Promise<void> {
    this.#stop.abort(new Error("worker pool stopped"));
    for (const s of this.#subs) s.close();
    this.#subs.clear();
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
    const s = new Subscription();
    this.#subs.add(s);
    if (listener === undefined) return s;
    const ctl = new AbortController();
    void (async () => {
      while (await s.wait(ctl.signal)) {
        try {
          listener();
        } catch (err) {
          this.#log.error({ error: errorMessage(err) }, "pool subscriber failed");
        }
      }
    })();
    return () => {
      ctl.abort();
      this.unsubscribe(s);
    };
  }

  unsubscribe(sub: PoolSubscription): void {
    if (sub instanceof Subscription) {
      this.#subs.delete(sub);
      sub.close();
    }
  }

  /**
   * Ask for one new VM of `type`. Returns at once: the cloud call runs in the background and
   * a placeholder view (instance "", state booting) stands for it meanwhile.
   */
  create(type: InstanceType): CreateResult {
    const log = this.#log.child({ InstanceType: type.Name });
    if (this.#runner === null) {
      // Boot would certainly fail without the runner; a load attempt notifies on success.
      this.#spawn(this.#loadRunner());
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
    const total = this.#workers.size + this.#creating.size;
    if (this.#s.maxInstances > 0 && total === this.#s.maxInstances) {
      log.info({}, `now at MaxInstances limit of ${this.#s.maxInstances} instances`);
    }
    return { ok: true, view: pendingInstanceView(type) };
  }

  /** No creates until instances go away (quota error, or MaxInstances reached). */
  atQuota(): boolean {
    if (this.#quotaFewerThan !== null) return true;
    if (this.#now() < this.#quotaUntil) return true;
    const max = this.#s.maxInstances;
    return max > 0 && this.#workers.size + this.#creating.size >= max;
  }

  /** A capacity error holds creates of this type (for everything, its quota group or itself). */
  atCapacity(type: InstanceType): boolean {
    const now = this.#now();
    for (const key of [capAll, this.#groupKey(type), typeKey(type)]) {
      const until = this.#capacity.get(key);
      if (until !== undefined && now < until) return true;
    }
    return false;
  }

  /** One view per worker plus one per pending create, sorted by instance id then type name. */
  instances(): InstanceView[] {
    const out: InstanceView[] = [];
    for (const w of this.#workers.values()) {
      out.push({
        instance: w.id,
        address: w.instance.address,
        price: w.instType.Price,
        arvados_instance_type: w.instType.Name,
        provider_instance_type: w.instType.ProviderType,
        last_container_uuid: w.lastUuid,
        last_busy: goTime(w.busy),
        running_container_uuids: (
          [...w.running.keys(), ...w.starting.keys()] as ContainerUuid[]
        ).sort(),
        worker_state: w.state,
        idle_behavior: w.idleBehavior,
      });
    }
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
      else if (w.state === "idle" && w.running.size + w.starting.size === 0) add(w.instType.Name);
    }
    return out;
  }

  /** Workers by state (pending creates excluded). Waits for the first successful listing. */
  async countWorkers(signal?: AbortSignal): Promise<WorkerCounts> {
    if (!this.#loaded) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          this.#loadedWaiters.delete(done);
          reject(new Error("countWorkers aborted before the first instance list"));
        };
        const done = (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        if (signal?.aborted) {
          onAbort();
          return;
        }
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#loadedWaiters.add(done);
      });
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
    return this.#loaded;
  }

  /**
   * Containers the pool knows: null for every running or starting one (shutdown workers
   * included), the exit time for each exited one not yet forgotten (overriding "running").
   */
  running(): Map<ContainerUuid, Date | null> {
    const out = new Map<ContainerUuid, Date | null>();
    for (const w of this.#workers.values()) {
      for (const uuid of w.running.keys()) out.set(uuid as ContainerUuid, null);
      for (const uuid of w.starting.keys()) out.set(uuid as ContainerUuid, null);
    }
    for (const [uuid, t] of this.#exited) out.set(uuid as ContainerUuid, new Date(t));
    return out;
  }

  /** Start crunch-run for `ctr` on an idle or running `run` worker; false otherwise. */
  startContainer(id: InstanceId | string, ctr: ContainerToStart): boolean {
    const w = this.#workers.get(id as InstanceId);
    if (w === undefined) return false;
    if (w.state !== "idle" && w.state !== "running") return false;
    if (w.idleBehavior !== "run") return false;
    // Already on this worker: a second --detach could only fail on the lock (Arvados sends it).
    if (w.running.has(ctr.uuid) || w.starting.has(ctr.uuid)) return true;
    const rr = new Runner(ctr.uuid);
    w.starting.set(ctr.uuid, rr);
    if (w.state !== "running") {
      w.state = "running";
      this.#notify();
    }
    this.#spawn(this.#runStart(w, rr, ctr));
    return true;
  }

  /**
   * Ask crunch-run to stop `uuid` (SIGTERM every TimeoutSignal, giving up after TimeoutTERM).
   * False if no worker tracks it.
   */
  killContainer(uuid: ContainerUuid | string, reason: string): boolean {
    for (const w of this.#workers.values()) {
      const rr = w.running.get(uuid) ?? w.starting.get(uuid);
      if (rr !== undefined) {
        this.#kill(w, rr, reason);
        return true;
      }
    }
    this.#log.debug({ ContainerUUID: uuid, Reason: reason }, "cannot kill: already disappeared");
    return false;
  }

  /** Drop the "exited" record of a container (no effect if it has none). */
  forgetContainer(uuid: ContainerUuid | string): void {
    this.#exited.delete(uuid);
  }

  /** The scheduler's shutdown: only booting or idle workers that are not held. */
  shutdown(id: InstanceId | string): boolean {
    const w = this.#workers.get(id as InstanceId);
    this.#log.info({ Instance: id }, "shutdown requested");
    if (w === undefined || w.idleBehavior === "hold") return false;
    if (w.state !== "booting" && w.state !== "idle") return false;
    this.#reportBootOutcome(w, "aborted");
    this.#shutdownAction(w);
    return true;
  }

  /** Shut a VM down now, whatever its state and behaviour (management API). */
  killInstance(id: InstanceId | string, reason: string): ActionResult {
    const w = this.#workers.get(id as InstanceId);
    if (w === undefined) return { ok: false, error: "instance not found" };
    w.logger.info({ Reason: reason }, "shutting down");
    this.#reportBootOutcome(w, "aborted");
    this.#shutdownAction(w);
    return { ok: true };
  }

  setIdleBehavior(id: InstanceId | string, behavior: IdleBehavior): ActionResult {
    const w = this.#workers.get(id as InstanceId);
    if (w === undefined) return { ok: false, error: "requested instance does not exist" };
    this.#setIdleBehavior(w, behavior);
    this.#notify();
    return { ok: true };
  }

  /** Healthy unless the runner binary cannot be loaded. */
  async checkHealth(): Promise<ActionResult> {
    await this.#loadRunner();
    if (this.#runner !== null) return { ok: true };
    return {
      ok: false,
      error: `error loading runner binary: ${this.#runnerError ?? "not loaded"}`,
    };
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
      const typeName = inst.tags[this.#keys.instanceType] ?? "";
      const configured = Object.hasOwn(this.#s.config.instanceTypes, typeName)
        ? this.#s.config.instanceTypes[typeName]
        : undefined;
      const w = this.#updateWorker(
        inst,
        configured ?? placeholderType(typeName),
        configured === undefined,
      );
      if (
        w.state === "shutdown" &&
        w.destroyed !== null &&
        now - w.destroyed > this.#s.timeoutShutdownMs
      ) {
        w.logger.info({}, "worker still listed after shutdown; retrying");
        this.#shutdownAction(w);
      }
    }
    for (const w of this.#workers.values()) {
      if (w.updatedSeq > seqAtStart) continue;
      w.logger.info({ State: w.state }, "instance disappeared in cloud");
      this.#reportBootOutcome(w, "disappeared");
      this.#metrics.instancesDisappeared.inc({ state: w.state });
      if (w.destroyed !== null) {
        this.#metrics.timeFromShutdownToGone.observe((now - w.destroyed) / 1000);
      }
      this.#workers.delete(w.id);
      // Abandon its runners without recording them as exited.
      for (const rr of [...w.running.values(), ...w.starting.values()]) rr.close();
      this.#spawn(w.executor.close());
      this.#notify();
    }
    if (
      this.#quotaFewerThan !== null &&
      this.#quotaFewerThan > this.#workers.size + this.#creating.size
    ) {
      this.#quotaFewerThan = null;
      this.#notify();
    }
    if (!this.#loaded) {
      this.#loaded = true;
      this.#log.info({ N: this.#workers.size }, "loaded initial instance list");
      for (const done of this.#loadedWaiters) done();
      this.#loadedWaiters.clear();
      this.#notify();
    }
  }

  /**
   * One probe tick without the pacing of the loop: shut down what is eligible, then probe
   * every other worker and wait for the probes to finish.
   */
  async probeNow(): Promise<void> {
    await Promise.all(this.#probeCandidates().map((w) => this.#probeWorker(w)));
  }

  /** Wait until every background operation the pool started so far has finished. */
  async settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  // ---------------------------------------------------------------- loops

  async #syncLoop(): Promise<void> {
    for (;;) {
      await this.syncNow();
      if (!(await this.#sleep(this.#s.syncIntervalMs))) return;
    }
  }

  async #probeLoop(): Promise<void> {
    const interval = this.#s.probeIntervalMs;
    // Invariant: probe launches are at least `spacing` apart by the clock, so any sliding
    // window of 1 s ([t, t + 1000)) holds at most MaxProbesPerSecond of them: N + 1 launches
    // span at least N * spacing = 1000 ms. `spacing` stays exact (never rounded down).
    const spacing = 1000 / this.#s.maxProbesPerSecond;
    let next = this.#now() + interval;
    let lastLaunch = -Infinity;
    for (;;) {
      // Until the tick's time has really come: an early timer would tick twice in a row.
      for (let now = this.#now(); now < next; now = this.#now()) {
        if (!(await this.#sleep(next - now))) return;
      }
      // A ticker: ticks missed while busy are dropped.
      while (next <= this.#now()) next += interval;
      // Jitter keeps probes from racing a sync that fires at the same moment every time.
      const jitter = Math.floor(this.#random() * (interval / 23));
      if (!(await this.#sleep(jitter))) return;
      for (const w of this.#probeCandidates()) {
        // Read the clock again after every sleep: a timer may fire up to a millisecond early
        // as the clock sees it, and launching then would put N + 1 probes into one second.
        for (let now = this.#now(); now < lastLaunch + spacing; now = this.#now()) {
          if (!(await this.#sleep(lastLaunch + spacing - now))) return;
        }
        // Gone or replaced while we waited: its slot goes to the next candidate.
        if (this.#workers.get(w.id) !== w) continue;
        lastLaunch = this.#now();
        this.#spawn(this.#probeWorker(w));
      }
    }
  }

  #probeCandidates(): Worker[] {
    const out: Worker[] = [];
    for (const w of this.#workers.values()) {
      if (w.state === "shutdown" || this.#shutdownIfIdle(w)) continue;
      out.push(w);
    }
    return out;
  }

  async #probeWorker(w: Worker): Promise<void> {
    if (w.probing) {
      w.logger.debug({}, "still waiting for last probe to finish");
      return;
    }
    w.probing = true;
    try {
      await this.#probeAndUpdate(w);
    } catch (err) {
      w.logger.error({ error: errorMessage(err) }, "probe failed unexpectedly");
    } finally {
      w.probing = false;
    }
  }

  // ---------------------------------------------------------------- probes

  async #probeAndUpdate(w: Worker): Promise<void> {
    const seqBefore = w.updatedSeq;
    const initialState = w.state;
    if (initialState === "shutdown") return;
    let booted = initialState === "idle" || initialState === "running";
    const probeStart = this.#now();
    let bootStderr = "";
    let bootError = "";
    if (!booted) {
      const boot = await this.#probeBooted(w);
      booted = boot.ok;
      bootStderr = boot.stderr;
      bootError = boot.error;
      let shouldCopy = booted || initialState === "unknown";
      // Another probe may have succeeded meanwhile.
      if (!booted && (w.state === "idle" || w.state === "running")) {
        booted = true;
        shouldCopy = false;
      }
      if (shouldCopy) {
        const copyError = await this.#copyRunner(w);
        if (copyError !== null) {
          booted = false;
          bootError = copyError;
        }
      }
      if (booted) w.logger.info({ ProbeStart: goTime(probeStart) }, "boot probe succeeded");
    }
    let probe: ProbeResult = { ok: false, running: [], broken: false };
    if (booted || initialState === "unknown") probe = await this.#probeRunning(w);

    if (probe.broken && w.idleBehavior === "run") {
      w.logger.info({}, "probe reported broken instance");
      this.#reportBootOutcome(w, "failure");
      this.#setIdleBehavior(w, "drain");
    }
    if (!probe.ok || (!booted && probe.running.length === 0 && w.running.size === 0)) {
      // Shut down while we probed: nothing to add.
      if (w.state === "shutdown" && w.updatedSeq !== seqBefore) return;
      // The probe's start, not its end, counts: at least one probe starts after the deadline.
      const dur = probeStart - w.probed;
      if (this.#shutdownIfBroken(w, dur) && !booted) {
        this.#reportBootOutcome(w, "failure");
        w.logger.info(
          { Duration: dur / 1000, stderr: bootStderr, error: bootError },
          "boot failed",
        );
      }
      return;
    }

    const now = this.#now();
    w.probed = now;
    if (w.updatedSeq !== seqBefore) {
      // Updated during the probe (e.g. a container start): the listing may be outdated.
      w.logger.debug({}, "skipping worker state update due to probe/sync race");
      return;
    }
    if (probe.running.length > 0) {
      w.busy = now;
      if (w.lastUuid === "") w.lastUuid = probe.running[0]!;
    } else if (w.running.size > 0) {
      w.busy = now;
    }
    let changed = this.#reconcile(w, probe.running);
    if (booted && (w.state === "unknown" || w.state === "booting")) {
      if (w.state === "booting" && !w.timeToReadyReported && w.firstSshConnection !== null) {
        this.#metrics.timeToReady.observe((now - w.firstSshConnection) / 1000);
        w.timeToReadyReported = true;
      }
      w.state = "idle";
      changed = true;
    }
    if (!changed) return;
    if (w.state === "unknown") {
      w.logger.info(
        { RunningContainers: w.running.size, State: w.state },
        "crunch-run probe succeeded, but boot probe is still failing",
      );
    }
    const busy = w.running.size + w.starting.size > 0;
    if (w.state === "idle" && busy) w.state = "running";
    else if (w.state === "running" && !busy) w.state = "idle";
    this.#touch(w);
    if (booted && (initialState === "unknown" || initialState === "booting")) {
      this.#reportBootOutcome(w, "success");
      w.logger.info(
        { RunningContainers: w.running.size, State: w.state },
        "probes succeeded, instance is in service",
      );
    }
    this.#notify();
  }

  async #probeBooted(w: Worker): Promise<{ ok: boolean; stderr: string; error: string }> {
    const cmd = this.#s.bootProbeCommand;
    let r: ExecResult;
    try {
      r = await this.#exec(w, cmd, this.#probeOpts(w));
    } catch (err) {
      const msg = errorMessage(err);
      if (EXPECTED_BOOT_ERROR.test(msg))
        w.logger.debug({ Command: cmd, error: msg }, "boot probe failed");
      else w.logger.warn({ Command: cmd, error: msg }, "boot probe failed");
      return { ok: false, stderr: "", error: msg };
    }
    if (r.exitCode !== 0) {
      const error = `exit status ${r.exitCode}`;
      w.logger.debug(
        { Command: cmd, stdout: r.stdout.toString(), stderr: r.stderr.toString(), error },
        "boot probe failed",
      );
      return { ok: false, stderr: r.stderr.toString(), error };
    }
    return { ok: true, stderr: "", error: "" };
  }

  /** Install the runner unless the right one is there. Returns an error message or null. */
  async #copyRunner(w: Worker): Promise<string | null> {
    await this.#loadRunner();
    const runner = this.#runner;
    if (runner === null) return `error loading runner binary: ${this.#runnerError ?? "not loaded"}`;
    if (runner.data === null) return null;
    const log = w.logger.child({ hash: runner.hash, path: runner.cmd });
    try {
      const r = await this.#exec(w, md5sumCommand(runner.cmd), this.#probeOpts(w));
      if (
        r.exitCode === 0 &&
        r.stderr.length === 0 &&
        r.stdout.toString() === md5sumExpected(runner.hash, runner.cmd)
      ) {
        log.info({}, "runner binary already exists on worker, with correct hash");
        return null;
      }
    } catch {
      // Fall through to installing: an unreachable VM fails there with its own error.
    }
    const cmd = installCommand(runner.cmd, w.instance.remoteUser);
    log.info({ cmd }, "installing runner binary on worker");
    let error: string;
    let stderr = "";
    try {
      // Deviation: Arvados bounds no upload; a VM that goes silent mid-upload would keep its
      // probe (and so the worker) waiting forever. The upload runs only while booting, so
      // TimeoutBooting is the most it can usefully take.
      const r = await this.#exec(w, cmd, {
        stdin: runner.data,
        signal: this.#stop.signal,
        timeoutMs: this.#s.timeoutBootingMs,
      });
      if (r.exitCode === 0) return null;
      error = `exit status ${r.exitCode}`;
      stderr = r.stderr.toString();
    } catch (err) {
      error = errorMessage(err);
    }
    log.warn({ error, stderr }, "error copying runner binary");
    return error;
  }

  async #probeRunning(w: Worker): Promise<ProbeResult> {
    const fail: ProbeResult = { ok: false, running: [], broken: false };
    const runner = this.#runner;
    if (runner === null) return fail;
    const prices = w.instance.priceHistory(w.instType);
    const cmd = listCommand(runner.cmd, prices.length > 0, w.instance.remoteUser);
    const opts: ExecuteOptions =
      prices.length > 0 ? { ...this.#probeOpts(w), stdin: pricesJson(prices) } : this.#probeOpts(w);
    const before = this.#now();
    let r: ExecResult;
    try {
      r = await this.#exec(w, cmd, opts);
    } catch (err) {
      w.logger.warn({ Command: cmd, error: errorMessage(err) }, "probe failed");
      this.#metrics.runProbeDuration.observe({ outcome: "fail" }, (this.#now() - before) / 1000);
      return fail;
    }
    if (r.exitCode !== 0) {
      w.logger.warn(
        {
          Command: cmd,
          stdout: r.stdout.toString(),
          stderr: r.stderr.toString(),
          error: `exit status ${r.exitCode}`,
        },
        "probe failed",
      );
      this.#metrics.runProbeDuration.observe({ outcome: "fail" }, (this.#now() - before) / 1000);
      return fail;
    }
    const now = this.#now();
    this.#metrics.runProbeDuration.observe({ outcome: "success" }, (now - before) / 1000);
    const report = parseListOutput(r.stdout.toString(), this.#s.config.clusterId);
    let broken = report.broken;
    for (const uuid of report.stale) {
      w.logger.info({ ContainerUUID: uuid }, "probe reported stale run lock");
    }
    if (report.stale.length === 0) {
      w.staleRunLockSince = null;
    } else if (w.staleRunLockSince === null) {
      w.staleRunLockSince = now;
    } else if (now - w.staleRunLockSince > this.#s.timeoutStaleRunLockMs) {
      w.logger.warn(
        { Duration: (now - w.staleRunLockSince) / 1000 },
        "reporting broken after reporting stale run lock for too long",
      );
      broken = true;
    }
    return { ok: true, running: report.running, broken };
  }

  /** Track listed containers; close runners no longer listed. Returns whether anything changed. */
  #reconcile(w: Worker, listed: readonly string[]): boolean {
    let changed = false;
    const alive = new Set(listed);
    for (const uuid of listed) {
      if (w.running.has(uuid)) continue;
      const rr = w.starting.get(uuid);
      if (rr !== undefined) {
        w.starting.delete(uuid);
        w.running.set(uuid, rr);
      } else {
        // Not started by this process: a previous dispatcher's container.
        w.logger.info({ ContainerUUID: uuid }, "crunch-run process detected");
        w.running.set(uuid, new Runner(uuid));
      }
      changed = true;
    }
    for (const uuid of w.running.keys()) {
      if (!alive.has(uuid) && this.#closeRunner(w, uuid)) changed = true;
    }
    return changed;
  }

  #closeRunner(w: Worker, uuid: string): boolean {
    const rr = w.running.get(uuid);
    if (rr === undefined) return false;
    w.logger.info({ ContainerUUID: uuid }, "crunch-run process ended");
    w.running.delete(uuid);
    rr.close();
    this.#touch(w);
    this.#exited.set(uuid, this.#now());
    if (w.state === "running" && w.running.size + w.starting.size === 0) w.state = "idle";
    return true;
  }

  // ------------------------------------------------------ containers

  async #runStart(w: Worker, rr: Runner, ctr: ContainerToStart): Promise<void> {
    const runner = this.#runner!;
    const log = w.logger.child({ ContainerUUID: ctr.uuid });
    const cmd = detachCommand(runner.cmd, this.#s.runnerArgs, ctr.uuid, w.instance.remoteUser);
    const c = this.#s.config;
    const stdin = detachStdin({
      uuid: ctr.uuid,
      instanceType: w.instType,
      address: w.instance.address,
      apiHost: c.apiHost,
      apiInsecure: c.apiInsecure,
      systemRootToken: c.systemRootToken,
      localKeepBlobBuffersPerVcpu: c.localKeepBlobBuffersPerVcpu,
      driver: c.driver,
      clusterConfigJson: c.clusterConfigJson,
    });
    try {
      // Bounded like a probe: a start that hangs fails and surfaces at the next run probe as
      // an exited container, instead of staying "starting" forever.
      const r = await this.#exec(w, cmd, { ...this.#probeOpts(w), stdin });
      if (r.exitCode === 0) log.info({}, "crunch-run process started");
      else {
        log.error(
          {
            stdout: r.stdout.toString(),
            stderr: r.stderr.toString(),
            error: `exit status ${r.exitCode}`,
          },
          "error starting crunch-run process",
        );
      }
    } catch (err) {
      log.error({ error: errorMessage(err) }, "error starting crunch-run process");
    }
    const now = this.#now();
    const created = ctr.createdAt?.getTime() ?? Date.parse(ctr.created_at ?? "");
    if (Number.isFinite(created)) {
      this.#metrics.timeFromQueueToCrunchRun.observe((now - created) / 1000);
    }
    // A failed start shows up at the next probe as an exited container.
    if (w.starting.get(ctr.uuid) === rr) {
      w.starting.delete(ctr.uuid);
      w.running.set(ctr.uuid, rr);
      this.#touch(w);
      w.busy = now;
      w.lastUuid = ctr.uuid;
      this.#notify();
    }
  }

  #kill(w: Worker, rr: Runner, reason: string): void {
    if (rr.stopping) return;
    rr.stopping = true;
    w.logger.info({ ContainerUUID: rr.uuid, Reason: reason }, "killing crunch-run process");
    this.#spawn(this.#killLoop(w, rr), false);
  }

  /** SIGTERM now and every TimeoutSignal until gone; give up after TimeoutTERM (no SIGKILL). */
  async #killLoop(w: Worker, rr: Runner): Promise<void> {
    const deadline = this.#now() + this.#s.timeoutTermMs;
    const log = w.logger.child({ ContainerUUID: rr.uuid });
    for (;;) {
      if (rr.closed) return;
      if (this.#now() > deadline) {
        log.debug({}, "giving up");
        rr.givenUp = true;
        if (w.idleBehavior === "hold") {
          log.warn({}, "unkillable container, but worker has IdleBehavior=Hold");
        } else {
          log.warn({}, "unkillable container, draining worker");
          this.#setIdleBehavior(w, "drain");
        }
        return;
      }
      await this.#tracked(this.#sendTerm(w, rr, log));
      if (rr.closed) return;
      if (!(await this.#sleep(this.#s.timeoutSignalMs))) return;
    }
  }

  async #sendTerm(w: Worker, rr: Runner, log: Logger): Promise<void> {
    log.info({ Signal: SIGTERM }, "sending signal");
    const cmd = killCommand(this.#runner!.cmd, SIGTERM, rr.uuid, w.instance.remoteUser);
    try {
      const r = await this.#exec(w, cmd, this.#probeOpts(w));
      if (r.exitCode === 0) {
        // Only a running runner is closed; a starting one keeps getting SIGTERMs.
        if (this.#closeRunner(w, rr.uuid)) this.#notify();
      } else {
        log.info(
          { error: `exit status ${r.exitCode}`, stderr: r.stderr.toString() },
          "kill attempt unsuccessful",
        );
      }
    } catch (err) {
      if (!this.#stop.signal.aborted) {
        log.info({ error: errorMessage(err) }, "kill attempt unsuccessful");
      }
    }
  }

  // ---------------------------------------------------------------- workers

  #updateWorker(inst: Instance, type: InstanceType, unrecognizedType: boolean): Worker {
    const secret = inst.tags[this.#keys.instanceSecret] ?? "";
    const existing = this.#workers.get(inst.id);
    if (existing !== undefined) {
      existing.executor.setTarget(this.#target(inst, secret));
      existing.instance = inst;
      this.#touch(existing);
      this.#saveTags(existing);
      return existing;
    }
    const state: WorkerState = this.#creating.has(secret) ? "booting" : "unknown";
    const tagged = inst.tags[this.#keys.idleBehavior];
    let idleBehavior: IdleBehavior = isIdleBehavior(tagged) ? tagged : "run";
    const logger = this.#log.child({
      Instance: inst.id,
      InstanceType: type.Name,
      Address: inst.address,
    });
    if (unrecognizedType && idleBehavior !== "hold") {
      logger.warn(
        { IdleBehavior: idleBehavior },
        `draining instance that was tagged with an unrecognized InstanceType ${JSON.stringify(type.Name)}`,
      );
      idleBehavior = "drain";
    }
    const now = this.#now();
    const w: Worker = {
      id: inst.id,
      state,
      idleBehavior,
      instance: inst,
      instType: type,
      executor: this.#executorFactory(this.#target(inst, secret)),
      logger,
      appeared: now,
      probed: now,
      updated: now,
      updatedSeq: ++this.#seq,
      busy: now,
      destroyed: null,
      firstSshConnection: null,
      lastUuid: "",
      running: new Map(),
      starting: new Map(),
      probing: false,
      bootOutcomeReported: false,
      timeToReadyReported: false,
      staleRunLockSince: null,
    };
    this.#workers.set(inst.id, w);
    logger.info({ State: state, IdleBehavior: idleBehavior }, "instance appeared in cloud");
    this.#notify();
    return w;
  }

  #target(inst: Instance, secret: string): ExecutorTarget {
    return {
      address: inst.address,
      remoteUser: inst.remoteUser,
      instanceSecret: secret,
      verifyHostKey: (key, session, signal) => inst.verifyHostKey(key, session, signal),
    };
  }

  /** Run a command; the first one that runs on a booting worker marks its first SSH connection. */
  async #exec(w: Worker, cmd: string, opts: ExecuteOptions): Promise<ExecResult> {
    const r = await w.executor.execute(cmd, opts);
    if (w.firstSshConnection === null && w.state === "booting") {
      w.firstSshConnection = this.#now();
      this.#metrics.timeToSsh.observe((w.firstSshConnection - w.appeared) / 1000);
    }
    return r;
  }

  #touch(w: Worker): void {
    w.updated = this.#now();
    w.updatedSeq = ++this.#seq;
  }

  #saveTags(w: Worker): void {
    const tags: Record<string, string> = { ...w.instance.tags };
    let save = false;
    const want: [string, string][] = [
      [this.#keys.instanceType, w.instType.Name],
      [this.#keys.idleBehavior, w.idleBehavior],
    ];
    for (const [k, v] of want) {
      if (tags[k] !== v) {
        tags[k] = v;
        save = true;
      }
    }
    if (!save) return;
    const inst = w.instance;
    this.#spawn(
      inst.setTags(tags as InstanceTags).catch((err: unknown) => {
        w.logger.warn({ error: errorMessage(err) }, "error updating tags");
      }),
    );
  }

  #setIdleBehavior(w: Worker, b: IdleBehavior): void {
    w.logger.info({ IdleBehavior: b }, "set idle behavior");
    w.idleBehavior = b;
    this.#saveTags(w);
    this.#shutdownIfIdle(w);
  }

  #eligibleForShutdown(w: Worker): boolean {
    if (w.idleBehavior === "hold") return false;
    const draining = w.idleBehavior === "drain";
    const now = this.#now();
    switch (w.state) {
      case "booting":
        return draining;
      case "idle":
        return draining || now - w.busy >= this.#s.timeoutIdleMs;
      case "running":
        if (!draining) return false;
        for (const rr of w.running.values()) if (!rr.givenUp) return false;
        for (const rr of w.starting.values()) if (!rr.givenUp) return false;
        return true;
      case "unknown":
        // Arvados destroys an adopted VM at TimeoutBooting even while its containers run;
        // we keep it while the run probe lists containers.
        return (
          now - w.appeared >= this.#s.timeoutBootingMs && w.running.size + w.starting.size === 0
        );
      case "shutdown":
        return false;
    }
    return false;
  }

  #shutdownIfIdle(w: Worker): boolean {
    if (!this.#eligibleForShutdown(w)) return false;
    w.logger.info(
      {
        State: w.state,
        IdleDuration: (this.#now() - w.busy) / 1000,
        IdleBehavior: w.idleBehavior,
      },
      "shutdown worker",
    );
    this.#reportBootOutcome(w, "aborted");
    this.#shutdownAction(w);
    return true;
  }

  #shutdownIfBroken(w: Worker, durMs: number): boolean {
    if (w.idleBehavior === "hold") return false;
    const fresh = w.state === "unknown" || w.state === "booting";
    const threshold = fresh ? this.#s.timeoutBootingMs : this.#s.timeoutProbeMs;
    if (durMs < threshold) return false;
    w.logger.warn(
      { Duration: durMs / 1000, Since: goTime(w.probed), State: w.state },
      fresh
        ? "new instance unresponsive, shutting down -- `arvados-server cloudtest` might help troubleshoot, see https://doc.arvados.org/main/admin/cloudtest.html"
        : "instance unresponsive, shutting down",
    );
    this.#shutdownAction(w);
    return true;
  }

  /** Mark shut down and ask the cloud to destroy; the VM stays until it leaves the listing. */
  #shutdownAction(w: Worker): void {
    const now = this.#now();
    this.#touch(w);
    w.destroyed = now;
    w.state = "shutdown";
    this.#notify();
    const inst = w.instance;
    this.#spawn(
      inst.destroy().catch((err: unknown) => {
        w.logger.warn({ error: errorMessage(err) }, "shutdown failed");
      }),
    );
  }

  #reportBootOutcome(w: Worker, outcome: BootOutcome): void {
    if (w.bootOutcomeReported) return;
    w.bootOutcomeReported = true;
    this.#metrics.bootOutcomes.inc({ outcome });
  }

  // ---------------------------------------------------------------- creates

  async #doCreate(secret: string, type: InstanceType, log: Logger): Promise<void> {
    const tags: InstanceTags = {
      [this.#keys.instanceSetId]: this.#s.config.instanceSetId,
      [this.#keys.instanceType]: type.Name,
      [this.#keys.idleBehavior]: "run",
      [this.#keys.instanceSecret]: secret,
    };
    try {
      const inst = await this.#set.create({
        instanceType: type,
        imageId: this.#s.config.imageId,
        tags,
        initCommand: initCommandWithSecret(secret, this.#s.instanceInitCommand),
        publicKey: this.#s.config.publicKey,
      });
      // Still in `creating`, so the worker starts as booting.
      this.#updateWorker(inst, type, false);
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
      const n = this.#workers.size + this.#creating.size - 1;
      if (n < 1) {
        this.#quotaUntil = now + QUOTA_ERROR_TTL_MS;
        this.#notifyAt(this.#quotaUntil);
        log.info({}, "quota error with 0 running -- waiting for quotaErrorTTL");
      } else if (this.#quotaFewerThan === null || n < this.#quotaFewerThan) {
        this.#quotaFewerThan = n;
        this.#quotaUntil = 0;
        log.info({ n }, "quota error -- waiting for next instance shutdown");
      }
    }
    if (CapacityError.is(err)) {
      const key =
        err.scope === "instance-type"
          ? typeKey(type)
          : err.scope === "quota-group"
            ? this.#groupKey(type)
            : capAll;
      const until = now + CAPACITY_ERROR_TTL_MS;
      this.#capacity.set(key, until);
      this.#notifyAt(until);
      log.info({ scope: err.scope }, "capacity error -- pausing instance create calls");
    }
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

  #groupKey(type: InstanceType): string {
    return `group:${this.#set.instanceQuotaGroup(type)}`;
  }

  // ---------------------------------------------------------------- runner

  /** Load DeployRunnerBinary once; retried at every use while it fails. */
  async #loadRunner(): Promise<void> {
    if (this.#runner !== null) return;
    if (this.#runnerLoading === null) {
      const path = this.#s.config.deployRunnerBinary;
      this.#runnerLoading = (async () => {
        try {
          const data = await this.#readFile(path);
          const hash = createHash("md5").update(data).digest("hex");
          const dir = this.#s.deployRunnerDirectory.replace(/\/+$/, "");
          this.#runner = { cmd: `${dir}/crunch-run~${hash}`, data, hash };
          this.#runnerError = null;
          this.#notify();
        } catch (err) {
          this.#runnerError = errorMessage(err);
          this.#log.error({ path, error: this.#runnerError }, "failed to load runner program");
        } finally {
          this.#runnerLoading = null;
        }
      })();
    }
    await this.#runnerLoading;
  }

  // ---------------------------------------------------------------- plumbing

  #probeOpts(w: Worker): ExecuteOptions {
    const giveUpAfter =
      w.state === "booting" || w.state === "unknown"
        ? this.#s.timeoutBootingMs
        : this.#s.timeoutProbeMs;
    return {
      signal: this.#stop.signal,
      timeoutMs: Math.min(PROBE_COMMAND_TIMEOUT_MS, giveUpAfter),
    };
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
    t.until = until;
    t.message = message;
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

  /** Run in the background; failures are logged. `track` makes `settled()` wait for it. */
  #spawn(p: Promise<void>, track = true): void {
    const guarded = p.catch((err: unknown) => {
      this.#log.error({ error: errorMessage(err) }, "unexpected error in worker pool");
    });
    if (!track) return;
    this.#tasks.add(guarded);
    void guarded.finally(() => this.#tasks.delete(guarded));
  }

  /** Make `settled()` wait for `p` too. */
  #tracked<T>(p: Promise<T>): Promise<T> {
    const done = p.then(
      () => undefined,
      () => undefined,
    );
    this.#tasks.add(done);
    void done.finally(() => this.#tasks.delete(done));
    return p;
  }

  #notify(): void {
    for (const s of this.#subs) s.post();
    if (!this.#metricsQueued) {
      this.#metricsQueued = true;
      queueMicrotask(() => {
        this.#metricsQueued = false;
        this.#updateMetrics();
      });
    }
  }

  #updateMetrics(): void {
    const m = this.#metrics;
    const now = this.#now();
    let containers = 0;
    const probed: number[] = [];
    const counts = new Map<string, number>();
    const price = new Map<InstanceCategory, number>();
    const vcpus = new Map<InstanceCategory, number>();
    const memory = new Map<InstanceCategory, number>();
    for (const w of this.#workers.values()) {
      const n = w.running.size + w.starting.size;
      containers += n;
      probed.push(w.probed);
      const cat: InstanceCategory =
        n > 0
          ? "inuse"
          : w.idleBehavior === "hold"
            ? "hold"
            : w.state === "booting"
              ? "booting"
              : w.state === "unknown"
                ? "unknown"
                : "idle";
      const key = `${cat}\0${w.instType.Name}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      price.set(cat, (price.get(cat) ?? 0) + w.instType.Price);
      vcpus.set(cat, (vcpus.get(cat) ?? 0) + w.instType.VCPUs);
      memory.set(cat, (memory.get(cat) ?? 0) + w.instType.RAM);
    }
    m.containersRunning.set(containers);
    probed.sort((a, b) => a - b);
    m.probeAgeMax.set(probed.length > 0 ? (now - probed[0]!) / 1000 : 0);
    m.probeAgeMedian.set(
      probed.length > 0 ? (now - probed[Math.floor(probed.length / 2)]!) / 1000 : 0,
    );
    // Reset first: Arvados keeps series of types that left the config; we drop them.
    m.instancesTotal.reset();
    for (const cat of INSTANCE_CATEGORIES) {
      for (const name of Object.keys(this.#s.config.instanceTypes)) {
        m.instancesTotal.set({ category: cat, instance_type: name }, 0);
      }
      m.instancesPrice.set({ category: cat }, price.get(cat) ?? 0);
      m.vcpusTotal.set({ category: cat }, vcpus.get(cat) ?? 0);
      m.memoryBytesTotal.set({ category: cat }, memory.get(cat) ?? 0);
    }
    for (const [key, n] of counts) {
      const [category, instance_type] = key.split("\0") as [string, string];
      m.instancesTotal.set({ category, instance_type }, n);
    }
  }
}

const capAll = "all";
const typeKey = (t: InstanceType): string =>
  `type:${t.Preemptible ? `${t.ProviderType}-preemptible` : t.ProviderType}`;
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function suspendedMessage(now: number, err: RateLimitError): string {
  const until = err.earliestRetry.getTime();
  return `remote calls are suspended for ${((until - now) / 1000).toFixed(3)}s, until ${goTime(until)}`;
}
