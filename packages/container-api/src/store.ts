import { randomBytes, timingSafeEqual } from "node:crypto";
import type { ContainerState } from "@dispatch-cloud/arvados-types";
import Database from "better-sqlite3";
import { ApiError, forbidden, notFound, unprocessable } from "./errors.js";
import type { ListQuery } from "./query.js";
import {
  authSpec,
  containerRequestsSpec,
  containersSpec,
  fromRow,
  logsSpec,
  present,
  type Row,
  SCHEMA,
  type TableSpec,
  toRow,
} from "./schema.js";
import {
  checkContainerAttributes,
  checkContainerUpdate,
  normaliseRuntimeConstraints,
  normaliseSchedulingParameters,
  validateContainerRequestCreate,
  validateContainerRequestUpdate,
} from "./rules.js";

/** Who is calling: the SystemRootToken (admin) or a container's runtime token. */
export interface Actor {
  uuid: string;
  ownerUuid: string;
  isAdmin: boolean;
  /** Set for runtime tokens: the container whose auth_uuid this token is. */
  containerUuid: string | null;
}

export interface StoreOptions {
  dbPath: string;
  systemRootToken: string;
  clusterId: string;
  maxDispatchAttempts: number;
  maxRetryAttempts: number;
  maxItemsPerResponse: number;
  now: () => number;
}

export interface ListAnswer {
  kind: string;
  items: Row[];
  items_available?: number;
  offset: number;
  limit: number;
}

const LOCK_FIELDS = ["uuid", "state", "priority", "auth_uuid", "locked_by_uuid"] as const;
const ALPHANUM = "0123456789abcdefghijklmnopqrstuvwxyz";

export function randomString(n: number, alphabet = ALPHANUM): string {
  let s = "";
  for (const b of randomBytes(n)) s += alphabet[b % alphabet.length];
  return s;
}

/** A container's outcome fields before it has run: what a new container record carries. */
export const NOT_RUN_YET: Readonly<Row> = {
  exit_code: null,
  started_at: null,
  finished_at: null,
  log: null,
  output: null,
  progress: null,
  cost: 0,
  subrequests_cost: 0,
  gateway_address: null,
  interactive_session_started: false,
};

/**
 * The data and the controller's rules. Every mutation runs in one IMMEDIATE transaction, so
 * concurrent requests (or processes sharing the file) serialise and see committed state.
 */
export class Store {
  readonly db: Database.Database;
  readonly systemUserUuid: string;
  readonly systemTokenUuid: string;
  private readonly rootToken: Buffer;

  constructor(readonly opts: StoreOptions) {
    this.db = new Database(opts.dbPath);
    this.db.pragma("journal_mode = WAL");
    // FULL: a commit is on disk before we answer, so even a power loss keeps it.
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    for (const stmt of SCHEMA) this.db.exec(stmt);
    this.systemUserUuid = `${opts.clusterId}-tpzed-000000000000000`;
    this.systemTokenUuid = `${opts.clusterId}-gj3su-000000000000000`;
    this.rootToken = Buffer.from(opts.systemRootToken);
  }

  close(): void {
    this.db.close();
  }

  private nowIso(): string {
    return new Date(this.opts.now()).toISOString();
  }

  newUuid(infix: string): string {
    return `${this.opts.clusterId}-${infix}-${randomString(15)}`;
  }

  /** Runs `fn` in a write transaction; an ApiError rolls it back. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // ---- auth ----

  /** Resolves a bearer token (plain or `v2/<uuid>/<secret>`); null if unknown or expired. */
  authenticate(token: string): Actor | null {
    let secret = token;
    let wantUuid: string | null = null;
    const v2 = /^v2\/([^/]+)\/(.+)$/.exec(token);
    if (v2) {
      wantUuid = v2[1] ?? null;
      secret = v2[2] ?? "";
    }
    const given = Buffer.from(secret);
    if (given.length === this.rootToken.length && timingSafeEqual(given, this.rootToken)) {
      if (wantUuid !== null && wantUuid !== this.systemTokenUuid) return null;
      return {
        uuid: this.systemTokenUuid,
        ownerUuid: this.systemUserUuid,
        isAdmin: true,
        containerUuid: null,
      };
    }
    const row = this.db
      .prepare("SELECT * FROM api_client_authorizations WHERE api_token = ?")
      .get(secret) as Row | undefined;
    if (!row) return null;
    const rec = fromRow(authSpec, row);
    if (wantUuid !== null && wantUuid !== rec["uuid"]) return null;
    const exp = rec["expires_at"] as string | null;
    if (exp !== null && Date.parse(exp) <= this.opts.now()) return null;
    return {
      uuid: rec["uuid"] as string,
      ownerUuid: rec["owner_uuid"] as string,
      isAdmin: rec["is_admin"] === true,
      containerUuid: (rec["container_uuid"] as string | null) ?? null,
    };
  }

