import {
  abortReason,
  systemClock,
  type Clock,
  type HostKeyChallengeSession,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceType,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import { Counter, type Registry } from "prom-client";
import type { CreateRequest, Instance, InstancePrice, InstanceSet, InstanceTags } from "./types.js";

/*
 * The wrappers the daemon stacks around a driver, innermost first: instrumented, rateLimited,
 * withDefaultTags, tagFiltered (see decorateInstanceSet). Each passes errors through unchanged,
 * so the error kinds survive, and wraps the instances it returns where it needs to see their
 * destroy and setTags calls.
 */

/** An Instance that forwards everything to another; subclasses override what they change. */
class ForwardingInstance implements Instance {
  readonly id: InstanceId;
  readonly providerType: string;
  readonly address: string;
  readonly remoteUser: string;
  readonly tags: InstanceTags;
  protected readonly inner: Instance;
  constructor(inner: Instance) {
    this.inner = inner;
    this.id = inner.id;
    this.providerType = inner.providerType;
    this.address = inner.address;
    this.remoteUser = inner.remoteUser;
    this.tags = inner.tags;
  }
  setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    return this.inner.setTags(tags, signal);
  }
  priceHistory(type: InstanceType): readonly InstancePrice[] {
    return this.inner.priceHistory(type);
  }
  destroy(signal?: AbortSignal): Promise<void> {
    return this.inner.destroy(signal);
  }
  verifyHostKey(
    hostKey: Buffer,
    session: HostKeyChallengeSession,
    signal?: AbortSignal,
  ): Promise<HostKeyVerdict> {
    return this.inner.verifyHostKey(hostKey, session, signal);
  }
  toString(): string {
    return this.id;
  }
}

/** An InstanceSet that forwards everything to another. */
class ForwardingSet implements InstanceSet {
  protected readonly inner: InstanceSet;
  constructor(inner: InstanceSet) {
    this.inner = inner;
  }
  create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    return this.inner.create(request, signal);
  }
  instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    return this.inner.instances(filter, signal);
  }
  instanceQuotaGroup(type: InstanceType): string {
    return this.inner.instanceQuotaGroup(type);
  }
  stop(): Promise<void> {
    return this.inner.stop();
  }
}

// ---- instrumentation ----

export const DRIVER_OPERATIONS_METRIC = "arvados_dispatchcloud_driver_operations";
type Operation = "Create" | "List" | "Destroy" | "SetTags";
const OPERATIONS: readonly Operation[] = ["Create", "List", "Destroy", "SetTags"];

async function counted<T>(
  counter: Counter<"operation" | "error">,
  operation: Operation,
  call: () => Promise<T>,
): Promise<T> {
  try {
    const out = await call();
    counter.inc({ operation, error: "0" });
    return out;
  } catch (err) {
    counter.inc({ operation, error: "1" });
    throw err;
  }
}

