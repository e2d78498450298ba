// Test doubles of the scheduler's own ports, for its tests and the daemon's: a manual clock, a
// queue that is its own "database", and a pool whose workers are plain records.
import {
  abortReason,
  isForgettable,
  pendingInstanceView,
  type Clock,
  type ContainerState,
  type ContainerUuid,
  type IdleBehavior,
  type InstanceId,
  type InstanceResources,
  type InstanceType,
  type InstanceView,
  type Logger,
  type QueueEntry,
  type QueueOpResult,
  type QueueSnapshot,
  type QueuedContainer,
  type TimerHandle,
  type Timers,
  type WorkerState,
} from "@dispatch-cloud/arvados-types";
import type { ContainerQueue, WorkerPool } from "../ports.js";
import { Scheduler, type SchedulerOptions } from "../scheduler.js";

export class ManualClock implements Clock, Timers {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  constructor(start = Date.parse("2026-01-01T00:00:00Z")) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers.delete(h as number);
  }
  /** A sleep is a timer that resolves; `advance` fires it like any other. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const h = this.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        this.clearTimeout(h);
        reject(abortReason(signal!));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
  /** Number of timers armed. */
  pending(): number {
    return this.timers.size;
  }
  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}

/** A logger that keeps messages for assertions. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; msg: string; fields: Record<string, unknown> }[];
  constructor(
    private readonly base: Record<string, unknown> = {},
    lines?: { level: string; msg: string; fields: Record<string, unknown> }[],
  ) {
    this.lines = lines ?? [];
  }
  private add(level: string, fields: Record<string, unknown>, msg: string) {
    this.lines.push({ level, msg, fields: { ...this.base, ...fields } });
  }
  debug(f: Record<string, unknown>, m: string) {
    this.add("debug", f, m);
  }
  info(f: Record<string, unknown>, m: string) {
    this.add("info", f, m);
  }
  warn(f: Record<string, unknown>, m: string) {
    this.add("warn", f, m);
  }
  error(f: Record<string, unknown>, m: string) {
    this.add("error", f, m);
  }
  child(f: Record<string, unknown>): Logger {
    return new RecordingLogger({ ...this.base, ...f }, this.lines);
  }
  messages(): string[] {
    return this.lines.map((l) => l.msg);
  }
}

/** Arvados's test fixture type `type<i>`. */
export function fixtureType(i: number, extra: Partial<InstanceType> = {}): InstanceType {
  return {
    Name: `type${i}`,
    ProviderType: `providertype${i}`,
    VCPUs: i,
    RAM: Math.floor((i * 2 ** 30 * 11) / 10),
    IncludedScratch: i * 2 ** 30,
    AddedScratch: 0,
    Scratch: i * 2 ** 30,
    Price: i * 0.123,
    Preemptible: false,
    GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
    ...extra,
  };
}

/** `zzzzz-dz642-` and i padded to 15 digits. */
export function fixtureUuid(i: number): ContainerUuid {
  return `zzzzz-dz642-${String(i).padStart(15, "0")}` as ContainerUuid;
}

/** A Locked, priority-1 queue entry for `fixtureUuid(n)` with the given types and needs. */
export function fixtureEntry(
  n: number,
  instanceTypes: readonly InstanceType[],
  instanceResources: InstanceResources,
): QueueEntry {
  return {
    container: {
      uuid: fixtureUuid(n),
      state: "Locked",
      priority: 1,
      scheduling_parameters: {},
      created_at: "2026-01-01T00:00:00Z",
    },
    instanceTypes,
    instanceResources,
    firstSeenAt: new Date(0),
  };
}

export interface FakeContainer extends QueuedContainer {
  state: ContainerState;
  priority: number;
  /** {vcpus, ram} as in runtime_constraints; RAM in bytes. */
  runtime_constraints: { vcpus: number; ram: number };
  lock_count?: number;
}

export interface StateChange {
  readonly uuid: ContainerUuid;
  readonly from: ContainerState;
  readonly to: ContainerState;
}

/**
 * A queue whose `db` array is the controller's table. Resources: vcpus, ram/0.95, nothing
 * else; types: those that fit (preemptible flag matching), cheapest first, cut at the cheapest
 * price × maxPriceFactor.
 */
export class FakeQueue implements ContainerQueue<FakeContainer> {
  readonly db: FakeContainer[] = [];
  readonly changes: StateChange[] = [];
  private cache = new Map<ContainerUuid, QueueEntry<FakeContainer>>();
  private threshold = new Date(0);
  private readonly listeners = new Set<() => void>();
  private held: Promise<void> | undefined;
  private releaseHeld: (() => void) | undefined;

  constructor(
    private readonly types: readonly InstanceType[],
    private readonly clock: Pick<Clock, "now">,
    private readonly maxPriceFactor = 1,
  ) {}

