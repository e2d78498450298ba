import type {
  ContainerUuid,
  InstanceSetId,
  InstanceType,
  InstanceView,
  WorkerState,
} from "@dispatch-cloud/arvados-types";

/** How a worker's boot ended (metric label); each worker reports at most one. */
export const BOOT_OUTCOMES = ["failure", "success", "aborted", "disappeared"] as const;
export type BootOutcome = (typeof BOOT_OUTCOMES)[number];

/** Why `create` declined. */
export type CreateRefusal =
  "runner-unavailable" | "at-capacity" | "at-quota" | "throttled" | "max-concurrent-creates";

export type CreateResult =
  | { readonly ok: true; readonly view: InstanceView }
  | { readonly ok: false; readonly reason: CreateRefusal };

/**
 * The part of a container record StartContainer needs. The creation time feeds the
 * queue→crunch-run latency metric; either form is accepted (a controller record has
 * `created_at`).
 */
export interface ContainerToStart {
  readonly uuid: ContainerUuid | string;
  readonly createdAt?: Date;
  /** RFC 3339, as the controller sends it. */
  readonly created_at?: string;
}

/**
 * The pool's settings, derived by the caller from `Clusters.<id>.Containers` (and
 * `CloudVMs`). Durations are milliseconds; a value ≤ 0 means the Arvados default.
 */
export interface WorkerPoolConfig {
  readonly instanceSetId: InstanceSetId;
  /** `ClusterID`: `--list` lines for other clusters are ignored. */
  readonly clusterId: string;
  /** `InstanceTypes`, keyed by name. */
  readonly instanceTypes: Readonly<Record<string, InstanceType>>;
  readonly imageId: string;
  /** `CloudVMs.TagKeyPrefix` (default `Arvados`). */
  readonly tagKeyPrefix?: string;
  /** `CloudVMs.BootProbeCommand`; "" means `true`. */
  readonly bootProbeCommand: string;
  readonly instanceInitCommand?: string;
  /** `CloudVMs.DeployRunnerBinary`: a local file to install on every VM; "" installs nothing. */
  readonly deployRunnerBinary: string;
  /** `CloudVMs.DeployRunnerDirectory` (default `/tmp/arvados-crunch-run`). */
  readonly deployRunnerDirectory?: string;
  /** `Containers.CrunchRunCommand`, used when nothing is deployed (default `crunch-run`). */
  readonly crunchRunCommand?: string;
  /** `Containers.RuntimeEngine` (default `docker`). */
  readonly runtimeEngine?: string;
  readonly crunchRunArgumentsList?: readonly string[];
  /** An authorized_keys line to install on new VMs, or null (`DeployPublicKey: false`). */
  readonly publicKey: string | null;
  readonly maxProbesPerSecond?: number;
  /** 0 = unlimited. */
  readonly maxConcurrentInstanceCreateOps?: number;
  /** 0 = unlimited. */
  readonly maxInstances?: number;
  readonly probeIntervalMs?: number;
  readonly syncIntervalMs?: number;
  readonly timeoutIdleMs?: number;
  readonly timeoutBootingMs?: number;
  readonly timeoutProbeMs?: number;
  readonly timeoutShutdownMs?: number;
  readonly timeoutTermMs?: number;
  readonly timeoutSignalMs?: number;
  readonly timeoutStaleRunLockMs?: number;
  /** What crunch-run gets in its environment (never in argv). */
  readonly apiHost: string;
  readonly apiInsecure: boolean;
  readonly systemRootToken: string;
  /** `Containers.LocalKeepBlobBuffersPerVCPU`; > 0 also sends the cluster config. */
  readonly localKeepBlobBuffersPerVcpu: number;
  /** `CloudVMs.Driver`: `ec2` turns on crunch-run's spot interruption check. */
  readonly driver: string;
  /**
   * The whole cluster config in Go's JSON encoding (durations as strings, sizes as integers,
   * no ClusterID), sent to crunch-run as `Cluster` when LocalKeepBlobBuffersPerVCPU > 0.
   */
  readonly clusterConfigJson?: unknown;
}

/** The per-state worker counts of `countWorkers`. */
export type WorkerCounts = Readonly<Record<WorkerState, number>>;
