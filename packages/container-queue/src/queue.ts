import type {
  ArvadosClient,
  Container,
  ContainerUuid,
  Filter,
} from "@dispatch-cloud/arvados-client";
import { Gauge, type Registry } from "prom-client";
import { ContainerQueueError } from "./errors.js";
import { chooseInstanceTypes, sortTypes } from "./select.js";
import type {
  InstanceType,
  QueueEntry,
  QueueSnapshot,
  QueuedContainer,
  SelectionConfig,
} from "./types.js";

/** The client calls the queue makes. */
export type QueueClient = Pick<ArvadosClient, "containers" | "apiClientAuthorizations">;

export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface ContainerQueueOptions {
  readonly client: QueueClient;
  readonly logger: Logger;
  readonly selection: SelectionConfig;
  /** Registry for `arvados_dispatchcloud_queue_entries`; none ⇒ not exported. */
  readonly registry?: Registry;
  /** ms since the epoch; injectable for tests. */
  readonly now?: () => number;
}

export type QueueOpResult = { readonly ok: true } | { readonly ok: false; readonly error: Error };

const pollSelect = [
  "uuid",
  "state",
  "priority",
  "runtime_constraints",
  "container_image",
  "scheduling_parameters",
  "created_at",
] as const;
const pageSize = 1000;
/** Fetch more "available" pages only until this many non-supervisor containers are known. */
const queuedContainersTarget = 100;
const missingBatch = 20;

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

  private cache = new Map<ContainerUuid, QueueEntry>();
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

  entries(): QueueSnapshot {
    return { entries: new Map(this.cache), threshold: this.threshold };
  }

  get(uuid: ContainerUuid): QueuedContainer | undefined {
    return this.cache.get(uuid)?.container;
  }

  forget(uuid: ContainerUuid): void {
    const c = this.cache.get(uuid)?.container;
    if (c === undefined) return;
    if (
      c.state === "Complete" ||
      c.state === "Cancelled" ||
      (c.state === "Queued" && c.priority === 0)
    ) {
      this.cache.delete(uuid);
    }
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
      await this.apply(next, started);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: toError(err) };
    } finally {
      this.dontUpdate = undefined;
    }
  }

  private async poll(signal?: AbortSignal): Promise<Map<ContainerUuid, QueuedContainer>> {
    const opts = signal === undefined ? {} : { signal };
    if (this.ownUuid === undefined) {
      this.ownUuid = (await this.client.apiClientAuthorizations.current(opts)).uuid;
    }
    const next = new Map<ContainerUuid, QueuedContainer>();
    const put = (items: readonly QueuedContainer[]) => {
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
          select: pollSelect,
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
    // Sorted batches: deterministic where Arvados takes an arbitrary 20.
    while (missing.size > 0) {
      const batch = [...missing].sort().slice(0, missingBatch);
      const found = await this.keysetPages([["uuid", "in", batch]], undefined, signal);
      if (found.length === 0) {
        for (const uuid of batch) {
          this.logger.warn({ ContainerUUID: uuid }, "container not found by controller (deleted?)");
          missing.delete(uuid);
          this.cache.delete(uuid);
        }
        continue;
      }
      for (const c of found) {
        if (!missing.has(c.uuid)) {
          throw new ContainerQueueError(
            "inconsistent-response",
            "BUG? server response did not match requested filters, erroring out rather than risk deadlock",
          );
        }
        missing.delete(c.uuid);
        next.set(c.uuid, c);
      }
    }
    return next;
  }

  private async keysetPages(
    filters: Filter[],
    limit: number | undefined,
    signal?: AbortSignal,
  ): Promise<QueuedContainer[]> {
    const out: QueuedContainer[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.client.containers.list(
        {
          select: pollSelect,
          count: "none",
          order: "uuid",
          ...(limit === undefined ? {} : { limit }),
          filters: after === undefined ? filters : [...filters, ["uuid", ">", after]],
        },
        signal === undefined ? {} : { signal },
      );
      if (page.items.length === 0) return out;
      out.push(...page.items);
      after = page.items[page.items.length - 1]!.uuid;
    }
  }

  private async apply(next: Map<ContainerUuid, QueuedContainer>, started: number): Promise<void> {
    const skip = this.dontUpdate ?? new Set<ContainerUuid>();
    const adds: QueuedContainer[] = [];
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
    // Arvados fetches mounts while holding its cache lock; we add after, re-checking the cache.
    for (const ctr of adds) await this.addOne(ctr);
    this.threshold = new Date(started);
    this.notify();
  }

  private async addOne(ctr: QueuedContainer): Promise<void> {
    const log = this.logger.child({ ContainerUUID: ctr.uuid });
    let mounts: Container["mounts"];
    try {
      mounts = (await this.client.containers.get(ctr.uuid, { select: ["mounts"] })).mounts;
      checkMounts(mounts);
    } catch (err) {
      const e = toError(err);
      log.warn({ error: e.message }, "error getting mounts");
      if (e instanceof ContainerQueueError && e.kind === "bad-mounts") {
        this.track(
          this.cancelUnsatisfiable(ctr, `error getting mounts from container record: ${e.message}`),
        );
      }
      return;
    }
    const sel = chooseInstanceTypes({ ...ctr, mounts }, this.cfg, this.sortedTypes);
    if (!sel.ok && (ctr.state === "Queued" || ctr.state === "Locked")) {
      log.warn({ error: sel.error.message }, "cancel container with no suitable instance type");
      this.track(this.cancelUnsatisfiable(ctr, sel.error.message));
      return;
    }
    // The poll may have run on: only add if nothing newer replaced or dropped it meanwhile.
    if (this.cache.has(ctr.uuid)) return;
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
  }

  private track(p: Promise<void>): void {
    const q = p.catch((err: unknown) =>
      this.logger.error({ error: toError(err).message }, "container queue background task failed"),
    );
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  /** Tell the user why their container cannot run, and cancel it (§2.5). */
  private async cancelUnsatisfiable(ctr: QueuedContainer, message: string): Promise<void> {
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

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
