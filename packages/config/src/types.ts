import type { InstanceType } from "@dispatch-cloud/arvados-types";

/**
 * The loaded cluster config. Key names are Arvados's own (PascalCase, as operators write them
 * in config.yml) so a dump reads like the file. Durations are milliseconds, byte sizes bytes.
 */

/** Milliseconds. */
export type Duration = number;
/** Bytes. */
export type ByteSize = number;

/** A config section this package passes through without interpreting it. */
export type RawSection = Readonly<Record<string, unknown>>;

export interface CloudVMsConfig {
  readonly Enable: boolean;
  readonly BootProbeCommand: string;
  readonly InstanceInitCommand: string;
  readonly SSHPort: string;
  readonly SyncInterval: Duration;
  readonly TimeoutIdle: Duration;
  readonly TimeoutBooting: Duration;
  readonly TimeoutProbe: Duration;
  readonly TimeoutShutdown: Duration;
  readonly MaxCloudOpsPerSecond: number;
  readonly MaxConcurrentInstanceCreateOps: number;
  readonly MaxInstances: number;
  readonly MaxRunningContainersPerInstance: number;
  readonly InitialQuotaEstimate: number;
  readonly SupervisorFraction: number;
  readonly PollInterval: Duration;
  readonly ProbeInterval: Duration;
  readonly MaxProbesPerSecond: number;
  readonly TimeoutSignal: Duration;
  readonly TimeoutTERM: Duration;
  readonly TimeoutStaleRunLock: Duration;
  readonly ImageID: string;
  readonly ResourceTags: Readonly<Record<string, string>>;
  readonly TagKeyPrefix: string;
  /** `ec2`, `azure`, `loopback`, ... (checked by whoever picks the driver). */
  readonly Driver: string;
  /** Passed to the driver as written; the driver validates it (keys case-insensitively). */
  readonly DriverParameters: RawSection;
  readonly DeployRunnerBinary: string;
  readonly DeployRunnerDirectory: string;
  readonly DeployPublicKey: boolean;
}

export interface ContainersLoggingConfig {
  readonly LogUpdatePeriod: Duration;
  readonly LogUpdateSize: ByteSize;
  /** Other Logging keys, as written. */
  readonly [other: string]: unknown;
}

export interface ShellAccessConfig {
  readonly Admin: boolean;
  readonly User: boolean;
}

export interface ContainersConfig {
  /** A set: written as a list or as a map whose keys are the members. */
  readonly SupportedDockerImageFormats: readonly string[];
  readonly LogReuseDecisions: boolean;
  readonly DefaultKeepCacheRAM: ByteSize;
  readonly MaxDispatchAttempts: number;
  readonly MaxRetryAttempts: number;
  readonly AlwaysUsePreemptibleInstances: boolean;
  readonly PreemptiblePriceFactor: number;
  readonly MaximumPriceFactor: number;
  /** As written: PEM text or `file:///abs/path`. Secret. The parsed key is `LoadedConfig.dispatchKey`. */
  readonly DispatchPrivateKey: string;
  readonly StaleLockTimeout: Duration;
  readonly CrunchRunCommand: string;
  readonly CrunchRunArgumentsList: readonly string[];
  readonly ReserveExtraRAM: ByteSize;
  readonly MinRetryPeriod: Duration;
  readonly RuntimeEngine: string;
  readonly LocalKeepBlobBuffersPerVCPU: number;
  readonly LocalKeepLogsToContainerLog: "none" | "all" | "errors";
  readonly Logging: ContainersLoggingConfig;
  readonly ShellAccess: ShellAccessConfig;
  readonly SLURM: RawSection;
  readonly LSF: RawSection;
  readonly CloudVMs: CloudVMsConfig;
}

export interface InternalUrlConfig {
  readonly ListenURL: string;
  readonly Rendezvous: string;
}

export interface ServiceConfig {
  /** Keyed by URL (an empty path normalised to `/`). */
  readonly InternalURLs: Readonly<Record<string, InternalUrlConfig>>;
  readonly ExternalURL: string;
  readonly [other: string]: unknown;
}

export interface ApiConfig {
  readonly MaxConcurrentRequests: number;
  readonly MaxQueuedRequests: number;
  readonly RequestTimeout: Duration;
  readonly MaxQueueTimeForLockRequests: Duration;
  readonly MaxItemsPerResponse: number;
  readonly [other: string]: unknown;
}

export interface TlsConfig {
  readonly Insecure: boolean;
  readonly [other: string]: unknown;
}

export interface PostgreSQLConfig {
  readonly Connection: RawSection;
  readonly ConnectionPool: number;
  readonly [other: string]: unknown;
}

export interface SystemLogsConfig {
  readonly Format: string;
  readonly LogLevel: string;
  readonly [other: string]: unknown;
}

/** Cluster sections other components own; kept as written so dumps and crunch-run see them. */
export const passthroughSections = [
  "AuditLogs",
  "Git",
  "Login",
  "Mail",
  "RemoteClusters",
  "Workbench",
] as const;

/**
 * Sections only crunch-run (and the keepstore it starts) reads, with Arvados's defaults so it
 * gets what Go's dispatcher would send. Keys not listed keep the values written.
 */
export interface CollectionsConfig {
  readonly DefaultReplication: number;
  /** Secret. */
  readonly BlobSigningKey: string;
  readonly BlobSigningTTL: Duration;
  readonly [other: string]: unknown;
}

export interface UsersConfig {
  /** Secret. */
  readonly AnonymousUserToken: string;
  readonly [other: string]: unknown;
}

/** One Keep volume (`Volumes.<uuid>`). */
export interface VolumeConfig {
  readonly AccessViaHosts: Readonly<Record<string, { readonly ReadOnly: boolean }>>;
  readonly ReadOnly: boolean;
  readonly Replication: number;
  readonly StorageClasses: Readonly<Record<string, boolean>>;
  readonly Driver: string;
  /** As written; may hold secrets (AccessKeyID, SecretAccessKey, StorageAccountKey). */
  readonly DriverParameters: unknown;
  readonly [other: string]: unknown;
}

export interface StorageClassConfig {
  readonly Default: boolean;
  readonly Priority: number;
  readonly [other: string]: unknown;
}

export type PassthroughSection = (typeof passthroughSections)[number];

export interface ClusterConfig extends Partial<Readonly<Record<PassthroughSection, unknown>>> {
  /** Secret. */
  readonly ManagementToken: string;
  /** Secret. */
  readonly SystemRootToken: string;
  readonly Services: Readonly<Record<string, ServiceConfig>>;
  readonly API: ApiConfig;
  readonly TLS: TlsConfig;
  readonly PostgreSQL: PostgreSQLConfig;
  readonly SystemLogs: SystemLogsConfig;
  readonly Containers: ContainersConfig;
  /** Keyed by name, including automatic preemptible twins. */
  readonly InstanceTypes: Readonly<Record<string, InstanceType>>;
  readonly Collections: CollectionsConfig;
  readonly Users: UsersConfig;
  /** Keyed by volume UUID. */
  readonly Volumes: Readonly<Record<string, VolumeConfig>>;
  readonly StorageClasses: Readonly<Record<string, StorageClassConfig>>;
}
