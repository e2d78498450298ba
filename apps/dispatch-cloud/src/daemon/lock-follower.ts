import type { Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";
import type { Clock } from "@dispatch-cloud/arvados-types";
import type { DispatchLock } from "./dispatch-lock.js";
import type { Session } from "./session.js";
import { fail } from "./steps.js";

export interface LockFollowerOptions {
  readonly lock: DispatchLock;
  /** Builds a session (scheduler not started). */
  readonly startSession: () => Promise<Session>;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly retryMs: number;
}

/**
 * Dispatches only while the dispatch lock is held: a session runs while it is ours, stops when
 * it is lost (so two dispatchers never schedule at once), and a new one starts when it is ours
 * again. Arvados's dispatcher takes the lock once and never notices losing it; see
 * docs/operations.md.
 */
export class LockFollower {
  readonly #o: LockFollowerOptions;
  #session: Session | null = null;
  #last: Session | null = null;
  #paused = "";
  /** Bumped on every loss, so work started under an older hold knows it is stale. */
  #generation = 0;
  readonly #stop = new AbortController();
  #resuming: Promise<void> = Promise.resolve();
  readonly #listeners = new Set<() => void>();

  constructor(options: LockFollowerOptions) {
    this.#o = options;
  }

  /** Waits for the lock, then builds the first session. Rejects if `signal` aborts first. */
  async begin(signal?: AbortSignal): Promise<Session> {
    const gen = this.#generation;
    if (!(await this.#o.lock.acquire((r) => this.#lost(r), signal))) {
      fail("stopped while waiting for the dispatch lock");
    }
    const session = await this.#o.startSession();
    if (gen !== this.#generation) {
      await session.stop();
      fail(`lost the dispatch lock while starting: ${this.#paused}`);
    }
    this.#session = this.#last = session;
    return session;
  }

  /** The running session, or null while the lock is not ours. */
  current(): Session | null {
    return this.#session;
  }

  /** The running session, else the most recent one (stopped). Only after `begin`. */
  latest(): Session {
    if (this.#last === null) throw new Error("no session has started");
    return this.#last;
  }

  get dispatching(): boolean {
    return this.#session !== null;
  }

  /** Why we are not dispatching ("" while dispatching). */
  get pausedBecause(): string {
    return this.#paused;
  }

  /** Calls `listener` whenever dispatching stops or resumes; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops following: no more attempts; stops the session if one runs. The lock is the caller's. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#resuming;
    const s = this.#session;
    this.#session = null;
    if (s !== null) await s.stop();
  }

  #notify(): void {
    for (const l of this.#listeners) l();
  }

  #lost(reason: string): void {
    if (this.#stop.signal.aborted) return;
    this.#generation++;
    this.#paused = `lost the dispatch lock (${reason}); waiting to get it back`;
    const old = this.#session;
    this.#session = null;
    this.#notify();
    const previous = this.#resuming;
    this.#resuming = previous.then(() => this.#resume(old, this.#generation));
  }

  async #resume(old: Session | null, gen: number): Promise<void> {
    const { lock, logger, clock, retryMs } = this.#o;
    if (old !== null) {
      logger.warn({}, "stopped dispatching: the dispatch lock is no longer ours");
      await old.stop();
    }
    const signal = this.#stop.signal;
    for (;;) {
      // Give a healthy peer the first chance before trying again.
      try {
        await clock.sleep(retryMs, signal);
      } catch {
        return;
      }
      if (gen !== this.#generation) return;
      if (!(await lock.acquire((r) => this.#lost(r), signal))) return;
      let session: Session;
      try {
        session = await this.#o.startSession();
      } catch (err) {
        logger.error({ error: errorMessage(err) }, "cannot resume dispatching");
        await lock.release();
        continue;
      }
      if (gen !== this.#generation || signal.aborted) {
        await session.stop();
        return;
      }
      session.scheduler.start();
      this.#session = this.#last = session;
      this.#paused = "";
      logger.info({}, "resumed dispatching: the dispatch lock is ours again");
      this.#notify();
      return;
    }
  }
}
