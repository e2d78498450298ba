import type { ArvadosClient, Filter } from "@dispatch-cloud/arvados-client";
import {
  isForgettable,
  type Container,
  type ContainerUuid,
  type InstanceType,
  type Logger,
  type QueueEntry,
  type QueueOpResult,
  type QueueSnapshot,
} from "@dispatch-cloud/arvados-types";
import { Gauge, type Registry } from "prom-client";
import { ContainerQueueError } from "./errors.js";
import { chooseInstanceTypes, sortTypes } from "./select.js";
import { POLLED_FIELDS, type PolledContainer, type SelectionConfig } from "./types.js";

/** The client calls the queue makes. */
export type QueueClient = Pick<ArvadosClient, "containers" | "apiClientAuthorizations">;

export interface ContainerQueueOptions {
  readonly client: QueueClient;
  readonly logger: Logger;
  readonly selection: SelectionConfig;
  /** Registry for `arvados_dispatchcloud_queue_entries`; none ⇒ not exported. */
  readonly registry?: Registry;
  /** ms since the epoch; injectable for tests. */
  readonly now?: () => number;
}

const pageSize = 1000;
/** Fetch more "available" pages only until this many non-supervisor containers are known. */
const queuedContainersTarget = 100;
const missingBatch = 20;
/** Missing batches fetched at once; Arvados fetches them one after another. */
const missingConcurrency = 4;
/** New containers whose mounts one list call fetches (a few KB of UUIDs: sent as POST). */
const mountsBatch = 100;
/** Mounts lists in flight at once; the client's limiter starts at 8, leaving room for locks. */
const mountsConcurrency = 4;

/**
 * The dispatcher's cached view of the controller's containers. Reads never do I/O; update,
 * lock, unlock and cancel call the controller.
 */
export class ContainerQueue {
  private readonly client: QueueClient;
  private readonly logger: Logger;
  private readonly cfg: SelectionConfig;
  private readonly sortedTypes: readonly InstanceType[];
  private readonly now: () => number;
  private readonly gauge: Gauge;
  private readonly seenLabels = new Set<string>();

  private cache = new Map<ContainerUuid, QueueEntry<PolledContainer>>();
  private threshold = new Date(0);
  private ownUuid: string | undefined;
  /** Set while a poll is in flight: UUIDs changed locally since it started. */
  private dontUpdate: Set<ContainerUuid> | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly inflight = new Set<Promise<void>>();

  constructor(opts: ContainerQueueOptions) {
    this.client = opts.client;
    this.logger = opts.logger;
    this.cfg = opts.selection;
    this.sortedTypes = sortTypes(opts.selection.instanceTypes);
    this.now = opts.now ?? Date.now;
    this.gauge = new Gauge({
      name: "arvados_dispatchcloud_queue_entries",
      help: "Number of active container entries in the controller database.",
      labelNames: ["state", "instance_type"],
      registers: opts.registry === undefined ? [] : [opts.registry],
    });
  }

  entries(): QueueSnapshot<PolledContainer> {
    return { entries: new Map(this.cache), threshold: this.threshold };
  }

  get(uuid: ContainerUuid): PolledContainer | undefined {
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

  /** Resolves once every background cancel-as-unsatisfiable has finished. */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all(this.inflight);
  }

  private notify(): void {
    this.updateMetric();
    for (const l of Array.from(this.listeners)) l();
  }

