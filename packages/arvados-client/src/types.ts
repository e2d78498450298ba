// Wire types of the Arvados calls the dispatcher and crunch-run make. Field names are the API's
// own (snake_case), so records round-trip through JSON untouched. The container record itself
// is in arvados-types, which every layer shares.
import type {
  Container,
  ContainerUuid,
  CudaRuntimeConstraints,
  GpuRuntimeConstraints,
  Mount,
  RuntimeConstraints,
  SchedulingParameters,
} from "@dispatch-cloud/arvados-types";

declare const brand: unique symbol;
/** `<cluster>-xvhdp-<15 chars>`. */
export type ContainerRequestUuid = string & { readonly [brand]: "ContainerRequestUuid" };

export const containerRequestUuid = (s: string): ContainerRequestUuid => s as ContainerRequestUuid;

/** What an update may carry; the server decides what is allowed in which state (§5.4). */
export type ContainerUpdate = Partial<
  Pick<
    Container,
    | "state"
    | "priority"
    | "runtime_status"
    | "log"
    | "lock_count"
    | "output"
    | "output_properties"
    | "exit_code"
    | "progress"
    | "cost"
    | "subrequests_cost"
    | "gateway_address"
    | "interactive_session_started"
    | "started_at"
    | "finished_at"
  >
>;

/** What lock and unlock return (plus kind/etag). */
export type LockResponse = Pick<
  Container,
  "uuid" | "state" | "priority" | "auth_uuid" | "locked_by_uuid"
>;

export type ContainerRequestState = "Uncommitted" | "Committed" | "Final";

export interface ContainerRequest {
  kind?: string;
  etag?: string;
  uuid: ContainerRequestUuid;
  owner_uuid: string;
  created_at: string;
  modified_at: string;
  name: string | null;
  description: string | null;
  properties: Record<string, unknown>;
  state: ContainerRequestState;
  /** 0–1000; 0 = not wanted (cancels an unfinished container). */
  priority: number;
  container_uuid: ContainerUuid | null;
  container_count: number;
  /** How many containers it may run in all: a Cancelled one is retried until this many. */
  container_count_max: number;
  container_image: string;
  command: string[];
  cwd: string;
  environment: Record<string, string>;
  mounts: Record<string, Mount>;
  output_path: string;
  output_name: string | null;
  output_uuid: string | null;
  log_uuid: string | null;
  runtime_constraints: RuntimeConstraints;
  scheduling_parameters: SchedulingParameters;
  use_existing: boolean;
  requesting_container_uuid: string | null;
  expires_at: string | null;
  filters: string | null;
}

/** Attributes accepted by container_requests create; unset ones get the server's defaults. */
export type ContainerRequestCreate = Partial<
  Omit<
    ContainerRequest,
    | "uuid"
    | "kind"
    | "etag"
    | "created_at"
    | "modified_at"
    | "container_uuid"
    | "container_count"
    | "runtime_constraints"
    | "scheduling_parameters"
  >
> & {
  runtime_constraints?: Partial<Omit<RuntimeConstraints, "gpu" | "cuda">> & {
    gpu?: Partial<GpuRuntimeConstraints>;
    cuda?: Partial<CudaRuntimeConstraints>;
  };
  scheduling_parameters?: Partial<SchedulingParameters>;
};

/** Attributes a container request update may carry (e.g. `priority: 0` to cancel). */
export type ContainerRequestUpdate = Partial<
  Pick<ContainerRequest, "priority" | "state" | "name" | "description" | "properties">
>;

/** A log record; crunch-run writes its stdout/stderr/crunch-run lines as `properties.text`. */
export interface Log {
  kind?: string;
  etag?: string;
  /** Increases with every record: what a follower pages on (`["id", ">", last]`). */
  id: number;
  uuid: string;
  owner_uuid: string;
  object_uuid: string | null;
  event_type: string;
  event_at: string | null;
  summary: string | null;
  properties: { text?: string; [extra: string]: unknown };
  created_at: string;
  modified_at: string;
}

export type LogCreate = Partial<
  Pick<Log, "object_uuid" | "event_type" | "event_at" | "summary" | "properties">
> &
  Pick<Log, "event_type">;

/**
 * One entry of the dispatcher's queue, as its management API shows it
 * (`/arvados/v1/dispatch/container[s]`). Only the fields clients read are typed.
 */
export interface DispatchQueueEntry {
  container: Pick<Container, "uuid" | "state" | "priority"> & Partial<Container>;
  /** Why it is not running yet (the dispatcher's scheduling status), or "". */
  scheduling_status: string;
  first_seen_at: string;
  /** The instance types that fit it, cheapest first. */
  instance_types: Array<{ ProviderType: string; Price: number; [field: string]: unknown }>;
}

export interface ApiClientAuthorization {
  kind?: string;
  etag?: string;
  uuid: string;
  owner_uuid: string;
  api_token?: string;
  scopes: string[];
  expires_at: string | null;
  created_at: string;
}

export type FilterOperator =
  "=" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in" | "like" | "ilike" | "is_a" | "exists";

/** One Arvados filter: `[attribute, operator, operand]`. */
export type Filter = readonly [attribute: string, operator: FilterOperator, operand: unknown];

export interface ListParams<K extends string> {
  filters?: readonly Filter[];
  /** Fields to return; the result items carry only these. */
  select?: readonly K[];
  /** e.g. `"uuid"`, `"priority desc"` or `["priority desc", "created_at"]`. */
  order?: string | readonly string[];
  limit?: number;
  offset?: number;
  /** `"none"` skips counting (`items_available` absent). */
  count?: "none" | "exact";
}

export interface ListResult<T> {
  kind?: string;
  items: T[];
  /** Absent with `count: "none"`. */
  items_available?: number;
  offset?: number;
  limit?: number;
}
