// Column layouts of the tables and how each field is stored. JSON-typed fields are stored as
// text; `ts` fields as fixed-width ISO-8601 UTC strings so text order is time order.

export type ColumnKind = "text" | "int" | "float" | "bool" | "json" | "ts";

export interface TableSpec {
  table: string;
  kind: string;
  /** Every stored column, including internal ones. */
  columns: Record<string, ColumnKind>;
  /** Columns never returned by the API. */
  hidden: readonly string[];
  defaultOrder: readonly string[];
}

/** The columns every container and container request record starts with, as Arvados's do. */
const recordColumns: Readonly<Record<string, ColumnKind>> = {
  uuid: "text",
  owner_uuid: "text",
  created_at: "ts",
  modified_at: "ts",
  modified_by_user_uuid: "text",
};

export const containersSpec: TableSpec = {
  table: "containers",
  kind: "arvados#container",
  columns: {
    ...recordColumns,
    state: "text",
    priority: "int",
    locked_by_uuid: "text",
    lock_count: "int",
    auth_uuid: "text",
    runtime_user_uuid: "text",
    runtime_auth_scopes: "json",
    runtime_constraints: "json",
    scheduling_parameters: "json",
    runtime_status: "json",
    container_image: "text",
    mounts: "json",
    output_path: "text",
    output_glob: "json",
    output_storage_classes: "json",
    output_properties: "json",
    command: "json",
    cwd: "text",
    environment: "json",
    exit_code: "int",
    started_at: "ts",
    finished_at: "ts",
    log: "text",
    output: "text",
    progress: "float",
    cost: "float",
    subrequests_cost: "float",
    gateway_address: "text",
    interactive_session_started: "bool",
  },
  hidden: [],
  defaultOrder: ["modified_at desc"],
};

export const containerRequestsSpec: TableSpec = {
  table: "container_requests",
  kind: "arvados#containerRequest",
  columns: {
    ...recordColumns,
    name: "text",
    description: "text",
    properties: "json",
    state: "text",
    priority: "int",
    container_uuid: "text",
    container_count: "int",
    container_count_max: "int",
    container_image: "text",
    command: "json",
    cwd: "text",
    environment: "json",
    mounts: "json",
    output_path: "text",
    output_name: "text",
    output_glob: "json",
    output_storage_classes: "json",
    output_properties: "json",
    output_uuid: "text",
    log_uuid: "text",
    runtime_constraints: "json",
    scheduling_parameters: "json",
    use_existing: "bool",
    requesting_container_uuid: "text",
    expires_at: "ts",
    filters: "text",
  },
  hidden: [],
  defaultOrder: ["modified_at desc"],
};

export const logsSpec: TableSpec = {
  table: "logs",
  kind: "arvados#log",
  columns: {
    id: "int",
    uuid: "text",
    owner_uuid: "text",
    created_at: "ts",
    modified_at: "ts",
    object_uuid: "text",
    event_type: "text",
    event_at: "ts",
    summary: "text",
    properties: "json",
  },
  hidden: [],
  defaultOrder: ["id asc"],
};

export const authSpec: TableSpec = {
  table: "api_client_authorizations",
  kind: "arvados#apiClientAuthorization",
  columns: {
    uuid: "text",
    api_token: "text",
    owner_uuid: "text",
    scopes: "json",
    expires_at: "ts",
    created_at: "ts",
    modified_at: "ts",
    is_admin: "bool",
    container_uuid: "text",
  },
  hidden: ["api_token", "is_admin", "container_uuid"],
  defaultOrder: ["created_at desc"],
};

const sqlType = (k: ColumnKind): string =>
  k === "int" || k === "bool" ? "INTEGER" : k === "float" ? "REAL" : "TEXT";

function createTable(spec: TableSpec): string {
  const cols = Object.entries(spec.columns).map(([name, kind]) => {
    if (name === "uuid") return "uuid TEXT NOT NULL PRIMARY KEY";
    if (name === "id") return "id INTEGER NOT NULL UNIQUE";
    return `${name} ${sqlType(kind)}`;
  });
  return `CREATE TABLE IF NOT EXISTS ${spec.table} (${cols.join(", ")})`;
}

export const SCHEMA = [
  createTable(containersSpec),
  "CREATE INDEX IF NOT EXISTS containers_state_priority ON containers (state, priority)",
  "CREATE INDEX IF NOT EXISTS containers_locked_by ON containers (locked_by_uuid)",
  createTable(containerRequestsSpec),
  "CREATE INDEX IF NOT EXISTS cr_container ON container_requests (container_uuid)",
  createTable(logsSpec),
  "CREATE INDEX IF NOT EXISTS logs_object ON logs (object_uuid, id)",
  createTable(authSpec),
  "CREATE UNIQUE INDEX IF NOT EXISTS auth_token ON api_client_authorizations (api_token)",
];

export type Row = Record<string, unknown>;

/** JS record → SQLite values. */
export function toRow(spec: TableSpec, rec: Row): Row {
  const out: Row = {};
  for (const [name, kind] of Object.entries(spec.columns)) {
    const v = rec[name];
    if (v === undefined || v === null) out[name] = null;
    else if (kind === "json") out[name] = JSON.stringify(v);
    else if (kind === "bool") out[name] = v ? 1 : 0;
    else out[name] = v;
  }
  return out;
}

/** SQLite row → JS record (all columns, including hidden ones). */
export function fromRow(spec: TableSpec, row: Row): Row {
  const out: Row = {};
  for (const [name, value] of Object.entries(row)) {
    const kind = spec.columns[name];
    if (value === null || value === undefined) out[name] = null;
    else if (kind === "json") out[name] = JSON.parse(value as string) as unknown;
    else if (kind === "bool") out[name] = value === 1 || value === 1n;
    else if (typeof value === "bigint") out[name] = Number(value);
    else out[name] = value;
  }
  return out;
}

/** The API view of a record: kind, etag, and the selected (or all visible) fields. */
export function present(spec: TableSpec, rec: Row, select?: readonly string[]): Row {
  const out: Row = { kind: spec.kind };
  const fields = select ?? Object.keys(spec.columns).filter((c) => !spec.hidden.includes(c));
  if (!select) out["etag"] = etag(rec);
  for (const f of fields) out[f] = rec[f] ?? null;
  return out;
}

function etag(rec: Row): string {
  const s = `${String(rec["uuid"])}/${String(rec["modified_at"])}`;
  let h = 0n;
  for (const c of s) h = (h * 131n + BigInt(c.codePointAt(0) ?? 0)) % (1n << 61n);
  return h.toString(36);
}