  currentAuthorization(actor: Actor): Row {
    if (actor.uuid === this.systemTokenUuid) {
      return {
        kind: authSpec.kind,
        uuid: this.systemTokenUuid,
        owner_uuid: this.systemUserUuid,
        scopes: ["all"],
        expires_at: null,
        created_at: null,
      };
    }
    const row = this.getRow(authSpec, actor.uuid);
    if (!row) throw notFound();
    return present(authSpec, row);
  }

  /** The runtime token secret of a container (for tests and the demo's crunch-run). */
  runtimeToken(containerUuid: string): string | null {
    const row = this.db
      .prepare(
        "SELECT a.uuid, a.api_token FROM containers c JOIN api_client_authorizations a ON a.uuid = c.auth_uuid WHERE c.uuid = ?",
      )
      .get(containerUuid) as { uuid: string; api_token: string } | undefined;
    return row ? `v2/${row.uuid}/${row.api_token}` : null;
  }

  // ---- generic ----

  getRow(spec: TableSpec, uuid: string): Row | null {
    const row = this.db.prepare(`SELECT * FROM ${spec.table} WHERE uuid = ?`).get(uuid) as
      Row | undefined;
    return row ? fromRow(spec, row) : null;
  }

  insertRow(spec: TableSpec, rec: Row): void {
    const row = toRow(spec, rec);
    const cols = Object.keys(row);
    this.db
      .prepare(
        `INSERT INTO ${spec.table} (${cols.join(", ")}) VALUES (${cols.map((c) => `@${c}`).join(", ")})`,
      )
      .run(row);
  }

  updateRow(spec: TableSpec, uuid: string, changes: Row): void {
    const full = toRow(spec, changes);
    const row: Row = {};
    for (const k of Object.keys(changes)) row[k] = full[k];
    const cols = Object.keys(row);
    if (cols.length === 0) return;
    this.db
      .prepare(
        `UPDATE ${spec.table} SET ${cols.map((c) => `${c} = @${c}`).join(", ")} WHERE uuid = @__uuid`,
      )
      .run({ ...row, __uuid: uuid });
  }

  list(
    spec: TableSpec,
    q: ListQuery,
    extraWhere: string[] = [],
    extraArgs: unknown[] = [],
  ): ListAnswer {
    const where = [...q.where, ...extraWhere];
    const args = [...q.args, ...extraArgs];
    const whereSql = where.length ? ` WHERE ${where.map((w) => `(${w})`).join(" AND ")}` : "";
    const rows = this.db
      .prepare(
        `SELECT * FROM ${spec.table}${whereSql} ORDER BY ${q.orderBy.join(", ")} LIMIT ? OFFSET ?`,
      )
      .all(...args, q.limit, q.offset) as Row[];
    const out: ListAnswer = {
      kind: `${spec.kind}List`,
      items: rows.map((r) => present(spec, fromRow(spec, r), q.select)),
      offset: q.offset,
      limit: q.limit,
    };
    if (q.count === "exact") {
      const n = this.db
        .prepare(`SELECT COUNT(*) AS n FROM ${spec.table}${whereSql}`)
        .get(...args) as {
        n: number;
      };
      out.items_available = n.n;
    }
    return out;
  }

  // ---- containers ----

  /** A container visible to `actor`, or 404. */
  private visibleContainer(actor: Actor, uuid: string): Row {
    const rec = this.getRow(containersSpec, uuid);
    if (!rec || (!actor.isAdmin && actor.containerUuid !== uuid)) throw notFound();
    return rec;
  }

  getContainer(actor: Actor, uuid: string, select?: readonly string[]): Row {
    return present(containersSpec, this.visibleContainer(actor, uuid), select);
  }