class InstrumentedInstance extends ForwardingInstance {
  readonly #counter: Counter<"operation" | "error">;
  constructor(inner: Instance, counter: Counter<"operation" | "error">) {
    super(inner);
    this.#counter = counter;
  }
  override setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    return counted(this.#counter, "SetTags", () => this.inner.setTags(tags, signal));
  }
  override destroy(signal?: AbortSignal): Promise<void> {
    return counted(this.#counter, "Destroy", () => this.inner.destroy(signal));
  }
}

class InstrumentedSet extends ForwardingSet {
  readonly #counter: Counter<"operation" | "error">;
  constructor(inner: InstanceSet, counter: Counter<"operation" | "error">) {
    super(inner);
    this.#counter = counter;
  }
  override async create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    const inst = await counted(this.#counter, "Create", () => this.inner.create(request, signal));
    return new InstrumentedInstance(inst, this.#counter);
  }
  override async instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    const list = await counted(this.#counter, "List", () => this.inner.instances(filter, signal));
    return list.map((i) => new InstrumentedInstance(i, this.#counter));
  }
}

/**
 * Count every cloud call in `arvados_dispatchcloud_driver_operations{operation,error}`
 * (operation Create/List/Destroy/SetTags, error "0"/"1"; all eight series start at 0). With a
 * null registry (cloudtest) the set is returned as is. Registering twice on one registry reuses
 * the counter.
 */
export function instrumented(set: InstanceSet, registry: Registry | null): InstanceSet {
  if (registry === null) return set;
  const existing = registry.getSingleMetric(DRIVER_OPERATIONS_METRIC);
  const counter =
    (existing as Counter<"operation" | "error"> | undefined) ??
    new Counter({
      name: DRIVER_OPERATIONS_METRIC,
      help: "Number of instance-create/list/destroy/settags operations performed",
      labelNames: ["operation", "error"] as const,
      registers: [registry],
    });
  for (const operation of OPERATIONS)
    for (const error of ["0", "1"]) counter.inc({ operation, error }, 0);
  return new InstrumentedSet(set, counter);
}

// ---- rate limiting ----

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * One budget of calls: consecutive grants are at least `periodMs` apart by the clock, so in any
 * sliding window of 1 s (any [t, t + 1000)) at most 1000 / `periodMs` calls are granted: N + 1
 * grants span at least N * periodMs = 1000 ms. A call after a quiet spell goes at once (like a
 * ticker holding one pending tick); others queue in order. A waiter whose signal aborts leaves
 * the queue without using a slot.
 *
 * `periodMs` is kept exact (333.33… at 3/s, never rounded down), and after every sleep the clock
 * is read again: timers may fire early by up to a millisecond as `Date.now()` sees it, so a
 * sleep that ended early is followed by another for the remainder.
 */
class Pacer {
  #next = Number.NEGATIVE_INFINITY;
  #queue: Waiter[] = [];
  #pumping = false;
  constructor(
    private readonly periodMs: number,
    private readonly clock: Clock,
  ) {}

  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const now = this.clock.now();
    if (this.#queue.length === 0 && now >= this.#next) {
      this.#next = now + this.periodMs;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#queue = this.#queue.filter((w) => w !== waiter);
        reject(abortReason(signal!));
      };
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(waiter);
      if (!this.#pumping) void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const now = this.clock.now();
        if (now < this.#next) {
          // Loop rather than trust the timer: it may have fired before `#next` really came.
          await this.clock.sleep(this.#next - now);
          continue;
        }
        const w = this.#queue.shift();
        if (w === undefined) break;
        this.#next = now + this.periodMs;
        w.resolve();
      }
    } finally {
      this.#pumping = false;
    }
  }
}

class RateLimitedInstance extends ForwardingInstance {
  readonly #pacer: Pacer;
  constructor(inner: Instance, pacer: Pacer) {
    super(inner);
    this.#pacer = pacer;
  }
  override async setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    await this.#pacer.take(signal);
    return this.inner.setTags(tags, signal);
  }
  override async destroy(signal?: AbortSignal): Promise<void> {
    await this.#pacer.take(signal);
    return this.inner.destroy(signal);
  }
}

class RateLimitedSet extends ForwardingSet {
  readonly #pacer: Pacer;
  constructor(inner: InstanceSet, pacer: Pacer) {
    super(inner);
    this.#pacer = pacer;
  }
  override async create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    await this.#pacer.take(signal);
    return new RateLimitedInstance(await this.inner.create(request, signal), this.#pacer);
  }
  override async instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    await this.#pacer.take(signal);
    return (await this.inner.instances(filter, signal)).map(
      (i) => new RateLimitedInstance(i, this.#pacer),
    );
  }
}

/**
 * At most `opsPerSecond` cloud calls per second (`MaxCloudOpsPerSecond`), one budget shared by
 * create, list, and every instance's destroy and setTags. 0 (or less) means no limit. Waiting
 * calls honour their AbortSignal.
 */
export function rateLimited(
  set: InstanceSet,
  opsPerSecond: number,
  clock: Clock = systemClock,
): InstanceSet {
  if (!(opsPerSecond > 0)) return set;
  return new RateLimitedSet(set, new Pacer(1000 / opsPerSecond, clock));
}

// ---- default tags ----

class DefaultTagsSet extends ForwardingSet {
  readonly #tags: InstanceTags;
  constructor(inner: InstanceSet, tags: InstanceTags) {
    super(inner);
    this.#tags = { ...tags };
  }
  override create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    return this.inner.create({ ...request, tags: { ...this.#tags, ...request.tags } }, signal);
  }
}

/** Add `CloudVMs.ResourceTags` to every create; the caller's own tags win on the same key. */
export function withDefaultTags(set: InstanceSet, resourceTags: InstanceTags): InstanceSet {
  if (Object.keys(resourceTags).length === 0) return set;
  return new DefaultTagsSet(set, resourceTags);
}

// ---- tag filter ----

/** Does `tags` carry every key of `filter` with exactly its value? */
export function tagsMatch(tags: InstanceTags, filter: InstanceTags): boolean {
  return Object.entries(filter).every(([k, v]) => Object.hasOwn(tags, k) && tags[k] === v);
}

class TagFilteredSet extends ForwardingSet {
  readonly #logger: Logger;
  constructor(inner: InstanceSet, logger: Logger) {
    super(inner);
    this.#logger = logger;
  }
  override async instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    const all = await this.inner.instances(filter, signal);
    const kept = all.filter((i) => tagsMatch(i.tags, filter));
    this.#logger.debug(
      { returning: kept.length, skipped: all.length - kept.length },
      "filtered instance list",
    );
    return kept;
  }
}

/**
 * Drop listed instances that lack any filter tag or value, for drivers (loopback, Azure) that
 * ignore the filter.
 */
export function tagFiltered(set: InstanceSet, logger: Logger): InstanceSet {
  return new TagFilteredSet(set, logger);
}

export interface DecorateOptions {
  /** Null: register no metrics. */
  readonly registry: Registry | null;
  /** `Containers.CloudVMs.MaxCloudOpsPerSecond`; 0 = unlimited. */
  readonly maxCloudOpsPerSecond: number;
  /** `Containers.CloudVMs.ResourceTags`. */
  readonly resourceTags: InstanceTags;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** The daemon's stack, innermost first: instrumented, rateLimited, withDefaultTags, tagFiltered. */
export function decorateInstanceSet(set: InstanceSet, options: DecorateOptions): InstanceSet {
  let s = instrumented(set, options.registry);
  s = rateLimited(s, options.maxCloudOpsPerSecond, options.clock ?? systemClock);
  s = withDefaultTags(s, options.resourceTags);
  return tagFiltered(s, options.logger);
}
