/*
 * What the management API reads and does, declared here so this package imports no pool or
 * scheduler. The daemon passes its real scheduler and pool (adapting where names differ);
 * tests pass small fakes.
 */

export interface Logger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
  child(fields: Record<string, unknown>): Logger;
}

export type IdleBehavior = "run" | "hold" | "drain";
export type WorkerState = "unknown" | "booting" | "idle" | "running" | "shutdown";

export interface GpuFeatures {
  readonly Stack: string;
  readonly DriverVersion: string;
  readonly HardwareTarget: string;
  readonly DeviceCount: number;
  readonly VRAM: number;
}

/** A configured instance type, Arvados field names. `Name` and `Scratch` are never serialised. */
export interface InstanceTypeView {
  readonly Name?: string;
  readonly ProviderType: string;
  readonly VCPUs: number;
  readonly RAM: number;
  readonly IncludedScratch: number;
  readonly AddedScratch: number;
  readonly Scratch?: number;
  readonly Price: number;
  readonly Preemptible: boolean;
  readonly GPU: GpuFeatures;
}

export interface InstanceResourcesView {
  readonly VCPUs: number;
  readonly RAM: number;
  readonly Scratch: number;
  readonly GPUs: number;
  readonly GPUVRAM: number;
}

/**
 * The container record as the queue holds it: whichever fields the poll selected, with the
 * controller's names. The API fills every other field of the container schema with its zero
 * value, as the Go dispatcher does.
 */
export interface ContainerRecordView {
  readonly uuid: string;
  readonly [field: string]: unknown;
}

/** One queue entry as the scheduler's latest pass left it. */
export interface QueueEntryView {
  readonly container: ContainerRecordView;
  readonly instanceTypes: readonly InstanceTypeView[];
  readonly instanceResources: InstanceResourcesView;
  readonly firstSeenAt: Date;
  /** What waiting users see (dispatcher spec §3.3); "" when nothing to say. */
  readonly schedulingStatus: string;
}

/** The scheduler's read side. */
export interface ContainersView {
  /** Entries in scheduler order, at most about a second old; null before the first pass. */
  containers(): readonly QueueEntryView[] | null;
}

/** One worker or pending create; field names are the JSON names of `/instances`. */
export interface InstanceView {
  readonly instance: string;
  readonly address: string;
  readonly price: number;
  readonly arvados_instance_type: string;
  readonly provider_instance_type: string;
  readonly last_container_uuid: string;
  /** RFC 3339 (Go's zero time for a pending create). */
  readonly last_busy: string;
  readonly running_container_uuids: readonly string[] | null;
  readonly worker_state: WorkerState;
  readonly idle_behavior: IdleBehavior;
}

/** The outcome of an admin action on one instance; a miss is a value. */
export type ActionResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** The pool's read and admin side. */
export interface PoolAdmin {
  instances(): readonly InstanceView[];
  /** One attempt to stop crunch-run for the container; false if no instance is starting or running it. */
  killContainer(uuid: string, reason: string): boolean;
  setIdleBehavior(id: string, behavior: IdleBehavior): ActionResult;
  /** Shut the instance down now; its containers die. */
  killInstance(id: string, reason: string): ActionResult;
}

/** Whether the dispatcher can do its job (Arvados: the runner binary is loadable). */
export interface HealthCheck {
  check(): { readonly healthy: true } | { readonly healthy: false; readonly error: string };
}

/** The registry surface the metrics endpoints need; prom-client's Registry satisfies it. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
  getMetricsAsJSON(): Promise<readonly PromMetricJson[]>;
}

/** prom-client's JSON form of one metric family. */
export interface PromMetricJson {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly values: readonly {
    readonly value: number;
    readonly labels: Readonly<Partial<Record<string, string | number>>>;
    readonly metricName?: string;
  }[];
}

export interface ManagementPorts {
  readonly scheduler: ContainersView;
  readonly pool: PoolAdmin;
  /** Absent: always healthy. */
  readonly health?: HealthCheck;
}
