import type { Clock } from "./clock.js";

/** Concurrency the limiter starts with, as Arvados's client does. */
export const INITIAL_LIMIT = 8;
/** After a 503, no new request starts (and the limit is not cut again) for this long. */
export const QUIET_PERIOD_MS = 1000;

/**
 * The adaptive outgoing concurrency limit of Arvados's Go client: a 503 halves the limit
 * (rounding up) and starts a 1 s quiet period in which no request starts; each 2xx/3xx answer
 * raises it by max(1, limit/10), capped at twice the concurrency seen and at `maxLimit`
 * (`API.MaxConcurrentRequests/4`; 0 = never raise). A limit of 0 means unlimited.
 */
export class RequestLimiter {
  private limit = INITIAL_LIMIT;
  private current = 0;
  private quietUntil = 0;
  private readonly waiters: Array<() => void> = [];
  private quietTimer: (() => void) | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly maxLimit: number,
  ) {}

  /** Current limit and in-flight count (for metrics and tests). */
  snapshot(): { limit: number; current: number; quietUntil: number } {
    return { limit: this.limit, current: this.current, quietUntil: this.quietUntil };
  }

  /** Waits for a slot; rejects with the signal's reason if it aborts first. */
  async acquire(signal?: AbortSignal): Promise<void> {
    while (!this.canStart()) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal?.reason as Error);
        };
        this.waiters.push(wake);
        signal?.addEventListener("abort", onAbort, { once: true });
        this.armQuietTimer();
      });
    }
    this.current++;
  }

  release(): void {
    this.current--;
    this.wakeAll();
  }

  /** Adjusts the limit from an HTTP status (call before release). Returns true on 503. */
  report(status: number): boolean {
    if (status === 503) {
      if (this.limit === 0) this.limit = this.current;
      const now = this.clock.now();
      if (now >= this.quietUntil) {
        this.limit = Math.ceil(this.limit / 2);
        this.quietUntil = now + QUIET_PERIOD_MS;
      }
      return true;
    }
    if (status >= 200 && status < 400 && this.limit < this.maxLimit) {
      this.limit += Math.max(1, Math.floor(this.limit / 10));
      this.limit = Math.min(this.limit, this.current * 2);
      if (this.maxLimit > 0) this.limit = Math.min(this.limit, this.maxLimit);
    }
    return false;
  }

  private canStart(): boolean {
    if (this.clock.now() < this.quietUntil) return false;
    return this.limit <= 0 || this.current < this.limit;
  }

  private armQuietTimer(): void {
    const wait = this.quietUntil - this.clock.now();
    if (wait <= 0 || this.quietTimer) return;
    this.quietTimer = this.clock.setTimer(wait, () => {
      this.quietTimer = null;
      this.wakeAll();
    });
  }

  private wakeAll(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
