const THROTTLE_MIN_MS = 1_000;
const THROTTLE_MAX_MS = 60_000;

/**
 * How long to wait after consecutive throttling errors: d ← d×1.5 + 1 s within [1 s, 60 s]
 * (1 s, 2.5 s, 4.75 s, …), back to 0 after any other outcome. Arvados's EC2 driver backs off
 * this way; drivers keep one per kind of call (create, list) so one does not slow the other.
 */
export class ThrottleBackoff {
  #delayMs = 0;
  get delayMs(): number {
    return this.#delayMs;
  }
  /** Advance after a throttling error; returns the new delay in milliseconds. */
  next(): number {
    const d = this.#delayMs * 1.5 + 1_000;
    this.#delayMs = Math.min(THROTTLE_MAX_MS, Math.max(THROTTLE_MIN_MS, d));
    return this.#delayMs;
  }
  reset(): void {
    this.#delayMs = 0;
  }
}
