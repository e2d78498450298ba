import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import {
  EngineError,
  checkEngine,
  startContainer,
  type ContainerSpec,
  type EngineName,
  type EngineOptions,
} from "./engine.js";
import { BROKEN_MARKER } from "./locks.js";
import { refusal, unsupportedFeatures, type ContainerNeeds } from "./support.js";

/** The calls the runner makes to the Arvados API. */
export interface RunnerApi {
  getContainer(uuid: string): Promise<ContainerSpec & ContainerNeeds & { readonly state: string }>;
  /** The container's secret mounts ({} where the API has none to give). */
  getSecretMounts(uuid: string): Promise<Readonly<Record<string, { readonly kind: string }>>>;
  updateContainer(uuid: string, attrs: Record<string, unknown>): Promise<void>;
  /** Append log lines of one stream (`stdout`, `stderr`, `crunch-run`) to the container's log. */
  writeLog(uuid: string, eventType: string, text: string): Promise<void>;
}

export interface RunOptions {
  readonly uuid: string;
  /** `singularity` is accepted only to be refused with a reason the user can see. */
  readonly engine: EngineName | "singularity";
  readonly engineOptions: EngineOptions;
  /** Flags accepted for compatibility that have no effect here, said in the container's log. */
  readonly ignoredFlags: readonly string[];
  readonly lockDir: string;
  readonly brokenNodeHook: string;
  readonly api: RunnerApi;
  /** Where the runner's own progress goes (the detached runner's log file). */
  readonly log: (message: string) => void;
  /**
   * Aborted (with the signal's name as reason) when the dispatcher asks this runner to stop:
   * SIGTERM or SIGINT, possibly before the command has started.
   */
  readonly stop: AbortSignal;
}

const FLUSH_INTERVAL_MS = 1000;

/** Buffers log lines per stream and sends them in batches, so a chatty container costs few calls. */
class LogWriter {
  private readonly pending = new Map<string, string[]>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: RunnerApi,
    private readonly uuid: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  line(eventType: string, text: string): void {
    const lines = this.pending.get(eventType) ?? [];
    lines.push(text);
    this.pending.set(eventType, lines);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, FLUSH_INTERVAL_MS);
  }

  flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batches = [...this.pending.entries()];
    this.pending.clear();
    this.flushing = this.flushing.then(async () => {
      for (const [eventType, lines] of batches) {
        try {
          await this.api.writeLog(this.uuid, eventType, `${lines.join("\n")}\n`);
        } catch (err) {
          this.onError(err);
        }
      }
    });
    return this.flushing;
  }
}

function markBroken(options: RunOptions, reason: string): void {
  if (options.brokenNodeHook !== "") {
    spawnSync(options.brokenNodeHook, [reason], { stdio: "ignore" });
    return;
  }
  fs.mkdirSync(options.lockDir, { recursive: true });
  fs.writeFileSync(path.join(options.lockDir, BROKEN_MARKER), `${reason}\n`);
}

/**
 * Run one container to the end: refuse it if it needs what this runner cannot do, else mark it
 * Running, start the command, stream its output into the container's log, and record how it
 * ended: Complete with the exit code, or Cancelled when the dispatcher asked us to stop (even
 * before the command started). Returns the runner's own exit status. The container's lock file
 * is left for `--list` to clear once the lock is free, as Arvados's crunch-run leaves it.
 */
export async function runContainer(options: RunOptions): Promise<number> {
  const { api, uuid, log, stop } = options;
  const logs = new LogWriter(api, uuid, (err) => log(`error writing log: ${String(err)}`));
  const say = (message: string) => {
    log(message);
    logs.line("crunch-run", `${new Date().toISOString()} ${message}`);
  };
  const cancel = async () => {
    await logs.flush();
    await api.updateContainer(uuid, { state: "Cancelled" });
  };
  const container = await api.getContainer(uuid);
  if (container.state !== "Locked") {
    log(`container ${uuid} is ${container.state}, not Locked: not running it`);
    return 1;
  }
  // Asked to stop before the command started: never start it.
  if (stop.aborted) {
    // Still Locked: the dispatcher sees no runner and requeues it.
    log(`caught signal ${String(stop.reason)} before the container started: not running it`);
    return 1;
  }
  for (const flag of options.ignoredFlags) say(`ignoring ${flag}`);
  const problems = unsupportedFeatures(container, await api.getSecretMounts(uuid), options.engine);
  if (problems.length > 0) {
    const status = refusal(problems);
    say(status.error);
    await logs.flush();
    await api.updateContainer(uuid, { state: "Cancelled", runtime_status: status });
    return 1;
  }
  const engine = options.engine as EngineName;
  try {
    checkEngine(engine);
  } catch (err) {
    // The container stays Locked: the dispatcher sees no runner and gives it to another node.
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof EngineError && err.brokenNode) markBroken(options, message);
    log(`cannot run containers on this node: ${message}`);
    return 1;
  }
  await api.updateContainer(uuid, { state: "Running" });
  if (stop.aborted) {
    say(`caught signal ${String(stop.reason)} before the command started: not starting it`);
    await cancel();
    return 0;
  }
  let started;
  try {
    started = startContainer(engine, container, options.engineOptions);
  } catch (err) {
    say(`cannot start container: ${err instanceof Error ? err.message : String(err)}`);
    await cancel();
    return 1;
  }
  const child = started.process;

  let cancelled = false;
  const onStop = () => {
    cancelled = true;
    say(`caught signal ${String(stop.reason)}: stopping container`);
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
  };
  stop.addEventListener("abort", onStop, { once: true });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    // A command that cannot be executed (not found, not executable) ends like a shell's 127.
    child.once("error", (err) => {
      say(`cannot execute ${JSON.stringify(container.command[0])}: ${err.message}`);
      resolve({ code: 127, signal: null });
    });
  });
  const outputDone = new Promise<void>((resolve) => child.once("close", () => resolve()));
  say(`running ${JSON.stringify(container.command)} with the ${engine} engine`);
  say("this runner saves no output or log collection: the container's output stays null");
  for (const [stream, eventType] of [
    [child.stdout, "stdout"],
    [child.stderr, "stderr"],
  ] as const) {
    if (stream === null) continue;
    readline.createInterface({ input: stream }).on("line", (line) => logs.line(eventType, line));
  }

  const { code, signal } = await exited;
  stop.removeEventListener("abort", onStop);
  // Whatever the command left running in its process group goes too: it would otherwise hold
  // the container's lock, and the node would report a stale run lock.
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // Nothing left.
  }
  await outputDone;
  // Killed by a signal: the shell's convention, as docker reports it (SIGKILL → 137).
  const exitCode = code ?? 128 + (signal === null ? 0 : (os.constants.signals[signal] ?? 0));
  started.cleanup();
  if (cancelled) {
    say("container stopped on request");
    await cancel();
  } else {
    say(`container exited with code ${exitCode}`);
    await logs.flush();
    await api.updateContainer(uuid, { exit_code: exitCode, state: "Complete" });
  }
  return 0;
}