  private updateMetric(): void {
    const counts = new Map<string, number>();
    for (const ent of this.cache.values()) {
      // A Running entry may have no eligible type left (Arvados crashes here).
      const key = `${ent.container.state}\u0000${ent.instanceTypes[0]?.Name ?? ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const key of this.seenLabels) if (!counts.has(key)) counts.set(key, 0);
    for (const [key, n] of counts) {
      this.seenLabels.add(key);
      const [state = "", type = ""] = key.split("\u0000");
      this.gauge.set({ state, instance_type: type }, n);
    }
  }

  // ---- polling -----------------------------------------------------------------------------

  /** Poll the controller and apply the result (§2.3–§2.4). */
  async update(signal?: AbortSignal): Promise<QueueOpResult> {
    const started = this.now();
    this.dontUpdate = new Set();
    try {
      const next = await this.poll(signal);
      await this.apply(next, started, signal);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: toError(err) };
    } finally {
      this.dontUpdate = undefined;
    }
  }

  private async poll(signal?: AbortSignal): Promise<Map<ContainerUuid, PolledContainer>> {
    const opts = signal === undefined ? {} : { signal };
    if (this.ownUuid === undefined) {
      this.ownUuid = (await this.client.apiClientAuthorizations.current(opts)).uuid;
    }
    const next = new Map<ContainerUuid, PolledContainer>();
    const put = (items: readonly PolledContainer[]) => {
      for (const c of items) next.set(c.uuid, c);
    };

    // Mine: Locked/Running by us, keyset-paged by UUID.
    put(await this.keysetPages([["locked_by_uuid", "=", this.ownUuid]], pageSize, signal));

    // Available: by priority, until enough non-supervisor containers are known.
    let offset = 0;
    let nonSupervisors = 0;
    for (;;) {
      const page = await this.client.containers.list(
        {
          select: POLLED_FIELDS,
          count: "none",
          order: "priority desc",
          limit: pageSize,
          filters: [
            ["state", "=", "Queued"],
            ["priority", ">", "0"],
          ],
          ...(offset > 0 ? { offset } : {}),
        },
        opts,
      );
      if (page.items.length === 0) break;
      put(page.items);
      offset += page.items.length;
      for (const c of page.items) if (!c.scheduling_parameters?.supervisor) nonSupervisors++;
      if (nonSupervisors >= queuedContainersTarget) break;
    }

    // Missing: cached, unfinished, and in neither list — fetch by UUID to learn why.
    const missing = new Set<ContainerUuid>();
    for (const [uuid, ent] of this.cache) {
      const st = ent.container.state;
      if (!next.has(uuid) && st !== "Cancelled" && st !== "Complete") missing.add(uuid);
    }
    // Sorted batches: deterministic where Arvados takes an arbitrary 20. Each round fetches its
    // batches a few at a time (Arvados: one by one); UUIDs a batch did not return stay missing
    // for the next round, and every batch removes at least one UUID, so the rounds end.
    while (missing.size > 0) {
      const batches = chunk([...missing].sort(), missingBatch);
      await forEachLimit(batches, missingConcurrency, signal, async (batch, sig) => {
        const found = await this.keysetPages([["uuid", "in", batch]], undefined, sig, batch);
        if (found.length === 0) {
          for (const uuid of batch) {
            this.logger.warn(
              { ContainerUUID: uuid },
              "container not found by controller (deleted?)",
            );
            missing.delete(uuid);
            this.cache.delete(uuid);
          }
          return;
        }
        const asked = new Set(batch);
        for (const c of found) {
          // Checked against this batch, not all missing UUIDs: batches run side by side.
          if (!asked.has(c.uuid) || !missing.has(c.uuid)) {
            throw new ContainerQueueError(
              "inconsistent-response",
              "BUG? server response did not match requested filters, erroring out rather than risk deadlock",
            );
          }
          missing.delete(c.uuid);
          next.set(c.uuid, c);
        }
      });
    }
    return next;
  }

  /**
   * Keyset pages by UUID until an empty page, or, when `only` lists every UUID the filters
   * can match, until all of them came back (Arvados always asks for the empty page too).
   */
  private async keysetPages(
    filters: Filter[],
    limit: number | undefined,
    signal?: AbortSignal,
    only?: readonly ContainerUuid[],
  ): Promise<PolledContainer[]> {
    const out: PolledContainer[] = [];
    const pending = only === undefined ? undefined : new Set(only);
    let after: string | undefined;
    for (;;) {
      const page = await this.client.containers.list(
        {
          select: POLLED_FIELDS,
          count: "none",
          order: "uuid",
          ...(limit === undefined ? {} : { limit }),
          filters: after === undefined ? filters : [...filters, ["uuid", ">", after]],
        },
        signal === undefined ? {} : { signal },
      );
      if (page.items.length === 0) return out;
      out.push(...page.items);
      for (const c of page.items) pending?.delete(c.uuid);
      if (pending?.size === 0) return out;
      after = page.items[page.items.length - 1]!.uuid;
    }
  }

  private async apply(
    next: Map<ContainerUuid, PolledContainer>,
    started: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const skip = this.dontUpdate ?? new Set<ContainerUuid>();
    const adds: PolledContainer[] = [];
    for (const [uuid, ctr] of next) {
      if (skip.has(uuid)) continue;
      const cur = this.cache.get(uuid);
      if (cur === undefined) adds.push(ctr);
      else this.cache.set(uuid, { ...cur, container: ctr });
    }
    for (const [uuid, ent] of this.cache) {
      if (skip.has(uuid) || next.has(uuid)) continue;
      this.logger.info(
        { ContainerUUID: uuid, State: ent.container.state },
        "dropping container from queue",
      );
      this.cache.delete(uuid);
    }
    // Unlike Arvados (which adds new containers first, one GET each under its cache lock), what
    // is known is published now, so finished containers are seen without waiting for mounts.
    // The threshold holds: every cached entry is this poll's data or newer.
    this.threshold = new Date(started);
    this.notify();
    if (adds.length === 0) return;

    // Unlike Arvados, mounts come in bulk (one list per 100 new containers, a few at a time):
    // 1,000 serial GETs made a poll take ~20 s, and the poll loop then sleeps as long again.
    await forEachLimit(chunk(adds, mountsBatch), mountsConcurrency, signal, async (batch, sig) => {
      const mounts = await this.fetchMounts(batch, sig);
      let added = 0;
      for (const ctr of batch) if (this.addOne(ctr, mounts.get(ctr.uuid), skip)) added++;
      if (added > 0) this.notify();
    });
  }

  /**
   * The mounts of `batch`, by UUID: the record's mounts, or why they could not be had. Only an
   * abort throws; any other failure is the answer for every container of the batch.
   */
  private async fetchMounts(
    batch: readonly PolledContainer[],
    signal: AbortSignal,
  ): Promise<Map<ContainerUuid, { mounts: unknown } | { error: Error }>> {
    const out = new Map<ContainerUuid, { mounts: unknown } | { error: Error }>();
    const uuids = batch.map((c) => c.uuid);
    const pending = new Set(uuids);
    let after: string | undefined;
    try {
      // Keyset pages: a controller may cut a page short (e.g. MaxIndexDatabaseRead).
      while (pending.size > 0) {
        const filters: Filter[] = [["uuid", "in", uuids]];
        if (after !== undefined) filters.push(["uuid", ">", after]);
        const page = await this.client.containers.list(
          {
            select: ["uuid", "mounts"],
            count: "none",
            order: "uuid",
            limit: uuids.length,
            filters,
          },
          { signal },
        );
        if (page.items.length === 0) break;
        for (const c of page.items) {
          if (!pending.delete(c.uuid)) continue;
          out.set(c.uuid, { mounts: c.mounts });
        }
        after = page.items[page.items.length - 1]!.uuid;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const error = toError(err);
      for (const uuid of pending) out.set(uuid, { error });
      return out;
    }
    // Gone between the poll and this fetch (Arvados's per-container GET would get a 404).
    const gone = new Error("container not returned by the controller (deleted?)");
    for (const uuid of pending) out.set(uuid, { error: gone });
    return out;
  }

  /** Adds one new container (§2.5); true if it was added. */
  private addOne(
    ctr: PolledContainer,
    fetched: { mounts: unknown } | { error: Error } | undefined,
    skip: ReadonlySet<ContainerUuid>,
  ): boolean {
    const log = this.logger.child({ ContainerUUID: ctr.uuid });
    let mounts: Container["mounts"];
    try {
      if (fetched === undefined || "error" in fetched) {
        throw fetched?.error ?? new Error("mounts were not fetched");
      }
      checkMounts(fetched.mounts);
      mounts = fetched.mounts as Container["mounts"];
    } catch (err) {
      const e = toError(err);
      log.warn({ error: e.message }, "error getting mounts");
      if (e instanceof ContainerQueueError && e.kind === "bad-mounts") {
        this.track(
          this.cancelUnsatisfiable(ctr, `error getting mounts from container record: ${e.message}`),
        );
      }
      return false;
    }
    const sel = chooseInstanceTypes({ ...ctr, mounts }, this.cfg, this.sortedTypes);
    if (!sel.ok && (ctr.state === "Queued" || ctr.state === "Locked")) {
      log.warn({ error: sel.error.message }, "cancel container with no suitable instance type");
      this.track(this.cancelUnsatisfiable(ctr, sel.error.message));
      return false;
    }
    // While mounts were fetched, a lock/unlock/cancel may have made the poll's record stale
    // (out-of-order protection, §2.4): leave it to the next poll. Likewise if it got cached.
    if (skip.has(ctr.uuid) || this.cache.has(ctr.uuid)) return false;
    const types = sel.ok ? sel.types : [];
    this.cache.set(ctr.uuid, {
      container: ctr,
      instanceTypes: types,
      instanceResources: sel.resources,
      firstSeenAt: new Date(this.now()),
    });
    log.info(
      {
        State: ctr.state,
        Priority: ctr.priority,
        InstanceTypes: types.map((t) => t.Name).join(", "),
      },
      "adding container to queue",
    );
    return true;
  }

  private track(p: Promise<void>): void {
    const q = p.catch((err: unknown) =>
      this.logger.error({ error: toError(err).message }, "container queue background task failed"),
    );
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  /** Tell the user why their container cannot run, and cancel it (§2.5). */
  private async cancelUnsatisfiable(ctr: PolledContainer, message: string): Promise<void> {
    const log = this.logger.child({ ContainerUUID: ctr.uuid });
    if (ctr.state === "Queued") {
      // runtime_status cannot be set while Queued.
      try {
        await this.client.containers.lock(ctr.uuid);
      } catch (err) {
        log.warn({ error: toError(err).message }, "lock failed");
        return;
      }
    }
    try {
      await this.client.containers.update(
        ctr.uuid,
        { runtime_status: { error: message } },
        { select: ["uuid"] },
      );
      await this.client.containers.update(ctr.uuid, { state: "Cancelled" }, { select: ["uuid"] });
    } catch (err) {
      try {
        const now = await this.client.containers.get(ctr.uuid, { select: ["state"] });
        if (now.state === "Cancelled") return;
      } catch {
        // Report the original failure below.
      }
      log.warn(
        { error: toError(err).message },
        "error while trying to cancel unsatisfiable container",
      );
    }
  }

  // ---- lock / unlock / cancel -----------------------------------------------------------

  async lock(uuid: ContainerUuid, signal?: AbortSignal): Promise<QueueOpResult> {
    return this.change(uuid, () =>
      this.client.containers.lock(uuid, signal === undefined ? {} : { signal }),
    );
  }

  async unlock(uuid: ContainerUuid, signal?: AbortSignal): Promise<QueueOpResult> {
    return this.change(uuid, () =>
      this.client.containers.unlock(uuid, signal === undefined ? {} : { signal }),
    );
  }

  async cancel(uuid: ContainerUuid, signal?: AbortSignal): Promise<QueueOpResult> {
    return this.change(uuid, () =>
      this.client.containers.update(
        uuid,
        { state: "Cancelled" },
        { select: ["uuid", "state", "priority", "locked_by_uuid"] },
        signal === undefined ? {} : { signal },
      ),
    );
  }

  private async change(
    uuid: ContainerUuid,
    call: () => Promise<Pick<Container, "state" | "priority" | "locked_by_uuid">>,
  ): Promise<QueueOpResult> {
    let resp: Pick<Container, "state" | "priority" | "locked_by_uuid">;
    try {
      resp = await call();
    } catch (err) {
      return { ok: false, error: toError(err) };
    }
    // A poll in flight may carry older data for this container: do not let it win.
    this.dontUpdate?.add(uuid);
    const cur = this.cache.get(uuid);
    if (cur !== undefined) {
      this.cache.set(uuid, {
        ...cur,
        container: {
          ...cur.container,
          state: resp.state,
          priority: resp.priority,
          locked_by_uuid: resp.locked_by_uuid,
        },
      });
      this.notify();
    }
    return { ok: true };
  }
}

/** Our equivalent of Go's strict decoding of `mounts`: same message prefix for users. */
function checkMounts(mounts: unknown): void {
  if (mounts === null || mounts === undefined) return;
  const bad = (what: string) => {
    throw new ContainerQueueError("bad-mounts", `json: cannot unmarshal ${what}`);
  };
  if (typeof mounts !== "object" || Array.isArray(mounts)) {
    bad(
      `${Array.isArray(mounts) ? "array" : typeof mounts} into Go value of type map[string]arvados.Mount`,
    );
  }
  for (const [path, m] of Object.entries(mounts as Record<string, unknown>)) {
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      bad(
        `${Array.isArray(m) ? "array" : typeof m} into Go value of type arvados.Mount (mount ${path})`,
      );
    }
    const mm = m as Record<string, unknown>;
    if (mm.kind !== undefined && typeof mm.kind !== "string") {
      bad(`${typeof mm.kind} into Go struct field Mount.kind of type string (mount ${path})`);
    }
    if (mm.capacity !== undefined && typeof mm.capacity !== "number") {
      bad(
        `${typeof mm.capacity} into Go struct field Mount.capacity of type int64 (mount ${path})`,
      );
    }
  }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Runs `fn` over `items`, at most `limit` at a time, in order of start. The first failure
 * aborts the others (through the signal they get) and is rethrown once all have stopped, so
 * nothing keeps running behind the caller's back.
 */
async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const ctl = new AbortController();
  const onAbort = (): void => ctl.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  let nextIndex = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && nextIndex < items.length) {
      const item = items[nextIndex++]!;
      try {
        await fn(item, ctl.signal);
      } catch (error) {
        if (failure === undefined) {
          failure = { error };
          ctl.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (failure !== undefined) throw failure.error;
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
