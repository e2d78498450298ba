import type { Registry } from "prom-client";

/** A provider's id for one VM: stable for the VM's life, the key for de-duplication. */
export type InstanceId = string & { readonly __brand: "InstanceId" };

/** Identifies one dispatcher's set of VMs; written as a tag value on every VM it creates. */
export type InstanceSetId = string & { readonly __brand: "InstanceSetId" };

export const instanceId = (id: string): InstanceId => id as InstanceId;
export const instanceSetId = (id: string): InstanceSetId => id as InstanceSetId;

/** VM tags. Values are strings; keys are compared exactly. */
export type InstanceTags = Readonly<Record<string, string>>;

/** GPU capabilities of an instance type (`InstanceTypes.<name>.GPU` in config.yml). */
export interface GpuFeatures {
  /** "cuda", "rocm", or "" for none. */
  readonly Stack: string;
  readonly DriverVersion: string;
  readonly HardwareTarget: string;
  readonly DeviceCount: number;
  /** Bytes of memory per device. */
  readonly VRAM: number;
}

/**
 * One configured instance type, with Arvados's field names. Sizes are bytes, Price is the hourly
 * price in the cluster's currency.
 */
export interface InstanceType {
  /** The key of the type in `InstanceTypes`; written in the InstanceType tag. */
  readonly Name: string;
  /** The provider's type name (e.g. `m5.large`). */
  readonly ProviderType: string;
  readonly VCPUs: number;
  readonly RAM: number;
  readonly IncludedScratch: number;
  readonly AddedScratch: number;
  /** Always IncludedScratch + AddedScratch. */
  readonly Scratch: number;
  readonly Price: number;
  readonly Preemptible: boolean;
  readonly GPU: GpuFeatures;
}

/** One point of price history. */
export interface InstancePrice {
  readonly StartTime: Date;
  readonly Price: number;
}

/** What a driver may use to check a host key over the new, not yet trusted, SSH connection. */
export interface HostKeyChallengeSession {
  /** Run a command with empty stdin on the connection being verified. */
  run(
    command: string,
    signal?: AbortSignal,
  ): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer }>;
}

/**
 * The outcome of a host-key check. `not-implemented` means the driver has no mechanism of its
 * own; the caller then falls back to reading the instance secret over the connection.
 */
export type HostKeyVerdict =
  | { readonly kind: "verified" }
  | { readonly kind: "mismatch"; readonly reason: string }
  | { readonly kind: "not-implemented" };

/**
 * One VM as a driver sees it. Objects are snapshots: `tags` is as of when the object was listed
 * and may be stale after `setTags`; two objects for one VM may exist, compare by `id`.
 */
export interface Instance {
  readonly id: InstanceId;
  /** The provider's instance type, matching `InstanceTypes.<name>.ProviderType`. */
  readonly providerType: string;
  /** SSH host or `host:port`; "" while not known yet. */
  readonly address: string;
  /** The user the dispatcher logs in as. */
  readonly remoteUser: string;
  readonly tags: InstanceTags;
  /** Replace the VM's tags with these (drivers may merge; callers pass the complete set). */
  setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void>;
  /**
   * Recent prices for running this VM, newest first; may be empty. The configured type is given
   * so a driver can add the cost of storage it attached for AddedScratch.
   */
  priceHistory(type: InstanceType): readonly InstancePrice[];
  /** Terminate the VM. Resolves once the provider accepted the request. */
  destroy(signal?: AbortSignal): Promise<void>;
  /** Decide whether `hostKey` (SSH wire format) is this VM's real host key. */
  verifyHostKey(
    hostKey: Buffer,
    session: HostKeyChallengeSession,
    signal?: AbortSignal,
  ): Promise<HostKeyVerdict>;
}

export interface CreateRequest {
  readonly instanceType: InstanceType;
  readonly imageId: string;
  /** Every tag the VM must carry, including the instance-set id. */
  readonly tags: InstanceTags;
  /** A shell script (without `#!`) the VM must run at first boot. */
  readonly initCommand: string;
  /** An authorized_keys line to install for the remote user, or null. */
  readonly publicKey: string | null;
}

/**
 * A set of VMs in one cloud account, owned by one dispatcher.
 *
 * The ownership promise every driver makes:
 * - everything it creates that outlives a call (VMs, and NICs or disks where the cloud has
 *   them) carries the instance-set id, as a tag or in its name;
 * - it adopts existing resources that carry that id, as if it had created them;
 * - it never modifies or deletes anything that does not carry the id, except an instance the
 *   caller passes to `destroy`.
 *
 * The caller always passes the instance-set id tag to `create` and `instances`, so a driver
 * need not add or filter it by itself.
 */
export interface InstanceSet {
  /**
   * Create one VM. Errors should be the driver-API kinds (rate limit, quota, capacity) where
   * they apply, so the caller can back off correctly.
   */
  create(request: CreateRequest, signal?: AbortSignal): Promise<Instance>;
  /**
   * Every VM, booting and shutting-down ones included. A driver may return only those carrying
   * every tag in `filter`; callers drop the others anyway.
   */
  instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]>;
  /** The provider quota bucket for a type; preemptible and on-demand types differ. */
  instanceQuotaGroup(type: InstanceType): string;
  /** Stop background work and release resources. */
  stop(): Promise<void>;
}

/** Structured logging as every library in this project takes it. */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child(fields: Record<string, unknown>): Logger;
}

/** What a driver factory receives. */
export interface DriverContext {
  /**
   * `Containers.CloudVMs.DriverParameters` as written in config.yml. Drivers match keys
   * case-insensitively, as Arvados does, and validate them themselves.
   */
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly instanceSetId: InstanceSetId;
  /** `CloudVMs.ResourceTags`, for non-VM resources a driver creates. */
  readonly sharedResourceTags: InstanceTags;
  readonly logger: Logger;
  /** Where to register driver metrics; null (cloudtest) means register none. */
  readonly registry: Registry | null;
}

/** Builds an InstanceSet from config; rejects with a clear message on bad parameters. */
export type DriverFactory = (context: DriverContext) => Promise<InstanceSet>;
