// One VM's life, as Arvados's worker.go: boot and run probes, runner deployment, container
// starts and kills, idle behaviour, and the decision to shut down. The pool owns the fleet and
// asks each worker to act; a worker reaches the fleet only through its WorkerContext.
import {
  goTime,
  isIdleBehavior,
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
  errorMessage,
  type Instance,
  type InstanceTags,
  type TagKeys,
} from "@dispatch-cloud/cloud-driver-api";
import { listCommand, parseListOutput, pricesJson } from "./commands.js";
import type { Executor, ExecutorFactory } from "./executor.js";
import type { PoolMetrics } from "./metrics.js";
import { RemoteRunner } from "./runner.js";
import { deployRunner, type RunnerProgramLoader } from "./runner-program.js";
import type { Settings } from "./settings.js";
import { eligibleForShutdown, probeCommandTimeout, unresponsiveAfter } from "./shutdown.js";
import type { BootOutcome, ContainerToStart } from "./types.js";

/** What a worker uses of its pool. */
export interface WorkerContext {
  readonly settings: Settings;
  readonly keys: TagKeys;
  readonly metrics: PoolMetrics;
  readonly runnerProgram: RunnerProgramLoader;
  /** Aborted when the pool stops; every command and sleep listens on it. */
  readonly stopSignal: AbortSignal;
  now(): number;
  /** Sleep on the pool's clock; false once the pool is stopped. */
  sleep(ms: number): Promise<boolean>;
  /** The pool-wide change counter's next value: sync and probes compare these, not times. */
  nextSeq(): number;
  /** Tell subscribers something changed. */
  notify(): void;
  /** Run in the background; failures are logged. `track` makes the pool's `settled()` wait. */
  spawn(p: Promise<void>, track?: boolean): void;
  /** Make the pool's `settled()` wait for `p` too. */
  tracked<T>(p: Promise<T>): Promise<T>;
  /** crunch-run for `uuid` ended (kept as "exited" until the scheduler forgets it). */
  containerExited(uuid: ContainerUuid, at: number): void;
}

/** How a new worker enters the pool. */
export interface NewWorker {
  readonly instance: Instance;
  readonly type: InstanceType;
  /** Created by this process (booting) rather than found in the listing (unknown). */
  readonly created: boolean;
  /** Its InstanceType tag names no configured type: it is drained unless held. */
  readonly unrecognizedType: boolean;
  readonly executorFactory: ExecutorFactory;
  readonly logger: Logger;
}

interface ProbeResult {
  readonly ok: boolean;
  readonly running: ContainerUuid[];
  readonly broken: boolean;
}

/** Errors of a boot probe that just mean "not up yet" (logged at debug). */
const EXPECTED_BOOT_ERROR =
  /no address|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|connect|timed out|booting/i;

export class Worker {
  readonly id: InstanceId;
  readonly ctx: WorkerContext;
  readonly executor: Executor;
  readonly logger: Logger;
  state: WorkerState;
  idleBehavior: IdleBehavior;
  instance: Instance;
  readonly instType: InstanceType;
  /** When it appeared in the listing (or was created). */
  readonly appeared: number;
  /** The start of the last successful probe. */
  probed: number;
  /** When it last ran a container. */
  busy: number;
  /** When its destroy was first requested. */
  destroyed: number | null = null;
  /** Bumped by every change (the pool's counter); sync and probes compare it. */
  updatedSeq: number;
  lastUuid: ContainerUuid | "" = "";
  /** crunch-run processes the last probe listed, and ones started since. */
  readonly running = new Map<ContainerUuid, RemoteRunner>();
  /** Started by this process, not yet confirmed by `--detach` or a probe. */
  readonly starting = new Map<ContainerUuid, RemoteRunner>();
  #firstSshConnection: number | null = null;
  #probing = false;
  #bootOutcomeReported = false;
  #timeToReadyReported = false;
  #staleRunLockSince: number | null = null;

