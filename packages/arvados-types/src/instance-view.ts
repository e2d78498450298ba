import { GO_ZERO_TIME } from "./go-json.js";
import { instanceId, type ContainerUuid, type InstanceId } from "./ids.js";
import type { InstanceType } from "./instance-type.js";

/**
 * A worker's state, with Arvados's JSON strings.
 * - `unknown`: listed in the cloud but not created by this process, and not boot-probed yet;
 * - `booting`: created by this process, boot probe not passed yet;
 * - `idle` / `running`: ready, without / with containers;
 * - `shutdown`: destroy requested; stays until the VM leaves the listing.
 */
export const WORKER_STATES = ["unknown", "booting", "idle", "running", "shutdown"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/**
 * What the pool does with an idle worker: `run` (take containers, shut down after TimeoutIdle),
 * `hold` (never shut down automatically, take no new containers), `drain` (shut down as soon
 * as nothing runs, take no new containers).
 */
export const IDLE_BEHAVIORS = ["run", "hold", "drain"] as const;
export type IdleBehavior = (typeof IDLE_BEHAVIORS)[number];
export const isIdleBehavior = (v: unknown): v is IdleBehavior =>
  (IDLE_BEHAVIORS as readonly unknown[]).includes(v);

/**
 * One worker (or one pending create) as the scheduler, the management API and the admin CLI see
 * it. Field names are the management API's JSON (`GET /arvados/v1/dispatch/instances`).
 */
export interface InstanceView {
  /** The cloud's instance id; "" for a create that has not returned yet. */
  readonly instance: InstanceId;
  readonly address: string;
  /** The configured price of the instance type. */
  readonly price: number;
  readonly arvados_instance_type: string;
  readonly provider_instance_type: string;
  readonly last_container_uuid: string;
  /** RFC 3339; Go's zero time `0001-01-01T00:00:00Z` for a pending create. */
  readonly last_busy: string;
  /** Running and starting containers; null for a pending create. */
  readonly running_container_uuids: readonly ContainerUuid[] | null;
  readonly worker_state: WorkerState;
  readonly idle_behavior: IdleBehavior;
}

/** A create that has not returned yet: no id or address, booting, Go's zero time. */
export function pendingInstanceView(type: InstanceType): InstanceView {
  return {
    instance: instanceId(""),
    address: "",
    price: type.Price,
    arvados_instance_type: type.Name,
    provider_instance_type: type.ProviderType,
    last_container_uuid: "",
    last_busy: GO_ZERO_TIME,
    running_container_uuids: null,
    worker_state: "booting",
    idle_behavior: "run",
  };
}

/** The outcome of an admin action on one instance; `error` is the management API's 404 text. */
export type ActionResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** A view in Go's field order, running containers sorted as the Go dispatcher lists them. */
export function instanceViewJson(v: InstanceView): Record<string, unknown> {
  return {
    instance: v.instance,
    address: v.address,
    price: v.price,
    arvados_instance_type: v.arvados_instance_type,
    provider_instance_type: v.provider_instance_type,
    last_container_uuid: v.last_container_uuid,
    last_busy: v.last_busy,
    running_container_uuids:
      v.running_container_uuids === null ? null : [...v.running_container_uuids].sort(),
    worker_state: v.worker_state,
    idle_behavior: v.idle_behavior,
  };
}
