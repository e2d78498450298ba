import type { Container, InstanceType } from "@dispatch-cloud/arvados-types";

/** The container fields a poll selects (`select`). */
export const POLLED_FIELDS = [
  "uuid",
  "state",
  "priority",
  "runtime_constraints",
  "container_image",
  "scheduling_parameters",
  "created_at",
] as const;

/** The fields a poll selects, plus `locked_by_uuid` from lock/unlock/cancel answers. */
export type PolledContainer = Pick<Container, (typeof POLLED_FIELDS)[number]> & {
  readonly locked_by_uuid?: string | null;
};

/** The config values type selection uses (`Containers.*`), passed in by the caller. */
export interface SelectionConfig {
  readonly instanceTypes: readonly InstanceType[];
  /** Containers.ReserveExtraRAM, bytes (default 550MiB). */
  readonly reserveExtraRAM: number;
  /** Containers.LocalKeepBlobBuffersPerVCPU (default 1). */
  readonly localKeepBlobBuffersPerVCPU: number;
  /** Containers.MaximumPriceFactor (default 1.5; below 1 acts as 1). */
  readonly maximumPriceFactor: number;
}
