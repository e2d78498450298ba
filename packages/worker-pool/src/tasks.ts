import type { Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";

/**
 * The pool's background work: every promise it starts without awaiting goes through here, so
 * a failure is logged rather than lost and tests can wait for everything to finish.
 */
export class BackgroundTasks {
  readonly #tasks = new Set<Promise<void>>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Run in the background; failures are logged. `track` makes `settled()` wait for it. */
  spawn(p: Promise<void>, track = true): void {
    const guarded = p.catch((err: unknown) => {
      this.#log.error({ error: errorMessage(err) }, "unexpected error in worker pool");
    });
    if (track) this.#track(guarded);
  }

  /** Make `settled()` wait for `p` too. */
  tracked<T>(p: Promise<T>): Promise<T> {
    this.#track(
      p.then(
        () => undefined,
        () => undefined,
      ),
    );
    return p;
  }

  /** Wait until every tracked task started so far (and any they start) has finished. */
  async settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #track(done: Promise<void>): void {
    this.#tasks.add(done);
    void done.finally(() => this.#tasks.delete(done));
  }
}

/** A gate that opens once; waiting on an open gate returns at once. */
export class Gate {
  #open = false;
  readonly #waiters = new Set<() => void>();

  get isOpen(): boolean {
    return this.#open;
  }

  open(): void {
    this.#open = true;
    for (const done of this.#waiters) done();
    this.#waiters.clear();
  }

  /** Resolves when the gate opens; rejects with `abortMessage` if `signal` aborts first. */
  wait(signal: AbortSignal | undefined, abortMessage: string): Promise<void> {
    if (this.#open) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(done);
        reject(new Error(abortMessage));
      };
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(done);
    });
  }
}
