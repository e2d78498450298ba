/*
 * What the management API reads and does, declared here so this package imports no pool or
 * scheduler. The daemon passes its real scheduler and pool (adapting where names differ);
 * tests pass small fakes. The data they carry is arvados-types' vocabulary.
 */
import type {
  ActionResult,
  IdleBehavior,
  InstanceView,
  QueueEntry,
} from "@dispatch-cloud/arvados-types";

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
export interface QueueEntryView extends QueueEntry<ContainerRecordView> {
  /** What waiting users see (dispatcher spec §3.3); "" when nothing to say. */
  readonly schedulingStatus: string;
}

/** The scheduler's read side. */
export interface ContainersView {
  /** Entries in scheduler order, at most about a second old; null before the first pass. */
  containers(): readonly QueueEntryView[] | null;
}

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