  add(
    c: Omit<FakeContainer, "scheduling_parameters" | "created_at"> & Partial<FakeContainer>,
  ): void {
    this.db.push({
      scheduling_parameters: {},
      created_at: new Date(this.clock.now()).toISOString(),
      ...c,
    });
  }

  needs(c: FakeContainer): InstanceResources {
    return {
      VCPUs: c.runtime_constraints.vcpus,
      RAM: Math.floor((c.runtime_constraints.ram * 100) / 95),
      Scratch: 0,
      GPUs: 0,
      GPUVRAM: 0,
    };
  }

  /** Eligible types as §2.9 picks them; a type must match the container's preemptible flag. */
  chooseTypes(need: InstanceResources, preemptible = false): InstanceType[] {
    const fit = this.types
      .filter(
        (t) =>
          t.VCPUs >= need.VCPUs &&
          t.RAM >= need.RAM &&
          t.Scratch >= need.Scratch &&
          t.Preemptible === preemptible,
      )
      .sort((a, b) => a.Price - b.Price || b.RAM - a.RAM || (a.Name < b.Name ? -1 : 1));
    if (fit.length === 0) return [];
    const max = fit[0]!.Price * Math.max(1, this.maxPriceFactor);
    return fit.filter((t, i) => i === 0 || t.Price <= max);
  }

  async update(): Promise<QueueOpResult> {
    const next = new Map<ContainerUuid, QueueEntry<FakeContainer>>();
    for (const c of this.db) {
      const old = this.cache.get(c.uuid);
      if ((c.state === "Complete" || c.state === "Cancelled") && old === undefined) continue;
      const need = old?.instanceResources ?? this.needs(c);
      next.set(c.uuid, {
        container: { ...c },
        instanceResources: need,
        instanceTypes:
          old?.instanceTypes ??
          this.chooseTypes(need, c.scheduling_parameters.preemptible === true),
        firstSeenAt: old?.firstSeenAt ?? new Date(this.clock.now()),
      });
    }
    this.cache = next;
    this.threshold = new Date(this.clock.now());
    this.notify();
    return { ok: true };
  }

  entries(): QueueSnapshot<FakeContainer> {
    return { entries: new Map(this.cache), threshold: this.threshold };
  }
  get(uuid: ContainerUuid): FakeContainer | undefined {
    return this.cache.get(uuid)?.container;
  }
  forget(uuid: ContainerUuid): void {
    const c = this.cache.get(uuid)?.container;
    if (c !== undefined && isForgettable(c)) this.cache.delete(uuid);
  }
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  private notify() {
    for (const l of Array.from(this.listeners)) l();
  }

  /** Make lock/unlock/cancel wait until release(). */
  hold(): void {
    this.held = new Promise((r) => (this.releaseHeld = r));
  }
  release(): void {
    this.releaseHeld?.();
    this.held = undefined;
  }

  lock(uuid: ContainerUuid): Promise<QueueOpResult> {
    return this.change(uuid, "Queued", "Locked");
  }
  unlock(uuid: ContainerUuid): Promise<QueueOpResult> {
    return this.change(uuid, "Locked", "Queued");
  }
  cancel(uuid: ContainerUuid): Promise<QueueOpResult> {
    const cur = this.get(uuid)?.state ?? "Queued";
    return this.change(uuid, cur, "Cancelled");
  }

  private async change(
    uuid: ContainerUuid,
    from: ContainerState,
    to: ContainerState,
  ): Promise<QueueOpResult> {
    if (this.held) await this.held;
    const cur = this.cache.get(uuid);
    this.changes.push({ uuid, from, to });
    if (cur === undefined || cur.container.state !== from) {
      return {
        ok: false,
        error: new Error(`changeState failed: state="${cur?.container.state ?? ""}"`),
      };
    }
    const row = this.db.find((c) => c.uuid === uuid);
    if (row) {
      row.state = to;
      if (to === "Locked") row.lock_count = (row.lock_count ?? 0) + 1;
    }
    this.cache.set(uuid, { ...cur, container: { ...cur.container, state: to } });
    this.notify();
    return { ok: true };
  }

  /** Simulate crunch-run (or a user) changing a container: DB and cache. */
  set(uuid: ContainerUuid, fields: Partial<FakeContainer>): void {
    const row = this.db.find((c) => c.uuid === uuid);
    if (row) Object.assign(row, fields);
    const cur = this.cache.get(uuid);
    if (cur) this.cache.set(uuid, { ...cur, container: { ...cur.container, ...fields } });
    this.notify();
  }
}

export interface StubWorker {
  id: InstanceId;
  type: InstanceType;
  state: WorkerState;
  idleBehavior: IdleBehavior;
  running: ContainerUuid[];
}

/**
 * A pool of plain records. AtQuota iff workers ≥ quota; AtCapacity(type) iff the configured
 * supply for its ProviderType is used up; Create succeeds while canCreate > 0 and adds a
 * booting worker but returns a placeholder with an empty id; Shutdown records and refuses.
 */