  constructor(ctx: WorkerContext, n: NewWorker) {
    const inst = n.instance;
    this.ctx = ctx;
    this.id = inst.id;
    this.instance = inst;
    this.instType = n.type;
    this.state = n.created ? "booting" : "unknown";
    const tagged = inst.tags[ctx.keys.idleBehavior];
    this.idleBehavior = isIdleBehavior(tagged) ? tagged : "run";
    this.logger = n.logger.child({
      Instance: inst.id,
      InstanceType: n.type.Name,
      Address: inst.address,
    });
    if (n.unrecognizedType && this.idleBehavior !== "hold") {
      this.logger.warn(
        { IdleBehavior: this.idleBehavior },
        `draining instance that was tagged with an unrecognized InstanceType ${JSON.stringify(n.type.Name)}`,
      );
      this.idleBehavior = "drain";
    }
    const now = ctx.now();
    this.appeared = now;
    this.probed = now;
    this.busy = now;
    this.executor = n.executorFactory(this.#target(inst));
    this.updatedSeq = ctx.nextSeq();
  }

  /** Containers running or starting here. */
  get containers(): number {
    return this.running.size + this.starting.size;
  }

  /** The management API's view of this worker. */
  view(): InstanceView {
    return {
      instance: this.id,
      address: this.instance.address,
      price: this.instType.Price,
      arvados_instance_type: this.instType.Name,
      provider_instance_type: this.instType.ProviderType,
      last_container_uuid: this.lastUuid,
      last_busy: goTime(this.busy),
      running_container_uuids: [...this.running.keys(), ...this.starting.keys()].sort(),
      worker_state: this.state,
      idle_behavior: this.idleBehavior,
    };
  }

  /** A newer listing of the VM: its address or tags may have changed. */
  listed(inst: Instance): void {
    this.executor.setTarget(this.#target(inst));
    this.instance = inst;
    this.#touch();
    this.#saveTags();
  }

  /** It left the listing: abandon its runners (not recorded as exited) and its connection. */
  disappeared(): void {
    for (const rr of [...this.running.values(), ...this.starting.values()]) rr.close();
    this.ctx.spawn(this.executor.close());
  }

  // ---------------------------------------------------------------- containers

  /** Start crunch-run for `ctr` if this is an idle or running `run` worker. */
  startContainer(uuid: ContainerUuid, ctr: ContainerToStart): boolean {
    if (this.state !== "idle" && this.state !== "running") return false;
    if (this.idleBehavior !== "run") return false;
    // Already here: a second --detach could only fail on the lock (Arvados sends it).
    if (this.running.has(uuid) || this.starting.has(uuid)) return true;
    const rr = new RemoteRunner(this, uuid);
    this.starting.set(uuid, rr);
    if (this.state !== "running") {
      this.state = "running";
      this.ctx.notify();
    }
    this.ctx.spawn(this.#start(rr, ctr));
    return true;
  }

  async #start(rr: RemoteRunner, ctr: ContainerToStart): Promise<void> {
    await rr.start(ctr);
    const now = this.ctx.now();
    const created = ctr.createdAt?.getTime() ?? Date.parse(ctr.created_at ?? "");
    if (Number.isFinite(created)) {
      this.ctx.metrics.timeFromQueueToCrunchRun.observe((now - created) / 1000);
    }
    // A failed start shows up at the next probe as an exited container.
    if (this.starting.get(rr.uuid) === rr) {
      this.starting.delete(rr.uuid);
      this.running.set(rr.uuid, rr);
      this.#touch();
      this.busy = now;
      this.lastUuid = rr.uuid;
      this.ctx.notify();
    }
  }

  /** The runner tracking `uuid`, running or starting. */
  runner(uuid: ContainerUuid): RemoteRunner | undefined {
    return this.running.get(uuid) ?? this.starting.get(uuid);
  }

  /** A running container's crunch-run ended. Returns whether it was tracked. */
  closeRunner(uuid: ContainerUuid): boolean {
    const rr = this.running.get(uuid);
    if (rr === undefined) return false;
    this.logger.info({ ContainerUUID: uuid }, "crunch-run process ended");
    this.running.delete(uuid);
    rr.close();
    this.#touch();
    this.ctx.containerExited(uuid, this.ctx.now());
    if (this.state === "running" && this.containers === 0) this.state = "idle";
    return true;
  }

  // ---------------------------------------------------------------- idle behaviour, shutdown

  setIdleBehavior(b: IdleBehavior): void {
    this.logger.info({ IdleBehavior: b }, "set idle behavior");
    this.idleBehavior = b;
    this.#saveTags();
    this.shutdownIfIdle();
  }

  /** Shut down if the rules say so (idle too long, draining, adopted and empty too long). */
  shutdownIfIdle(): boolean {
    if (!eligibleForShutdown(this, this.ctx.settings, this.ctx.now())) return false;
    this.logger.info(
      {
        State: this.state,
        IdleDuration: (this.ctx.now() - this.busy) / 1000,
        IdleBehavior: this.idleBehavior,
      },
      "shutdown worker",
    );
    this.reportBootOutcome("aborted");
    this.shutdown();
    return true;
  }

  /** Shut down a worker whose probes have failed for `durMs`, past its deadline. */
  #shutdownIfBroken(durMs: number): boolean {
    if (this.idleBehavior === "hold") return false;
    if (durMs < unresponsiveAfter(this.state, this.ctx.settings)) return false;
    const fresh = this.state === "unknown" || this.state === "booting";
    this.logger.warn(
      { Duration: durMs / 1000, Since: goTime(this.probed), State: this.state },
      fresh
        ? "new instance unresponsive, shutting down -- `arvados-server cloudtest` might help troubleshoot, see https://doc.arvados.org/main/admin/cloudtest.html"
        : "instance unresponsive, shutting down",
    );
    this.shutdown();
    return true;
  }

  /** Mark shut down and ask the cloud to destroy; the VM stays until it leaves the listing. */
  shutdown(): void {
    const now = this.ctx.now();
    this.#touch();
    this.destroyed = now;
    this.state = "shutdown";
    this.ctx.notify();
    const inst = this.instance;
    this.ctx.spawn(
      inst.destroy().catch((err: unknown) => {
        this.logger.warn({ error: errorMessage(err) }, "shutdown failed");
      }),
    );
  }

  /** Count the boot's outcome once per worker. */
  reportBootOutcome(outcome: BootOutcome): void {
    if (this.#bootOutcomeReported) return;
    this.#bootOutcomeReported = true;
    this.ctx.metrics.bootOutcomes.inc({ outcome });
  }

  // ---------------------------------------------------------------- probes

  /** Probe and update the state; a probe still running for this worker makes this a no-op. */
  async probe(): Promise<void> {
    if (this.#probing) {
      this.logger.debug({}, "still waiting for last probe to finish");
      return;
    }
    this.#probing = true;
    try {
      await this.#probeAndUpdate();
    } catch (err) {
      this.logger.error({ error: errorMessage(err) }, "probe failed unexpectedly");
    } finally {
      this.#probing = false;
    }
  }

  async #probeAndUpdate(): Promise<void> {
    const seqBefore = this.updatedSeq;
    const initialState = this.state;
    if (initialState === "shutdown") return;
    let booted = initialState === "idle" || initialState === "running";
    const probeStart = this.ctx.now();
    let bootStderr = "";
    let bootError = "";
    if (!booted) {
      const boot = await this.#probeBooted();
      booted = boot.ok;
      bootStderr = boot.stderr;
      bootError = boot.error;
      let shouldCopy = booted || initialState === "unknown";
      // Another probe may have succeeded meanwhile.
      if (!booted && (this.state === "idle" || this.state === "running")) {
        booted = true;
        shouldCopy = false;
      }
      if (shouldCopy) {
        const copyError = await deployRunner(this);
        if (copyError !== null) {
          booted = false;
          bootError = copyError;
        }
      }
      if (booted) this.logger.info({ ProbeStart: goTime(probeStart) }, "boot probe succeeded");
    }
    let probe: ProbeResult = { ok: false, running: [], broken: false };
    if (booted || initialState === "unknown") probe = await this.#probeRunning();

    if (probe.broken && this.idleBehavior === "run") {
      this.logger.info({}, "probe reported broken instance");
      this.reportBootOutcome("failure");
      this.setIdleBehavior("drain");
    }
    if (!probe.ok || (!booted && probe.running.length === 0 && this.running.size === 0)) {
      // Shut down while we probed: nothing to add.
      if (this.state === "shutdown" && this.updatedSeq !== seqBefore) return;
      // The probe's start, not its end, counts: at least one probe starts after the deadline.
      const dur = probeStart - this.probed;
      if (this.#shutdownIfBroken(dur) && !booted) {
        this.reportBootOutcome("failure");
        this.logger.info(
          { Duration: dur / 1000, stderr: bootStderr, error: bootError },
          "boot failed",
        );
      }
      return;
    }

    const now = this.ctx.now();
    this.probed = now;
    if (this.updatedSeq !== seqBefore) {
      // Updated during the probe (e.g. a container start): the listing may be outdated.
      this.logger.debug({}, "skipping worker state update due to probe/sync race");
      return;
    }
    if (probe.running.length > 0) {
      this.busy = now;
      if (this.lastUuid === "") this.lastUuid = probe.running[0]!;
    } else if (this.running.size > 0) {
      this.busy = now;
    }
    let changed = this.#reconcile(probe.running);
    if (booted && (this.state === "unknown" || this.state === "booting")) {
      if (
        this.state === "booting" &&
        !this.#timeToReadyReported &&
        this.#firstSshConnection !== null
      ) {
        this.ctx.metrics.timeToReady.observe((now - this.#firstSshConnection) / 1000);
        this.#timeToReadyReported = true;
      }
      this.state = "idle";
      changed = true;
    }
    if (!changed) return;
    if (this.state === "unknown") {
      this.logger.info(
        { RunningContainers: this.running.size, State: this.state },
        "crunch-run probe succeeded, but boot probe is still failing",
      );
    }
    const busy = this.containers > 0;
    if (this.state === "idle" && busy) this.state = "running";
    else if (this.state === "running" && !busy) this.state = "idle";
    this.#touch();
    if (booted && (initialState === "unknown" || initialState === "booting")) {
      this.reportBootOutcome("success");
      this.logger.info(
        { RunningContainers: this.running.size, State: this.state },
        "probes succeeded, instance is in service",
      );
    }
    this.ctx.notify();
  }

  async #probeBooted(): Promise<{ ok: boolean; stderr: string; error: string }> {
    const cmd = this.ctx.settings.bootProbeCommand;
    let r: ExecResult;
    try {
      r = await this.exec(cmd, this.commandOptions());
    } catch (err) {
      const msg = errorMessage(err);
      if (EXPECTED_BOOT_ERROR.test(msg))
        this.logger.debug({ Command: cmd, error: msg }, "boot probe failed");
      else this.logger.warn({ Command: cmd, error: msg }, "boot probe failed");
      return { ok: false, stderr: "", error: msg };
    }
    if (r.exitCode !== 0) {
      const error = `exit status ${r.exitCode}`;
      this.logger.debug(
        { Command: cmd, stdout: r.stdout.toString(), stderr: r.stderr.toString(), error },
        "boot probe failed",
      );
      return { ok: false, stderr: r.stderr.toString(), error };
    }
    return { ok: true, stderr: "", error: "" };
  }

  async #probeRunning(): Promise<ProbeResult> {
    const fail: ProbeResult = { ok: false, running: [], broken: false };
    const runner = this.ctx.runnerProgram.program;
    if (runner === null) return fail;
    const { metrics, settings } = this.ctx;
    const prices = this.instance.priceHistory(this.instType);
    const cmd = listCommand(runner.cmd, prices.length > 0, this.instance.remoteUser);
    const opts: ExecuteOptions =
      prices.length > 0
        ? { ...this.commandOptions(), stdin: pricesJson(prices) }
        : this.commandOptions();
    const before = this.ctx.now();
    let r: ExecResult;
    try {
      r = await this.exec(cmd, opts);
    } catch (err) {
      this.logger.warn({ Command: cmd, error: errorMessage(err) }, "probe failed");
      metrics.runProbeDuration.observe({ outcome: "fail" }, (this.ctx.now() - before) / 1000);
      return fail;
    }
    if (r.exitCode !== 0) {
      this.logger.warn(
        {
          Command: cmd,
          stdout: r.stdout.toString(),
          stderr: r.stderr.toString(),
          error: `exit status ${r.exitCode}`,
        },
        "probe failed",
      );
      metrics.runProbeDuration.observe({ outcome: "fail" }, (this.ctx.now() - before) / 1000);
      return fail;
    }
    const now = this.ctx.now();
    metrics.runProbeDuration.observe({ outcome: "success" }, (now - before) / 1000);
    const report = parseListOutput(r.stdout.toString(), settings.config.clusterId);
    let broken = report.broken;
    for (const uuid of report.stale) {
      this.logger.info({ ContainerUUID: uuid }, "probe reported stale run lock");
    }
    if (report.stale.length === 0) {
      this.#staleRunLockSince = null;
    } else if (this.#staleRunLockSince === null) {
      this.#staleRunLockSince = now;
    } else if (now - this.#staleRunLockSince > settings.timeoutStaleRunLockMs) {
      this.logger.warn(
        { Duration: (now - this.#staleRunLockSince) / 1000 },
        "reporting broken after reporting stale run lock for too long",
      );
      broken = true;
    }
    return { ok: true, running: report.running as ContainerUuid[], broken };
  }

  /** Track listed containers; close runners no longer listed. Returns whether anything changed. */
  #reconcile(listed: readonly ContainerUuid[]): boolean {
    let changed = false;
    const alive = new Set(listed);
    for (const uuid of listed) {
      if (this.running.has(uuid)) continue;
      const rr = this.starting.get(uuid);
      if (rr !== undefined) {
        this.starting.delete(uuid);
        this.running.set(uuid, rr);
      } else {
        // Not started by this process: a previous dispatcher's container.
        this.logger.info({ ContainerUUID: uuid }, "crunch-run process detected");
        this.running.set(uuid, new RemoteRunner(this, uuid));
      }
      changed = true;
    }
    for (const uuid of this.running.keys()) {
      if (!alive.has(uuid) && this.closeRunner(uuid)) changed = true;
    }
    return changed;
  }

  // ---------------------------------------------------------------- plumbing

  /** Run a command; the first one that runs on a booting worker marks its first SSH connection. */
  async exec(cmd: string, opts: ExecuteOptions): Promise<ExecResult> {
    const r = await this.executor.execute(cmd, opts);
    if (this.#firstSshConnection === null && this.state === "booting") {
      this.#firstSshConnection = this.ctx.now();
      this.ctx.metrics.timeToSsh.observe((this.#firstSshConnection - this.appeared) / 1000);
    }
    return r;
  }

  /** Options for a probe-like command: bounded, and cancelled when the pool stops. */
  commandOptions(): ExecuteOptions {
    return {
      signal: this.ctx.stopSignal,
      timeoutMs: probeCommandTimeout(this.state, this.ctx.settings),
    };
  }

  #touch(): void {
    this.updatedSeq = this.ctx.nextSeq();
  }

  #target(inst: Instance): ExecutorTarget {
    return {
      address: inst.address,
      remoteUser: inst.remoteUser,
      instanceSecret: inst.tags[this.ctx.keys.instanceSecret] ?? "",
      verifyHostKey: (key, session, signal) => inst.verifyHostKey(key, session, signal),
    };
  }

  /** Keep the InstanceType and IdleBehavior tags in step with the worker. */
  #saveTags(): void {
    const keys = this.ctx.keys;
    const tags: Record<string, string> = { ...this.instance.tags };
    let save = false;
    const want: [string, string][] = [
      [keys.instanceType, this.instType.Name],
      [keys.idleBehavior, this.idleBehavior],
    ];
    for (const [k, v] of want) {
      if (tags[k] !== v) {
        tags[k] = v;
        save = true;
      }
    }
    if (!save) return;
    const inst = this.instance;
    this.ctx.spawn(
      inst.setTags(tags as InstanceTags).catch((err: unknown) => {
        this.logger.warn({ error: errorMessage(err) }, "error updating tags");
      }),
    );
  }
}
