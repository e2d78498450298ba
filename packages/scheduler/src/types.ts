// The scheduler's view of the world: the container records it reads, the instance types it
// packs, and the two ports (ContainerQueue, WorkerPool) it drives. It imports no workspace
// package; the daemon passes the real queue and pool, adapting names where they differ.

/** An Arvados container UUID (`zzzzz-dz642-…`). */
export type ContainerUuid = string & { readonly __brand: "ContainerUuid" };
export const containerUuid = (s: string): ContainerUuid => s as ContainerUuid;

/** A provider instance id; "" for a create that has not returned yet. */
export type InstanceId = string & { readonly __brand: "InstanceId" };
export const instanceId = (s: string): InstanceId => s as InstanceId;

export type ContainerState = "Queued" | "Locked" | "Running" | "Complete" | "Cancelled";

/** GPU capabilities of an instance type (`InstanceTypes.<name>.GPU`). */
export interface GpuFeatures {
  readonly Stack: string;
  readonly DriverVersion: string;
  readonly HardwareTarget: string;
  readonly DeviceCount: number;
  /** Bytes per device. */
  readonly VRAM: number;
}

/** One configured instance type, Arvados field names (same shape as cloud-driver-api's). */
export interface InstanceType {
  readonly Name: string;
  readonly ProviderType: string;
  readonly VCPUs: number;
  readonly RAM: number;
  readonly IncludedScratch: number;
  readonly AddedScratch: number;
  /** IncludedScratch + AddedScratch. */
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
  /** Bytes per device. */
  readonly GPUVRAM: number;
}

/** The container fields the scheduler reads, with the controller's field names. */
export interface QueuedContainer {
  readonly uuid: ContainerUuid;
  readonly state: ContainerState;
  readonly priority: number;
  readonly scheduling_parameters: { readonly supervisor?: boolean; readonly preemptible?: boolean };
  /** RFC 3339, as the controller sends it. */
  readonly created_at: string;
}

/** One cached queue entry. Types and resources are computed once when the entry is added. */
export interface QueueEntry<C extends QueuedContainer = QueuedContainer> {
  readonly container: C;
  /** Eligible types, cheapest first; empty only for a non-Queued/Locked unsatisfiable entry. */
  readonly instanceTypes: readonly InstanceType[];
  readonly instanceResources: InstanceResources;
  readonly firstSeenAt: Date;
}

/** A queue snapshot: every entry was fetched no earlier than `threshold`. */
export interface QueueSnapshot<C extends QueuedContainer = QueuedContainer> {
  readonly entries: ReadonlyMap<ContainerUuid, QueueEntry<C>>;
  readonly threshold: Date;
}

/** The outcome of a lock/unlock/cancel/poll: failures are values, with the cause for the log. */
export type QueueOpResult = { readonly ok: true } | { readonly ok: false; readonly error: Error };

/** Reads of the queue cache: never do I/O. */
export interface QueueCache<C extends QueuedContainer = QueuedContainer> {
  entries(): QueueSnapshot<C>;
  get(uuid: ContainerUuid): C | undefined;
  /** Drop a finished entry (Complete/Cancelled, or Queued with priority 0); otherwise no-op. */
  forget(uuid: ContainerUuid): void;
  /** Call `listener` after every poll and every applied lock/unlock/cancel. Returns unsubscribe. */
  subscribe(listener: () => void): () => void;
}

/** Queue calls that reach the controller. */
export interface QueueActions {
  /** Poll the controller and apply the result to the cache. */
  update(signal?: AbortSignal): Promise<QueueOpResult>;
  lock(uuid: ContainerUuid, signal?: AbortSignal): Promise<QueueOpResult>;
  unlock(uuid: ContainerUuid, signal?: AbortSignal): Promise<QueueOpResult>;
  cancel(uuid: ContainerUuid, signal?: AbortSignal): Promise<QueueOpResult>;
}

/** The container queue port. */
export interface ContainerQueue<C extends QueuedContainer = QueuedContainer>
  extends QueueCache<C>, QueueActions {}

export type WorkerState = "unknown" | "booting" | "idle" | "running" | "shutdown";
export type IdleBehavior = "run" | "hold" | "drain";

/**
 * One worker, or one pending create (instance "", state booting). Field names are the
 * management API's JSON names (cloud-side spec §5.13), so the pool can hand out what it serves.
 */
export interface InstanceView {
  readonly instance: InstanceId;
  readonly price: number;
  readonly arvados_instance_type: string;
  readonly worker_state: WorkerState;
  readonly idle_behavior: IdleBehavior;
  /** Containers running or starting there; null for a pending create. */
  readonly running_container_uuids: readonly ContainerUuid[] | null;
}

/** Pool questions about room to grow, and the calls that change the number of VMs. */
export interface PoolCapacity {
  /** True while the cloud account (or MaxInstances) allows no new instance. */
  atQuota(): boolean;
  /** True while creates of this type are paused after a capacity error. */
  atCapacity(type: InstanceType): boolean;
  /** Start creating a VM; returns its placeholder view, or null if refused (throttle, quota…). */
  create(type: InstanceType): InstanceView | null;
  /** Shut down an idle/booting VM; false for unknown ids, held VMs and other states. */
  shutdown(id: InstanceId): boolean;
}

/** Pool snapshots. */
export interface PoolView {
  instances(): readonly InstanceView[];
  /** Workers by state, pending creates excluded; resolves once the first cloud listing loaded. */
  countWorkers(signal?: AbortSignal): Promise<Readonly<Partial<Record<WorkerState, number>>>>;
  /**
   * Containers the pool knows: value null while crunch-run runs or starts, else the time it
   * exited (kept until forgetContainer).
   */
  running(): ReadonlyMap<ContainerUuid, Date | null>;
  /** Call `listener` on any worker change. Returns unsubscribe. */
  subscribe(listener: () => void): () => void;
}

/** Pool calls about one container. */
export interface PoolContainers {
  /** Start crunch-run on an idle/running `run` worker; false if that is not possible now. */
  startContainer(id: InstanceId, container: QueuedContainer): boolean;
  /** Ask crunch-run to stop; true if a process for this container is still there. */
  killContainer(uuid: ContainerUuid, reason: string): boolean;
  /** Drop the exited placeholder, if any. */
  forgetContainer(uuid: ContainerUuid): void;
}

/** The worker pool port. */
export interface WorkerPool extends PoolCapacity, PoolView, PoolContainers {}

/** Structured logging as every library in this project takes it. */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Time and timers, injectable so tests run on a manual clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
export type TimerHandle = { readonly __brand: "TimerHandle" };

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimeout: (h) => clearTimeout(h as unknown as ReturnType<typeof setTimeout>),
};