  listContainers(actor: Actor, q: ListQuery): ListAnswer {
    if (actor.isAdmin) return this.list(containersSpec, q);
    return this.list(containersSpec, q, ["uuid = ?"], [actor.containerUuid ?? ""]);
  }

  updateContainer(actor: Actor, uuid: string, attrs: Row, select?: readonly string[]): Row {
    return this.tx(() => {
      const old = this.visibleContainer(actor, uuid);
      const next = { ...old, ...checkContainerAttributes(attrs) };
      checkContainerUpdate({ old, next, actorUuid: actor.uuid, actorIsAdmin: actor.isAdmin });
      if (
        old["state"] === "Queued" &&
        next["state"] === "Locked" &&
        (old["priority"] as number) <= 0
      ) {
        throw unprocessable("cannot lock when priority<=0");
      }
      this.saveContainer(old, next, actor.uuid);
      return present(containersSpec, this.getRow(containersSpec, uuid) ?? next, select);
    });
  }

  /**
   * Writes a validated change, adding what the server itself maintains: timestamps, lock
   * release and token expiry on requeue/finish, and container request consequences.
   */
  private saveContainer(old: Row, next: Row, actorUuid: string): void {
    const now = this.nowIso();
    const from = old["state"] as ContainerState;
    const to = next["state"] as ContainerState;
    const uuid = old["uuid"] as string;
    if (from !== to) {
      if (to === "Running" && next["started_at"] == null) next["started_at"] = now;
      if ((to === "Complete" || to === "Cancelled") && next["finished_at"] == null) {
        next["finished_at"] = now;
      }
      if (to === "Locked") {
        next["lock_count"] = ((old["lock_count"] as number) ?? 0) + 1;
        next["locked_by_uuid"] = actorUuid;
        next["auth_uuid"] = this.createRuntimeToken(old);
      }
      if (to === "Queued") {
        next["runtime_status"] = {};
        next["locked_by_uuid"] = null;
        this.expireToken(old["auth_uuid"] as string | null);
        next["auth_uuid"] = null;
      }
      if (to === "Complete" || to === "Cancelled") {
        next["locked_by_uuid"] = null;
        this.expireToken(old["auth_uuid"] as string | null);
      }
    }
    next["modified_at"] = now;
    const changes: Row = {};
    for (const k of Object.keys(containersSpec.columns)) {
      if (JSON.stringify(old[k] ?? null) !== JSON.stringify(next[k] ?? null)) changes[k] = next[k];
    }
    this.updateRow(containersSpec, uuid, changes);
    if (from !== to && (to === "Complete" || to === "Cancelled")) this.containerFinished(uuid, to);
  }

  /** A token for the container's runtime user, usable only on this container. */
  private createRuntimeToken(c: Row): string {
    const authUuid = this.newUuid("gj3su");
    this.insertRow(authSpec, {
      uuid: authUuid,
      api_token: randomString(49),
      owner_uuid: c["runtime_user_uuid"],
      scopes: c["runtime_auth_scopes"] ?? ["all"],
      expires_at: null,
      created_at: this.nowIso(),
      modified_at: this.nowIso(),
      is_admin: false,
      container_uuid: c["uuid"],
    });
    return authUuid;
  }

  private expireToken(authUuid: string | null): void {
    if (!authUuid) return;
    this.updateRow(authSpec, authUuid, { expires_at: this.nowIso() });
  }

  lock(actor: Actor, uuid: string): Row {
    return this.tx(() => {
      const old = this.visibleContainer(actor, uuid);
      if (!actor.isAdmin) throw forbidden();
      if (old["state"] !== "Queued")
        throw unprocessable(`cannot lock when ${String(old["state"])}`);
      if ((old["priority"] as number) <= 0) throw unprocessable("cannot lock when priority<=0");
      this.saveContainer(old, { ...old, state: "Locked" }, actor.uuid);
      return present(containersSpec, this.getRow(containersSpec, uuid) ?? old, LOCK_FIELDS);
    });
  }

