import type { Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";

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

/** The pool's subscribers: each notification reaches every one of them. */
export class Subscribers {
  readonly #subs = new Set<Subscription>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Without an argument: a one-slot channel to wait on. With a listener: it is called
   * (coalesced, in a microtask) after notifications; the result unsubscribes.
   */
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

  post(): void {
    for (const s of this.#subs) s.post();
  }

  /** Wake every waiter with false and forget them all. */
  closeAll(): void {
    for (const s of this.#subs) s.close();
    this.#subs.clear();
  }
}
