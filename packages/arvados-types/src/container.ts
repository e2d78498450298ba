// The container record with the API's own field names (snake_case), so records round-trip
// through JSON untouched.
import type { ContainerUuid } from "./ids.js";

export const CONTAINER_STATES = ["Queued", "Locked", "Running", "Complete", "Cancelled"] as const;
export type ContainerState = (typeof CONTAINER_STATES)[number];

export interface GpuRuntimeConstraints {
  /** "" (no GPU), "cuda" or "rocm". */
  stack: string;
  driver_version: string;
  hardware_target: string[];
  device_count: number;
  /** Bytes of VRAM needed per device. */
  vram: number;
}

/** Deprecated form the API server still accepts on input; mapped to `gpu` with stack "cuda". */
export interface CudaRuntimeConstraints {
  driver_version: string;
  hardware_capability: string;
  device_count: number;
}

export interface RuntimeConstraints {
  ram: number;
  vcpus: number;
  keep_cache_ram: number;
  keep_cache_disk: number;
  API: boolean;
  gpu: GpuRuntimeConstraints;
  cuda?: CudaRuntimeConstraints;
}

export interface SchedulingParameters {
  preemptible: boolean;
  partitions: string[];
  /** Seconds; 0 = no limit. */
  max_run_time: number;
  supervisor: boolean;
}

/** One entry of a container's `mounts` map. Only `kind` is always present. */
export interface Mount {
  kind: string;
  capacity?: number;
  writable?: boolean;
  portable_data_hash?: string;
  uuid?: string;
  path?: string;
  content?: unknown;
  exclude_from_output?: boolean;
  device_type?: string;
  repository_name?: string;
  commit?: string;
  git_url?: string;
  [extra: string]: unknown;
}

/** `runtime_status` keys whose values the server requires to be strings. */
export interface RuntimeStatus {
  error?: string;
  errorDetail?: string;
  warning?: string;
  warningDetail?: string;
  activity?: string;
  preemptionNotice?: string;
  [extra: string]: unknown;
}

/** A full container record. List/get with `select` returns a `Pick` of it. */
export interface Container {
  kind?: string;
  etag?: string;
  uuid: ContainerUuid;
  owner_uuid: string;
  created_at: string;
  modified_at: string;
  modified_by_user_uuid?: string | null;
  state: ContainerState;
  /** Huge int64 (request priority × 2^50 − created ms); 0 = nobody wants it. */
  priority: number;
  locked_by_uuid: string | null;
  lock_count: number;
  auth_uuid: string | null;
  runtime_token?: string | null;
  runtime_user_uuid: string;
  runtime_auth_scopes: string[];
  runtime_constraints: RuntimeConstraints;
  scheduling_parameters: SchedulingParameters;
  runtime_status: RuntimeStatus;
  container_image: string;
  mounts: Record<string, Mount> | null;
  secret_mounts?: Record<string, Mount>;
  output_path: string;
  output_glob: string[];
  output_storage_classes: string[];
  output_properties: Record<string, unknown>;
  command: string[];
  cwd: string;
  environment: Record<string, string>;
  exit_code: number | null;
  started_at: string | null;
  finished_at: string | null;
  log: string | null;
  output: string | null;
  progress: number | null;
  cost: number;
  subrequests_cost: number;
  gateway_address: string | null;
  interactive_session_started: boolean;
}
export type ContainerField = keyof Container;