  unlock(actor: Actor, uuid: string): Row {
    return this.tx(() => {
      const old = this.visibleContainer(actor, uuid);
      if (!actor.isAdmin) throw forbidden();
      if (old["state"] !== "Locked")
        throw unprocessable(`cannot unlock when ${String(old["state"])}`);
      if (old["locked_by_uuid"] !== actor.uuid) throw forbidden("locked by a different token");
      const lockCount = (old["lock_count"] as number) ?? 0;
      const next: Row = { ...old };
      if (lockCount >= this.opts.maxDispatchAttempts) {
        next["state"] = "Cancelled";
        next["runtime_status"] = {
          ...(old["runtime_status"] as Row | null),
          error: `Failed to start container.  Cancelled after exceeding 'Containers.MaxDispatchAttempts' (lock_count=${lockCount})`,
        };
      } else {
        next["state"] = "Queued";
      }
      this.saveContainer(old, next, actor.uuid);
      return present(containersSpec, this.getRow(containersSpec, uuid) ?? next, LOCK_FIELDS);
    });
  }

  // ---- container requests ----

  createContainerRequest(actor: Actor, attrs: Row): Row {
    return this.tx(() => {
      const cr = validateContainerRequestCreate(attrs, this.opts.maxRetryAttempts);
      const now = this.nowIso();
      cr["uuid"] = this.newUuid("xvhdp");
      cr["owner_uuid"] = typeof cr["owner_uuid"] === "string" ? cr["owner_uuid"] : actor.ownerUuid;
      cr["created_at"] = now;
      cr["modified_at"] = now;
      cr["modified_by_user_uuid"] = actor.ownerUuid;
      cr["container_count"] = 0;
      cr["container_uuid"] = null;
      cr["requesting_container_uuid"] = actor.isAdmin ? null : actor.containerUuid;
      this.insertRow(containerRequestsSpec, cr);
      if (cr["state"] === "Committed") this.startContainerFor(cr);
      return present(
        containerRequestsSpec,
        this.mustGet(containerRequestsSpec, cr["uuid"] as string),
      );
    });
  }

  private mustGet(spec: TableSpec, uuid: string): Row {
    const r = this.getRow(spec, uuid);
    if (!r) throw notFound();
    return r;
  }

  private visibleRequest(actor: Actor, uuid: string): Row {
    const cr = this.getRow(containerRequestsSpec, uuid);
    if (!cr) throw notFound();
    if (!actor.isAdmin && cr["requesting_container_uuid"] !== actor.containerUuid) throw notFound();
    return cr;
  }

  getContainerRequest(actor: Actor, uuid: string, select?: readonly string[]): Row {
    return present(containerRequestsSpec, this.visibleRequest(actor, uuid), select);
  }

  listContainerRequests(actor: Actor, q: ListQuery): ListAnswer {
    if (actor.isAdmin) return this.list(containerRequestsSpec, q);
    return this.list(
      containerRequestsSpec,
      q,
      ["requesting_container_uuid = ?"],
      [actor.containerUuid ?? ""],
    );
  }

  updateContainerRequest(actor: Actor, uuid: string, attrs: Row): Row {
    return this.tx(() => {
      const old = this.visibleRequest(actor, uuid);
      const changes = validateContainerRequestUpdate(old, attrs);
      changes["modified_at"] = this.nowIso();
      this.updateRow(containerRequestsSpec, uuid, changes);
      const cr = this.mustGet(containerRequestsSpec, uuid);
      if (old["state"] === "Uncommitted" && cr["state"] === "Committed") this.startContainerFor(cr);
      else if (cr["container_uuid"]) this.updatePriority(cr["container_uuid"] as string);
      return present(containerRequestsSpec, this.mustGet(containerRequestsSpec, uuid));
    });
  }

