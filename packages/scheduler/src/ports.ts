// The two ports the scheduler drives: the container queue and the worker pool. The data they
// carry (queue entries, instance views, ids) is the shared vocabulary of arvados-types; the
// daemon passes the real queue and pool.
import type {
  ContainerUuid,
  InstanceId,
  InstanceType,
  InstanceView,
  QueueOpResult,
  QueueSnapshot,
  QueuedContainer,
  WorkerState,
} from "@dispatch-cloud/arvados-types";

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
