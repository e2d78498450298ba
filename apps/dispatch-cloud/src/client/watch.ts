import type { ContainerState } from "@dispatch-cloud/arvados-types";

/** What a watcher sees of one container at one moment, from the API and the dispatcher. */
export interface Observation {
  readonly state: ContainerState;
  readonly exitCode: number | null;
  /** `runtime_status.error`, e.g. why it was cancelled. */
  readonly runtimeError: string | null;
  /** `runtime_status.warning`, else `.activity`: what crunch-run says it is doing or fears. */
  readonly runtimeNote?: string | null;
  /** The dispatcher's scheduling status ("" when none, or when it is not in its queue). */
  readonly schedulingStatus: string;
  /** The state of the instance running it, else of the (loopback) instance; null when none. */
  readonly workerState: string | null;
}

export type Phase =
  "queued" | "locked" | "instance booting" | "starting" | "running" | "complete" | "cancelled";

export function phaseOf(o: Observation): Phase {
  if (o.state === "Locked") {
    if (o.workerState === null) return "locked";
    // An instance that is not yet ready, or a create still in flight.
    if (o.workerState === "booting" || o.workerState === "unknown") return "instance booting";
    return "starting";
  }
  const phases = {
    Queued: "queued",
    Running: "running",
    Complete: "complete",
    Cancelled: "cancelled",
  } as const satisfies Record<Exclude<Observation["state"], "Locked">, Phase>;
  return phases[o.state];
}

export function isFinal(o: Observation): boolean {
  return o.state === "Complete" || o.state === "Cancelled";
}

/** One progress line: elapsed time, phase, then what the dispatcher says about it. */
export function progressLine(elapsedMs: number, o: Observation): string {
  const parts = [`[${(elapsedMs / 1000).toFixed(1).padStart(5)}s]`, phaseOf(o).padEnd(16)];
  parts.push(`container ${o.state}`);
  if (o.workerState !== null) parts.push(`instance ${o.workerState}`);
  if (o.state === "Complete" || (o.state === "Cancelled" && o.exitCode !== null)) {
    parts.push(`exit code ${o.exitCode ?? "none"}`);
  }
  let line = parts.join("  ");
  // The dispatcher's status is about getting it started; once it runs it is stale.
  const waiting = o.state === "Queued" || o.state === "Locked";
  if (waiting && o.schedulingStatus !== "") line += ` — ${o.schedulingStatus}`;
  if (o.runtimeError !== null && o.runtimeError !== "") line += ` — ${o.runtimeError}`;
  if (o.runtimeNote) line += ` — ${o.runtimeNote}`;
  return line;
}

export interface WatchClock {
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface WatchOptions {
  /** Reads the container's current state; a throw is reported once and the watch goes on. */
  readonly observe: (signal?: AbortSignal) => Promise<Observation>;
  readonly onProgress: (line: string) => void;
  readonly timeoutMs: number;
  readonly pollMs: number;
  readonly clock: WatchClock;
  readonly signal?: AbortSignal;
}

export type WatchOutcome =
  | { readonly kind: "final"; readonly observation: Observation; readonly elapsedMs: number }
  | { readonly kind: "timeout"; readonly last: Observation | null; readonly elapsedMs: number }
  | { readonly kind: "aborted"; readonly last: Observation | null };

/**
 * Polls until the container is Complete or Cancelled, printing a line whenever what it shows
 * changes. Timing out (`timeoutMs` may be Infinity) and being interrupted are outcomes, not
 * errors.
 */
export async function watchContainer(opts: WatchOptions): Promise<WatchOutcome> {
  const start = opts.clock.now();
  let last: Observation | null = null;
  let lastLine = "";
  let lastError = "";
  for (;;) {
    if (opts.signal?.aborted) return { kind: "aborted", last };
    const elapsedMs = opts.clock.now() - start;
    try {
      const o = await opts.observe(opts.signal);
      last = o;
      lastError = "";
      const line = progressLine(elapsedMs, o);
      // Compare without the elapsed time, which changes on every poll.
      const key = line.slice(line.indexOf("]"));
      if (key !== lastLine) {
        opts.onProgress(line);
        lastLine = key;
      }
      if (isFinal(o)) return { kind: "final", observation: o, elapsedMs };
    } catch (err) {
      if (opts.signal?.aborted) return { kind: "aborted", last };
      const message = err instanceof Error ? err.message : String(err);
      if (message !== lastError) {
        opts.onProgress(`[${(elapsedMs / 1000).toFixed(1).padStart(5)}s] (${message})`);
        lastError = message;
      }
    }
    if (opts.clock.now() - start >= opts.timeoutMs) {
      return { kind: "timeout", last, elapsedMs: opts.clock.now() - start };
    }
    try {
      await opts.clock.sleep(opts.pollMs, opts.signal);
    } catch {
      return { kind: "aborted", last };
    }
  }
}

/** Real time. */
export const systemWatchClock: WatchClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal!.reason as Error);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/** Whether a watched container succeeded, and what to tell the user when it did not. */
export function verdict(
  outcome: WatchOutcome,
  uuid: string,
  timeoutMs: number,
): { ok: true } | { ok: false; reason: string } {
  if (outcome.kind === "aborted") {
    return { ok: false, reason: `interrupted while waiting for container ${uuid}` };
  }
  if (outcome.kind === "timeout") {
    const state = outcome.last?.state ?? "unknown";
    const status = outcome.last?.schedulingStatus ? ` (${outcome.last.schedulingStatus})` : "";
    return {
      ok: false,
      reason: `timed out after ${Math.round(timeoutMs / 1000)}s waiting for container ${uuid}: it is still ${state}${status}`,
    };
  }
  const o = outcome.observation;
  if (o.state === "Cancelled") {
    return {
      ok: false,
      reason: `container ${uuid} was Cancelled${o.runtimeError ? `: ${o.runtimeError}` : " (runtime_status has no error)"}`,
    };
  }
  if (o.exitCode !== 0) {
    return {
      ok: false,
      reason: `container ${uuid} is Complete but exited ${o.exitCode ?? "with no exit code"}`,
    };
  }
  return { ok: true };
}