  /** Creates the container a committed request asks for (no reuse of existing ones). */
  private startContainerFor(cr: Row): void {
    const now = this.nowIso();
    const uuid = this.newUuid("dz642");
    this.insertRow(containersSpec, {
      uuid,
      owner_uuid: this.systemUserUuid,
      created_at: now,
      modified_at: now,
      modified_by_user_uuid: this.systemUserUuid,
      state: "Queued",
      priority: 0,
      locked_by_uuid: null,
      lock_count: 0,
      auth_uuid: null,
      runtime_user_uuid: cr["modified_by_user_uuid"] ?? this.systemUserUuid,
      runtime_auth_scopes: ["all"],
      runtime_constraints: normaliseRuntimeConstraints(cr["runtime_constraints"] as Row),
      scheduling_parameters: normaliseSchedulingParameters(cr["scheduling_parameters"] as Row),
      runtime_status: {},
      container_image: cr["container_image"],
      mounts: cr["mounts"] ?? {},
      output_path: cr["output_path"],
      output_glob: cr["output_glob"] ?? [],
      output_storage_classes: cr["output_storage_classes"] ?? ["default"],
      output_properties: {},
      command: cr["command"],
      cwd: cr["cwd"] ?? ".",
      environment: cr["environment"] ?? {},
      ...NOT_RUN_YET,
    });
    this.updateRow(containerRequestsSpec, cr["uuid"] as string, {
      container_uuid: uuid,
      container_count: ((cr["container_count"] as number) ?? 0) + 1,
      modified_at: now,
    });
    this.updatePriority(uuid);
  }

  /**
   * Container priority = max over committed requests with priority > 0 of
   * `priority × 2^50 − created_at(ms)` (a child request uses its parent container's priority);
   * 0 when nobody wants it. Finished containers keep theirs.
   */
  updatePriority(containerUuid: string): void {
    const c = this.getRow(containersSpec, containerUuid);
    if (!c || c["state"] === "Complete" || c["state"] === "Cancelled") return;
    const crs = this.db
      .prepare(
        "SELECT priority, created_at, requesting_container_uuid FROM container_requests WHERE container_uuid = ? AND state = 'Committed' AND priority > 0",
      )
      .all(containerUuid) as Array<{
      priority: number;
      created_at: string;
      requesting_container_uuid: string | null;
    }>;
    let best = 0n;
    for (const cr of crs) {
      let p: bigint;
      if (cr.requesting_container_uuid) {
        const parent = this.getRow(containersSpec, cr.requesting_container_uuid);
        p = BigInt(Math.trunc((parent?.["priority"] as number | undefined) ?? 0));
      } else {
        p = BigInt(cr.priority) * (1n << 50n) - BigInt(Date.parse(cr.created_at));
      }
      if (p > best) best = p;
    }
    if (BigInt(Math.trunc(c["priority"] as number)) === best) return;
    this.db
      .prepare("UPDATE containers SET priority = ?, modified_at = ? WHERE uuid = ?")
      .run(best, this.nowIso(), containerUuid);
  }

  /** A container ended: retry it for requests that still want it, finalise the rest. */
  private containerFinished(containerUuid: string, state: ContainerState): void {
    const crs = this.db
      .prepare("SELECT * FROM container_requests WHERE container_uuid = ? AND state = 'Committed'")
      .all(containerUuid) as Row[];
    for (const raw of crs) {
      const cr = fromRow(containerRequestsSpec, raw);
      const retry =
        state === "Cancelled" &&
        (cr["priority"] as number) > 0 &&
        (cr["container_count"] as number) < (cr["container_count_max"] as number);
      if (retry) this.startContainerFor(cr);
      else {
        this.updateRow(containerRequestsSpec, cr["uuid"] as string, {
          state: "Final",
          modified_at: this.nowIso(),
        });
      }
    }
  }

  // ---- logs ----

  createLog(actor: Actor, attrs: Row): Row {
    return this.tx(() => {
      const objectUuid = attrs["object_uuid"] ?? null;
      if (!actor.isAdmin && objectUuid !== actor.containerUuid) {
        throw forbidden("a container's token may only write logs for its own container");
      }
      const now = this.nowIso();
      const { n } = this.db.prepare("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM logs").get() as {
        n: number;
      };
      const uuid = this.newUuid("57u5n");
      this.insertRow(logsSpec, {
        id: n,
        uuid,
        owner_uuid: actor.ownerUuid,
        created_at: now,
        modified_at: now,
        object_uuid: objectUuid,
        event_type: attrs["event_type"],
        event_at: attrs["event_at"] ?? now,
        summary: attrs["summary"] ?? null,
        properties: attrs["properties"] ?? {},
      });
      return present(logsSpec, this.mustGet(logsSpec, uuid));
    });
  }

  listLogs(actor: Actor, q: ListQuery): ListAnswer {
    if (actor.isAdmin) return this.list(logsSpec, q);
    return this.list(logsSpec, q, ["object_uuid = ?"], [actor.containerUuid ?? ""]);
  }
}

export { ApiError };
