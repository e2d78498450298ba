import type {
  HostKeyChallengeSession,
  HostKeyVerdict,
  InstanceId,
  InstanceSetId,
  InstanceType,
  Logger,
} from "@dispatch-cloud/arvados-types";
import type { Registry } from "prom-client";

/** VM tags. Values are strings; keys are compared exactly. */
export type InstanceTags = Readonly<Record<string, string>>;

/** One point of price history. */
export interface InstancePrice {
  readonly StartTime: Date;
  readonly Price: number;
}

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
