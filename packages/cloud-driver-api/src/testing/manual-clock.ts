import { abortReason, type Clock } from "@dispatch-cloud/arvados-types";

interface Sleeper {
  readonly due: number;
  readonly seq: number;
  readonly resolve: () => void;
}

/** Let every queued microtask (and anything it queues) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that moves only when told. `advance(ms)` walks time forward to each due sleeper in
 * turn (earliest first, ties in the order they started sleeping), resolves it and lets the code
 * that awaited it run before looking for the next one, so a loop that sleeps repeatedly sees
 * every tick it would have seen in real time.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #sleepers: Sleeper[] = [];
  #watchers: { count: number; resolve: () => void }[] = [];

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const seq = this.#seq++;
      const onAbort = (): void => {
        this.#sleepers = this.#sleepers.filter((s) => s.seq !== seq);
        reject(abortReason(signal!));
      };
      const sleeper: Sleeper = {
        due: this.#now + Math.max(0, ms),
        seq,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#notifyWatchers();
    });
  }

  /** How many sleeps are waiting for time to pass. */
  get pendingSleepers(): number {
    return this.#sleepers.length;
  }

  /** When the next sleeper is due, or undefined if none is waiting. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const s of this.#sleepers) if (min === undefined || s.due < min) min = s.due;
    return min;
  }

  /**
   * Resolves once at least `count` sleeps are pending: "the code under test is now waiting".
   * Tests await this instead of sleeping before they advance time.
   */
  waitForSleepers(count = 1, signal?: AbortSignal): Promise<void> {
    if (this.#sleepers.length >= count) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const w = {
        count,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.#watchers = this.#watchers.filter((x) => x !== w);
        reject(abortReason(signal!));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#watchers.push(w);
    });
  }

  /**
   * Move time forward by `ms`, waking sleepers as their time comes. Resolves after every woken
   * sleeper's continuation has run (as far as it goes without I/O).
   */
  async advance(ms: number): Promise<void> {
    if (ms < 0) throw new RangeError("ManualClock cannot go backwards");
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const due = this.nextDue();
      if (due === undefined || due > target) break;
      this.#now = Math.max(this.#now, due);
      const woken = this.#sleepers.filter((s) => s.due <= this.#now).sort((a, b) => a.seq - b.seq);
      this.#sleepers = this.#sleepers.filter((s) => s.due > this.#now);
      for (const s of woken) s.resolve();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  /** Advance to the next due sleeper (if any) and wake it. Returns the new time. */
  async advanceToNext(): Promise<number> {
    const due = this.nextDue();
    if (due !== undefined) await this.advance(Math.max(0, due - this.#now));
    return this.#now;
  }

  #notifyWatchers(): void {
    const ready = this.#watchers.filter((w) => this.#sleepers.length >= w.count);
    this.#watchers = this.#watchers.filter((w) => this.#sleepers.length < w.count);
    for (const w of ready) w.resolve();
  }
}
