// The controller's rules for containers and container requests (dispatcher-core §5).
import { CONTAINER_STATES, type ContainerState } from "@dispatch-cloud/arvados-types";
import { forbidden, unprocessable } from "./errors.js";
import { containersSpec, type Row } from "./schema.js";

/** Allowed state changes (Complete → Cancelled exists for admin reuse control). */
export const TRANSITIONS: Readonly<Record<ContainerState, readonly ContainerState[]>> = {
  Queued: ["Locked", "Cancelled"],
  Locked: ["Queued", "Running", "Cancelled"],
  Running: ["Complete", "Cancelled"],
  Complete: ["Cancelled"],
  Cancelled: [],
};

const PROGRESS_ATTRS = [
  "progress",
  "runtime_status",
  "subrequests_cost",
  "cost",
  "log",
  "output",
  "output_properties",
  "exit_code",
];

const RUNTIME_STATUS_STRING_KEYS = [
  "error",
  "errorDetail",
  "warning",
  "warningDetail",
  "activity",
  "preemptionNotice",
];

// ---- type checks ----

type Check = (v: unknown) => string | null;
const isObj = (v: unknown): v is Row => typeof v === "object" && v !== null && !Array.isArray(v);
const str: Check = (v) => (typeof v === "string" ? null : "must be a string");
const strOrNull: Check = (v) =>
  v === null || typeof v === "string" ? null : "must be a string or null";
const int =
  (min: number): Check =>
  (v) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= min
      ? null
      : `must be an integer >= ${min}`;
const intOrNull: Check = (v) => (v === null ? null : int(Number.MIN_SAFE_INTEGER)(v));
const num: Check = (v) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? null : "must be a number >= 0";
const numOrNull: Check = (v) => (v === null ? null : num(v));
const bool: Check = (v) => (typeof v === "boolean" ? null : "must be true or false");
const obj: Check = (v) => (isObj(v) ? null : "must be a JSON object");
const strArray: Check = (v) =>
  Array.isArray(v) && v.every((x) => typeof x === "string") ? null : "must be an array of strings";
const tsOrNull: Check = (v) =>
  v === null || (typeof v === "string" && !Number.isNaN(Date.parse(v)))
    ? null
    : "must be an RFC 3339 time or null";
const anything: Check = () => null;

const containerChecks: Record<string, Check> = {
  state: (v) =>
    CONTAINER_STATES.includes(v as ContainerState)
      ? null
      : `must be one of ${CONTAINER_STATES.join(", ")}`,
  priority: int(0),
  runtime_status: obj,
  log: strOrNull,
  lock_count: int(0),
  output: strOrNull,
  output_properties: obj,
  exit_code: intOrNull,
  progress: numOrNull,
  cost: num,
  subrequests_cost: num,
  gateway_address: strOrNull,
  interactive_session_started: bool,
  started_at: tsOrNull,
  finished_at: tsOrNull,
};

/** Rejects unknown attributes and wrong types, naming the field. */
export function checkAttributes(
  model: "Container" | "ContainerRequest",
  attrs: unknown,
  checks: Record<string, Check>,
  known: readonly string[],
): Row {
  const errors = attributeErrors(model, attrs, checks, known);
  if (errors.length) throw unprocessable(...errors);
  return attrs as Row;
}

function attributeErrors(
  model: "Container" | "ContainerRequest",
  attrs: unknown,
  checks: Record<string, Check>,
  known: readonly string[],
): string[] {
  if (!isObj(attrs))
    return [`${model === "Container" ? "container" : "container_request"}: must be a JSON object`];
  const errors: string[] = [];
  for (const [k, v] of Object.entries(attrs)) {
    if (!known.includes(k)) {
      errors.push(`unknown attribute '${k}' for ${model}.`);
      continue;
    }
    const msg = (checks[k] ?? anything)(v);
    if (msg) errors.push(`${k} ${msg}`);
  }
  return errors;
}

