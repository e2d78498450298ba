/**
 * Time as libraries see it. Everything that waits or measures a timeout goes through a Clock, so
 * tests drive time by hand instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Resolve after `ms` milliseconds (at once when `ms` <= 0). Rejects with the signal's reason
   * when `signal` aborts first.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * One-shot timers, for code that arms a timeout and cancels it rather than awaiting a sleep
 * (the scheduler's wake-ups, the SSH executor's command timeouts). Tests fire them by hand.
 */
export interface Timers {
  /** Call `fn` once after `ms` milliseconds; the handle is only for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque: each clock hands out its own kind (Node's Timeout object, a test clock's number). */
export type TimerHandle = object | number;

/** The reason a signal aborted, as an Error. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error(typeof reason === "string" ? reason : "aborted");
  err.name = "AbortError";
  return err;
}

/**
 * `p`'s outcome, unless `signal` aborts first: then a rejection with `reason()` (by default the
 * signal's reason). `p` itself is not stopped; its late outcome is ignored.
 */
export function raceAbort<T>(
  p: Promise<T>,
  signal: AbortSignal,
  reason: () => Error = () => abortReason(signal),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(reason());
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Real time. */
export const systemClock: Clock & Timers = {
  now: () => Date.now(),
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortReason(signal!));
      };
      const timer = setTimeout(
        () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