export class StubPool implements WorkerPool {
  readonly workers: StubWorker[] = [];
  readonly runningMap = new Map<ContainerUuid, Date | null>();
  readonly creates: InstanceType[] = [];
  readonly starts: { uuid: ContainerUuid; instance: InstanceId }[] = [];
  readonly kills: { uuid: ContainerUuid; reason: string }[] = [];
  readonly shutdowns: InstanceId[] = [];
  quota = Infinity;
  canCreate = Infinity;
  readonly capacity = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  private seq = 0;

  addWorker(
    type: InstanceType,
    state: WorkerState = "idle",
    idleBehavior: IdleBehavior = "run",
    running: ContainerUuid[] = [],
  ): StubWorker {
    const w: StubWorker = {
      id: `i-${String(++this.seq).padStart(7, "0")}` as InstanceId,
      type,
      state,
      idleBehavior,
      running: [...running],
    };
    for (const u of running) this.runningMap.set(u, null);
    this.workers.push(w);
    return w;
  }

  atQuota(): boolean {
    return this.workers.length >= this.quota;
  }
  atCapacity(type: InstanceType): boolean {
    const supply = this.capacity.get(type.ProviderType);
    if (supply === undefined) return false;
    return this.workers.filter((w) => w.type.ProviderType === type.ProviderType).length >= supply;
  }
  create(type: InstanceType): InstanceView | null {
    this.creates.push(type);
    if (this.canCreate <= 0) return null;
    this.canCreate--;
    this.addWorker(type, "booting");
    this.notify();
    return pendingInstanceView(type);
  }
  shutdown(id: InstanceId): boolean {
    this.shutdowns.push(id);
    return false;
  }
  instances(): InstanceView[] {
    // Fields the scheduler does not read (address, last busy time…) stay at a pending create's.
    return this.workers.map((w) => ({
      ...pendingInstanceView(w.type),
      instance: w.id,
      worker_state: w.state,
      idle_behavior: w.idleBehavior,
      running_container_uuids: [...w.running],
    }));
  }
  countWorkers(): Promise<Partial<Record<WorkerState, number>>> {
    const out: Partial<Record<WorkerState, number>> = {};
    for (const w of this.workers) out[w.state] = (out[w.state] ?? 0) + 1;
    return Promise.resolve(out);
  }
  running(): ReadonlyMap<ContainerUuid, Date | null> {
    return new Map(this.runningMap);
  }
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  notify(): void {
    for (const l of Array.from(this.listeners)) l();
  }
  startContainer(id: InstanceId, container: QueuedContainer): boolean {
    const w = this.workers.find((x) => x.id === id);
    if (!w || (w.state !== "idle" && w.state !== "running") || w.idleBehavior !== "run")
      return false;
    w.running.push(container.uuid);
    w.state = "running";
    this.runningMap.set(container.uuid, null);
    this.starts.push({ uuid: container.uuid, instance: id });
    return true;
  }
  killContainer(uuid: ContainerUuid, reason: string): boolean {
    this.kills.push({ uuid, reason });
    if (this.runningMap.has(uuid) && this.runningMap.get(uuid) === null) {
      this.runningMap.delete(uuid);
      for (const w of this.workers) w.running = w.running.filter((u) => u !== uuid);
      return true;
    }
    return false;
  }
  forgetContainer(uuid: ContainerUuid): void {
    if (this.runningMap.get(uuid) instanceof Date) this.runningMap.delete(uuid);
  }
  /** Mark crunch-run for `uuid` as exited at `at`. */
  exit(uuid: ContainerUuid, at: Date): void {
    this.runningMap.set(uuid, at);
    for (const w of this.workers) w.running = w.running.filter((u) => u !== uuid);
  }
}

/**
 * Seeded pseudo-random numbers for generated test worlds (mulberry32): tiny, fast, and the same
 * sequence on every run for a given seed, so a failing seed can be replayed.
 */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[Math.floor(this.next() * xs.length)];
    if (x === undefined) throw new Error("pick from an empty list");
    return x;
  }
}

/**
 * A scheduler over a FakeQueue and a StubPool on a ManualClock, logging to a RecordingLogger;
 * `maxPriceFactor` is the queue's MaximumPriceFactor, the rest are the scheduler's options.
 */
export function testScheduler(
  instanceTypes: InstanceType[],
  opts: Partial<SchedulerOptions<FakeContainer>> & { readonly maxPriceFactor?: number } = {},
) {
  const { maxPriceFactor, ...options } = opts;
  const clock = new ManualClock();
  const queue = new FakeQueue(instanceTypes, clock, maxPriceFactor);
  const pool = new StubPool();
  const logger = new RecordingLogger();
  const sched = new Scheduler<FakeContainer>({
    queue,
    pool,
    logger,
    instanceTypes,
    clock,
    ...options,
  });
  return { clock, queue, pool, logger, sched };
}
