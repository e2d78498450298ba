import type { IncomingMessage } from "node:http";
import { Gauge, Summary, type Registry } from "prom-client";

/** A request that must not wait in the queue longer than MaxQueueTimeForLockRequests. */
export const MIN_PRIORITY = Number.NEGATIVE_INFINITY;

/**
 * Arvados's request priorities (lib/service): container lock requests are answered 503 rather
 * than left waiting, so a dispatcher hears about overload at once; log entries are the first to
 * drop; requests from a browser (with Origin) go first.
 */
export function arvadosPriority(req: IncomingMessage): number {
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  if (req.method === "POST" && path.startsWith("/arvados/v1/containers/") && path.endsWith("/lock"))
    return MIN_PRIORITY;
  if (req.method === "POST" && path.startsWith("/arvados/v1/logs")) return -1;
  if ((req.headers.origin ?? "") !== "") return 1;
  return 0;
}

export interface LimiterOptions {
  /** `API.MaxConcurrentRequests`; 0 means no limit. */
  readonly maxConcurrent: number;
  /** `API.MaxQueuedRequests`. */
  readonly maxQueue: number;
  /** `API.MaxQueueTimeForLockRequests`, ms: how long a MIN_PRIORITY request may wait. */
  readonly maxQueueTimeForMinPriorityMs: number;
  readonly priority?: (req: IncomingMessage) => number;
  /** Where the arvados_*_requests metrics go; none registered without one. */
  readonly registry?: Registry;
  /** The queue label in metrics (Arvados's services use "api"). */
  readonly label?: string;
}

interface Entry {
  readonly queued: number;
  readonly priority: number;
  readonly seq: number;
  settle(ok: boolean): void;
  settled: boolean;
}

const SUMMARY = { percentiles: [0.5, 0.9, 0.95, 0.99], maxAgeSeconds: 600, ageBuckets: 5 };

function priorityLabel(p: number): "low" | "normal" | "high" {
  return p < 0 ? "low" : p > 0 ? "high" : "normal";
}

/**
 * Arvados's incoming request limiter (sdk/go/httpserver RequestLimiter): at most maxConcurrent
 * requests handled at once; the rest wait in a queue served by priority then arrival; beyond
 * maxQueue the lowest-priority waiter gets 503; a waiter whose client goes away gets 503 too.
 */
export class RequestLimiter {
  readonly #o: Required<Omit<LimiterOptions, "registry">>;
  #handling = 0;
  #seq = 0;
  #used = false;
  readonly #queue: Entry[] = [];
  readonly #delay: Summary<"queue" | "priority"> | undefined;
  /** Gauges read on collection; kept here only to say they belong to this limiter. */
  readonly #gauges: Gauge[] = [];
  readonly #timeout: Summary<"queue" | "priority"> | undefined;

  constructor(options: LimiterOptions) {
    this.#o = { priority: arvadosPriority, label: "api", ...options };
    const registers = options.registry === undefined ? [] : [options.registry];
    if (registers.length === 0) return;
    const q = this.#o.label;
    // Series appear once the queue has seen a request, as Arvados's do.
    const gauge = (name: string, help: string, value: () => number): void => {
      const used = (): boolean => this.#used;
      this.#gauges.push(
        new Gauge({
          name,
          help,
          labelNames: ["queue"],
          registers,
          collect() {
            if (used()) this.set({ queue: q }, value());
          },
        }),
      );
    };
    gauge("arvados_concurrent_requests", "Number of requests in progress", () => this.#handling);
    gauge(
      "arvados_max_concurrent_requests",
      "Maximum number of concurrent requests",
      () => this.#o.maxConcurrent,
    );
    gauge(
      "arvados_max_queued_requests",
      "Maximum number of queued requests",
      () => this.#o.maxQueue,
    );
    const queued = (): Entry[] => this.#queue;
    const usedNow = (): boolean => this.#used;
    this.#gauges.push(
      new Gauge({
        name: "arvados_queued_requests",
        help: "Number of requests in queue",
        labelNames: ["queue", "priority"],
        registers,
        collect() {
          if (!usedNow()) return;
          const n = { low: 0, normal: 0, high: 0 };
          for (const e of queued()) n[priorityLabel(e.priority)]++;
          for (const [priority, v] of Object.entries(n)) this.set({ queue: q, priority }, v);
        },
      }),
    );
    const byQueue = (name: string, help: string) =>
      new Summary({ name, help, labelNames: ["queue", "priority"], registers, ...SUMMARY });
    this.#delay = byQueue(
      "arvados_queue_delay_seconds",
      "Time spent in the incoming request queue before start of processing",
    );
    this.#timeout = byQueue(
      "arvados_queue_timeout_seconds",
      "Time spent in the incoming request queue before client timed out or disconnected",
    );
  }

  /** Requests being handled now. */
  get handling(): number {
    return this.#handling;
  }

  /** Requests waiting now. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Waits for a slot. Resolves with `release` (call it when the request is done), or null when
   * the request must get a 503: the queue overflowed, it waited too long, or `gone` fired.
   */
  async admit(req: IncomingMessage, gone: AbortSignal): Promise<{ release: () => void } | null> {
    this.#used = true;
    const priority = this.#o.priority(req);
    const queued = Date.now();
    let settle: (ok: boolean) => void = () => undefined;
    const decided = new Promise<boolean>((resolve) => (settle = resolve));
    const entry: Entry = {
      queued,
      priority,
      seq: this.#seq++,
      settled: false,
      settle(ok) {
        if (this.settled) return;
        this.settled = true;
        settle(ok);
      },
    };
    const max = this.#o.maxConcurrent;
    if (max === 0 || this.#handling < max) {
      this.#handling++;
      entry.settle(true);
    } else {
      this.#queue.push(entry);
      this.#trim();
    }
    const drop = (): void => this.#remove(entry);
    gone.addEventListener("abort", drop, { once: true });
    const timer =
      priority === MIN_PRIORITY
        ? setTimeout(drop, this.#o.maxQueueTimeForMinPriorityMs)
        : undefined;
    const ok = await decided;
    gone.removeEventListener("abort", drop);
    clearTimeout(timer);
    const labels = { queue: this.#o.label, priority: priorityLabel(priority) };
    (ok ? this.#delay : this.#timeout)?.observe(labels, (Date.now() - queued) / 1000);
    if (!ok) return null;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#handling--;
        this.#run();
      },
    };
  }

  /** Highest priority first, then earliest. */
  static #before(a: Entry, b: Entry): boolean {
    return a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq);
  }

  #run(): void {
    while (
      this.#queue.length > 0 &&
      (this.#o.maxConcurrent === 0 || this.#handling < this.#o.maxConcurrent)
    ) {
      let best = 0;
      for (let i = 1; i < this.#queue.length; i++) {
        if (RequestLimiter.#before(this.#queue[i]!, this.#queue[best]!)) best = i;
      }
      const [e] = this.#queue.splice(best, 1);
      this.#handling++;
      e?.settle(true);
    }
  }

  /** Over maxQueue: the lowest-priority, latest waiter gets 503. */
  #trim(): void {
    if (this.#queue.length <= this.#o.maxQueue) return;
    let worst = 0;
    for (let i = 1; i < this.#queue.length; i++) {
      if (RequestLimiter.#before(this.#queue[worst]!, this.#queue[i]!)) worst = i;
    }
    const [e] = this.#queue.splice(worst, 1);
    e?.settle(false);
  }

  #remove(entry: Entry): void {
    const i = this.#queue.indexOf(entry);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    entry.settle(false);
  }
}
