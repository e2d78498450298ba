/**
 * Runs deletions of one resource kind with at most `concurrency` in flight. A key already
 * queued or in flight is not queued again, so the listing that re-finds a dangling NIC every
 * few seconds does not pile up duplicate deletes.
 *
 * Arvados feeds 4 workers through an unbuffered channel, which blocks the listing until a
 * worker is free; here enqueue never blocks the caller.
 */
export class BoundedDeleter {
  private readonly queue: { key: string; run: (signal: AbortSignal) => Promise<void> }[] = [];
  private readonly known = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(
    private readonly concurrency: number,
    private readonly onError: (key: string, err: unknown) => void,
  ) {}

  /** Queue `run` under `key` unless that key is already pending. Returns whether it was queued. */
  enqueue(key: string, run: (signal: AbortSignal) => Promise<void>): boolean {
    if (this.stopped || this.known.has(key)) return false;
    this.known.add(key);
    this.queue.push({ key, run });
    this.pump();
    return true;
  }

  get pending(): number {
    return this.queue.length + this.inFlight.size;
  }

  /** Drop what is queued, abort and wait for what is in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    this.abort.abort();
    await Promise.allSettled(this.inFlight);
  }

  /** Resolves once everything queued so far has finished (for tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled(this.inFlight);
  }

  private pump(): void {
    while (!this.stopped && this.inFlight.size < this.concurrency && this.queue.length > 0) {
      const item = this.queue.shift()!;
      const p: Promise<void> = item
        .run(this.abort.signal)
        .catch((err: unknown) => this.onError(item.key, err))
        .finally(() => {
          this.inFlight.delete(p);
          this.known.delete(item.key);
          this.pump();
        });
      this.inFlight.add(p);
    }
  }
}
