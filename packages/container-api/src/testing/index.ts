// Helpers for tests that use container-api as their Arvados peer.
import { containersSpec, type Row } from "../schema.js";
import { normaliseRuntimeConstraints, normaliseSchedulingParameters } from "../rules.js";
import { NOT_RUN_YET, type Store } from "../store.js";

/** `<cluster>-dz642-` + i zero-padded to 15 digits (as Arvados's test helpers name them). */
export const testContainerUuid = (i: number, clusterId = "zzzzz"): string =>
  `${clusterId}-dz642-${String(i).padStart(15, "0")}`;

/**
 * Inserts a container directly (any state, no request), bypassing the API's rules; returns
 * its UUID. Unspecified fields get what a fresh Queued container would have.
 */
export function seedContainer(store: Store, attrs: Row = {}): string {
  const now = new Date().toISOString();
  const uuid = (attrs["uuid"] as string | undefined) ?? store.newUuid("dz642");
  const rec: Row = {
    uuid,
    owner_uuid: store.systemUserUuid,
    created_at: now,
    modified_at: now,
    modified_by_user_uuid: store.systemUserUuid,
    state: "Queued",
    priority: 1,
    locked_by_uuid: null,
    lock_count: 0,
    auth_uuid: null,
    runtime_user_uuid: store.systemUserUuid,
    runtime_auth_scopes: ["all"],
    runtime_status: {},
    container_image: "d41d8cd98f00b204e9800998ecf8427e+0",
    mounts: {},
    output_path: "/out",
    output_glob: [],
    output_storage_classes: ["default"],
    output_properties: {},
    command: ["echo", "hello"],
    cwd: ".",
    environment: {},
    ...NOT_RUN_YET,
    ...attrs,
    runtime_constraints: normaliseRuntimeConstraints(
      (attrs["runtime_constraints"] as Row | undefined) ?? { vcpus: 1, ram: 1 << 28 },
    ),
    scheduling_parameters: normaliseSchedulingParameters(
      (attrs["scheduling_parameters"] as Row | undefined) ?? {},
    ),
  };
  store.insertRow(containersSpec, rec);
  return uuid;
}

/** Inserts many containers in one transaction (fast paging fixtures). */
export function seedContainers(store: Store, n: number, make: (i: number) => Row): string[] {
  return store.tx(() => Array.from({ length: n }, (_, i) => seedContainer(store, make(i))));
}

export {
  startRecordingProxy,
  type RecordedUpdate,
  type RecordingProxy,
} from "./recording-proxy.js";
