import type { Container, ContainerUuid } from "@dispatch-cloud/arvados-client";

/** GPU capabilities of an instance type (`InstanceTypes.<name>.GPU`). */
export interface GpuFeatures {
  readonly Stack: string;
  readonly DriverVersion: string;
  readonly HardwareTarget: string;
  readonly DeviceCount: number;
  readonly VRAM: number;
}

/** One configured instance type (same shape as config's and cloud-driver-api's). */
export interface InstanceType {
  readonly Name: string;
  readonly ProviderType: string;
  readonly VCPUs: number;
  readonly RAM: number;
  readonly IncludedScratch: number;
  readonly AddedScratch: number;
  readonly Scratch: number;
  readonly Price: number;
  readonly Preemptible: boolean;
  readonly GPU: GpuFeatures;
}

/** What a container needs from an instance, overheads included (JSON `instance_resources`). */
export interface InstanceResources {
  readonly VCPUs: number;
  readonly RAM: number;
  readonly Scratch: number;
  readonly GPUs: number;
  readonly GPUVRAM: number;
}

/** The container fields a poll selects, plus `locked_by_uuid` from lock/unlock/cancel answers. */
export type QueuedContainer = Pick<
  Container,
  | "uuid"
  | "state"
  | "priority"
  | "runtime_constraints"
  | "container_image"
  | "scheduling_parameters"
  | "created_at"
> & { readonly locked_by_uuid?: string | null };

/** One cached entry; types and resources are computed once, when it is first seen. */
export interface QueueEntry {
  readonly container: QueuedContainer;
  /** Eligible types, cheapest first; empty only for an unsatisfiable non-Queued/Locked entry. */
  readonly instanceTypes: readonly InstanceType[];
  readonly instanceResources: InstanceResources;
  readonly firstSeenAt: Date;
}

export interface QueueSnapshot {
  readonly entries: ReadonlyMap<ContainerUuid, QueueEntry>;
  /** Every entry was fetched no earlier than this. */
  readonly threshold: Date;
}

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