export function checkContainerAttributes(attrs: unknown): Row {
  return checkAttributes("Container", attrs, containerChecks, Object.keys(containersSpec.columns));
}

/** Ruby `inspect`, as the controller prints old and new values in its error messages. */
export function rubyInspect(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(rubyInspect).join(", ")}]`;
  if (isObj(v)) {
    const parts = Object.entries(v).map(([k, x]) => `${JSON.stringify(k)} => ${rubyInspect(x)}`);
    return `{${parts.join(", ")}}`;
  }
  return typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(v);
}

const same = (a: unknown, b: unknown): boolean =>
  JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export interface ContainerChange {
  old: Row;
  next: Row;
  actorUuid: string;
  actorIsAdmin: boolean;
}

/**
 * Validates an update: the state transition, then which attributes may change given the
 * resulting state, the previous state and who is asking (§5.4). Throws 403/422.
 */
export function checkContainerUpdate({
  old,
  next,
  actorUuid,
  actorIsAdmin,
}: ContainerChange): void {
  const from = old["state"] as ContainerState;
  const to = next["state"] as ContainerState;
  if (from !== to && !TRANSITIONS[from].includes(to)) {
    throw unprocessable(`state cannot change from ${from} to ${to}`);
  }
  const permitted = new Set<string>(["state"]);
  const add = (...a: string[]): void => a.forEach((x) => permitted.add(x));
  switch (to) {
    case "Locked":
      add("priority", "runtime_status", "log", "lock_count");
      break;
    case "Queued":
      add("priority");
      break;
    case "Running":
      add("priority", "output_properties", "gateway_address", ...PROGRESS_ATTRS);
      if (from !== to) add("started_at");
      if (!old["interactive_session_started"]) add("interactive_session_started");
      break;
    case "Complete":
      if (from === "Running") add("finished_at", ...PROGRESS_ATTRS);
      break;
    case "Cancelled":
      if (from === "Running") add("finished_at", ...PROGRESS_ATTRS);
      else if (from === "Queued" || from === "Locked")
        add("finished_at", "log", "runtime_status", "cost");
      break;
  }
  const ownToken = from === "Running" && old["auth_uuid"] != null && old["auth_uuid"] === actorUuid;
  if (ownToken) {
    // The container's own process may finish itself but not reprioritise or replace its log.
    permitted.add("finished_at");
    permitted.delete("log");
    permitted.delete("priority");
  } else if (!actorIsAdmin) {
    throw forbidden();
  } else if (old["locked_by_uuid"] && old["locked_by_uuid"] !== actorUuid) {
    // Another dispatcher holds the lock: it may not write progress.
    for (const a of PROGRESS_ATTRS) permitted.delete(a);
  }
  const errors: string[] = [];
  for (const k of Object.keys(containersSpec.columns)) {
    if (same(old[k], next[k]) || permitted.has(k)) continue;
    errors.push(
      `${k} cannot be modified in state '${to}' (${rubyInspect(old[k])}, ${rubyInspect(next[k])})`,
    );
  }
  const rs = next["runtime_status"];
  if (isObj(rs)) {
    for (const key of RUNTIME_STATUS_STRING_KEYS) {
      if (key in rs && typeof rs[key] !== "string")
        errors.push(`runtime_status '${key}' value must be a string`);
    }
  }
  if (errors.length) throw unprocessable(...errors);
}

// ---- container requests ----

const GiB = 1024 ** 3;

const rcChecks: Record<string, Check> = {
  vcpus: int(1),
  ram: int(1),
  keep_cache_ram: int(0),
  keep_cache_disk: int(0),
  API: bool,
  gpu: obj,
  cuda: obj,
};
const gpuChecks: Record<string, Check> = {
  stack: (v) => (v === "" || v === "cuda" || v === "rocm" ? null : `must be "", "cuda" or "rocm"`),
  driver_version: str,
  hardware_target: strArray,
  device_count: int(0),
  vram: int(0),
};
const cudaChecks: Record<string, Check> = {
  driver_version: str,
  hardware_capability: str,
  device_count: int(0),
};
const spChecks: Record<string, Check> = {
  preemptible: bool,
  partitions: strArray,
  max_run_time: int(0),
  supervisor: bool,
};

function checkNested(where: string, v: unknown, checks: Record<string, Check>): string[] {
  if (!isObj(v)) return [`${where} must be a JSON object`];
  const errors: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    const c = checks[k];
    if (!c) errors.push(`${where}: unknown key '${k}'`);
    else {
      const msg = c(x);
      if (msg) errors.push(`${where}.${k} ${msg}`);
    }
  }
  return errors;
}

const crChecks: Record<string, Check> = {
  owner_uuid: str,
  name: strOrNull,
  description: strOrNull,
  properties: obj,
  state: (v) =>
    v === "Uncommitted" || v === "Committed" ? null : `must be Uncommitted or Committed`,
  priority: (v) =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 1000
      ? null
      : "must be an integer from 0 to 1000",
  container_image: str,
  command: strArray,
  cwd: str,
  environment: (v) =>
    isObj(v) && Object.values(v).every((x) => typeof x === "string")
      ? null
      : "must be an object of strings",
  mounts: (v) =>
    isObj(v) && Object.values(v).every((m) => isObj(m) && typeof m["kind"] === "string")
      ? null
      : "must be an object of mounts, each with a string 'kind'",
  output_path: str,
  output_name: strOrNull,
  output_glob: strArray,
  output_storage_classes: strArray,
  output_properties: obj,
  use_existing: bool,
  expires_at: tsOrNull,
  filters: strOrNull,
  container_count_max: int(1),
  runtime_constraints: obj,
  scheduling_parameters: obj,
};

const CR_CREATE_FIELDS = Object.keys(crChecks);

function checkCrAttributes(attrs: unknown, checks: Record<string, Check>): Row {
  const errors = attributeErrors("ContainerRequest", attrs, checks, CR_CREATE_FIELDS);
  if (isObj(attrs)) errors.push(...crNestedErrors(attrs));
  if (errors.length) throw unprocessable(...errors);
  return attrs as Row;
}

function crNestedErrors(attrs: Row): string[] {
  const errors: string[] = [];
  if ("runtime_constraints" in attrs) {
    const rc = attrs["runtime_constraints"];
    errors.push(...checkNested("runtime_constraints", rc, rcChecks));
    if (isObj(rc) && "gpu" in rc)
      errors.push(...checkNested("runtime_constraints.gpu", rc["gpu"], gpuChecks));
    if (isObj(rc) && "cuda" in rc)
      errors.push(...checkNested("runtime_constraints.cuda", rc["cuda"], cudaChecks));
  }
  if ("scheduling_parameters" in attrs) {
    errors.push(...checkNested("scheduling_parameters", attrs["scheduling_parameters"], spChecks));
  }
  return errors;
}

function checkCommitted(cr: Row): void {
  const errors: string[] = [];
  if (typeof cr["container_image"] !== "string" || cr["container_image"] === "") {
    errors.push("container_image must be set when state is Committed");
  }
  if (!Array.isArray(cr["command"]) || cr["command"].length === 0) {
    errors.push("command must be a non-empty array when state is Committed");
  }
  if (typeof cr["output_path"] !== "string" || cr["output_path"] === "") {
    errors.push("output_path must be set when state is Committed");
  }
  const rc = (cr["runtime_constraints"] ?? {}) as Row;
  if (!("vcpus" in rc))
    errors.push("runtime_constraints.vcpus must be set when state is Committed");
  if (!("ram" in rc)) errors.push("runtime_constraints.ram must be set when state is Committed");
  if (errors.length) throw unprocessable(...errors);
}

/** Validates a create and fills defaults. */
export function validateContainerRequestCreate(attrs: unknown, maxRetryAttempts: number): Row {
  const a = checkCrAttributes(attrs, crChecks);
  const cr: Row = {
    name: null,
    description: null,
    properties: {},
    state: "Uncommitted",
    priority: 0,
    container_image: "",
    command: [],
    cwd: ".",
    environment: {},
    mounts: {},
    output_path: "",
    output_name: null,
    output_glob: [],
    output_storage_classes: ["default"],
    output_properties: {},
    use_existing: true,
    expires_at: null,
    filters: null,
    container_count_max: maxRetryAttempts,
    output_uuid: null,
    log_uuid: null,
    ...a,
  };
  cr["runtime_constraints"] = a["runtime_constraints"] ?? {};
  cr["scheduling_parameters"] = normaliseSchedulingParameters(
    (a["scheduling_parameters"] ?? {}) as Row,
  );
  if (cr["state"] === "Committed") checkCommitted(cr);
  return cr;
}

/** Validates a request update; returns the changes to store. */
export function validateContainerRequestUpdate(old: Row, attrs: unknown): Row {
  const a = checkCrAttributes(attrs, { ...crChecks, state: anything });
  const from = old["state"] as string;
  const errors: string[] = [];
  const changes: Row = {};
  for (const [k, v] of Object.entries(a)) {
    if (same(old[k], v)) continue;
    let ok: boolean;
    if (k === "state") ok = from === "Uncommitted" && v === "Committed";
    else if (from === "Uncommitted") ok = k !== "owner_uuid";
    else if (from === "Committed")
      ok = ["priority", "name", "description", "properties", "container_count_max"].includes(k);
    else ok = ["name", "description", "properties"].includes(k);
    if (!ok) {
      errors.push(
        k === "state"
          ? `state cannot change from ${from} to ${String(v)}`
          : `${k} cannot be modified in state '${from}' (${rubyInspect(old[k])}, ${rubyInspect(v)})`,
      );
    } else changes[k] = v;
  }
  if (errors.length) throw unprocessable(...errors);
  if ("scheduling_parameters" in changes) {
    changes["scheduling_parameters"] = normaliseSchedulingParameters(
      changes["scheduling_parameters"] as Row,
    );
  }
  if (changes["state"] === "Committed") checkCommitted({ ...old, ...changes });
  return changes;
}

/**
 * Fills runtime constraint defaults and maps the deprecated `cuda` section to `gpu`
 * (stack "cuda"), as the API server does when it creates a container.
 */
export function normaliseRuntimeConstraints(rc: Row): Row {
  const out: Row = {
    API: false,
    keep_cache_ram: 0,
    keep_cache_disk: 0,
    ...rc,
  };
  const gpu: Row = {
    stack: "",
    driver_version: "",
    hardware_target: [],
    device_count: 0,
    vram: 0,
    ...(isObj(rc["gpu"]) ? rc["gpu"] : {}),
  };
  const cuda = rc["cuda"];
  if (isObj(cuda) && typeof cuda["device_count"] === "number" && cuda["device_count"] > 0) {
    gpu["stack"] = "cuda";
    gpu["device_count"] = cuda["device_count"];
    gpu["driver_version"] = cuda["driver_version"] ?? "";
    gpu["hardware_target"] =
      typeof cuda["hardware_capability"] === "string" ? [cuda["hardware_capability"]] : [];
  }
  delete out["cuda"];
  out["gpu"] = gpu;
  if (out["keep_cache_ram"] === 0 && out["keep_cache_disk"] === 0) {
    // No cache size requested: a disk cache sized like the RAM request, within 2–32 GiB.
    const ram = typeof out["ram"] === "number" ? out["ram"] : 0;
    out["keep_cache_disk"] = Math.min(32 * GiB, Math.max(2 * GiB, ram));
  }
  return out;
}

export function normaliseSchedulingParameters(sp: Row): Row {
  return { preemptible: false, partitions: [], max_run_time: 0, supervisor: false, ...sp };
}
