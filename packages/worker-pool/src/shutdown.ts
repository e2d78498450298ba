// When a worker should go: the idle/drain/booting rules and the unresponsive-worker deadlines
// (spec cloud-side §5.8, §5.9). Pure: the worker acts on the answers.
import type { IdleBehavior, WorkerState } from "@dispatch-cloud/arvados-types";
import type { Settings } from "./settings.js";

/** What the rules look at. */
export interface ShutdownFacts {
  readonly state: WorkerState;
  readonly idleBehavior: IdleBehavior;
  /** When it last ran a container (or appeared). */
  readonly busy: number;
  readonly appeared: number;
  /** Its crunch-run processes: running, and starting; `givenUp` after TimeoutTERM. */
  readonly running: ReadonlyMap<string, { readonly givenUp: boolean }>;
  readonly starting: ReadonlyMap<string, { readonly givenUp: boolean }>;
}

/** Whether a worker that answers its probes should be shut down now. */
export function eligibleForShutdown(w: ShutdownFacts, s: Settings, now: number): boolean {
  if (w.idleBehavior === "hold") return false;
  const draining = w.idleBehavior === "drain";
  switch (w.state) {
    case "booting":
      return draining;
    case "idle":
      return draining || now - w.busy >= s.timeoutIdleMs;
    case "running":
      if (!draining) return false;
      for (const rr of w.running.values()) if (!rr.givenUp) return false;
      for (const rr of w.starting.values()) if (!rr.givenUp) return false;
      return true;
    case "unknown":
      // Arvados destroys an adopted VM at TimeoutBooting even while its containers run;
      // we keep it while the run probe lists containers.
      return now - w.appeared >= s.timeoutBootingMs && w.running.size + w.starting.size === 0;
    case "shutdown":
      return false;
  }
  return false;
}

/**
 * How long a worker may fail its probes before it is given up: TimeoutBooting while it has
 * never been in service, TimeoutProbe after.
 */
export function unresponsiveAfter(state: WorkerState, s: Settings): number {
  return state === "unknown" || state === "booting" ? s.timeoutBootingMs : s.timeoutProbeMs;
}

/** Probe commands give up after a minute (Arvados's dial timeout), or the worker's deadline. */
export function probeCommandTimeout(state: WorkerState, s: Settings): number {
  return Math.min(PROBE_COMMAND_TIMEOUT_MS, unresponsiveAfter(state, s));
}

/**
 * Deviation: Arvados runs probe commands without a timeout, so a VM that stops answering on an
 * open connection blocks its probes until TCP gives up. A minute (the SSH dial timeout) bounds
 * each probe command, or less where TimeoutBooting/TimeoutProbe is shorter: a command cannot
 * usefully outlast the time after which the worker is given up anyway.
 */
const PROBE_COMMAND_TIMEOUT_MS = 60_000;
