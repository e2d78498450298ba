import {
  instanceId,
  systemClock,
  type Clock,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceSetId,
  type InstanceType,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import {
  DriverParametersError,
  ThrottleBackoff,
  errorMessage,
  type CreateRequest,
  type DriverContext,
  type Instance,
  type InstancePrice,
  type InstanceSet,
  type InstanceTags,
} from "@dispatch-cloud/cloud-driver-api";
import {
  createGceApi,
  type GceApi,
  type GceInstanceResource,
  type GceMetadata,
  type GceOperation,
} from "./api.js";
import {
  GceOperationError,
  classifyGceError,
  gceErrorFacts,
  isCapacityError,
  isZoneSpecificError,
  type QuotaInfo,
} from "./classify.js";
import { GceDriverError } from "./errors.js";
import {
  INSTANCE_SET_LABEL,
  badTagKey,
  instanceSetLabelValue,
  mergeTagsIntoMetadata,
  newInstanceName,
  tagsFromMetadata,
} from "./metadata.js";
import { createGceMetrics, type GceMetrics } from "./metrics.js";
import { parseGceParameters, resolveGceConfig, type GceConfig } from "./params.js";
import { gceQuotaGroup } from "./quota-group.js";
import { instanceResource, sourceImagePath } from "./resource.js";

/** Knobs for tests and embedders; the daemon passes none. */
export interface GceDriverOptions {
  /** Time for operation polling and throttle backoff. */
  readonly clock?: Clock;
  /** The Compute API to use instead of one built from the parameters. */
  readonly api?: GceApi;
  /** Least time between two polls of an unfinished zone operation (default 1 s). */
  readonly operationPollIntervalMs?: number;
  /** How long create and setTags wait for their zone operation (default 5 minutes). */
  readonly operationTimeoutMs?: number;
}

const DEFAULT_POLL_INTERVAL_MS = 1_000;
const DEFAULT_OPERATION_TIMEOUT_MS = 5 * 60_000;
/** setMetadata attempts when another writer changed the metadata in between. */
const SET_METADATA_ATTEMPTS = 3;

/**
 * Build the GCE instance set. Rejects with DriverParametersError (every problem, with its key
 * path) when DriverParameters, the credentials file or a ResourceTags key are unusable.
 */
export async function createGceInstanceSet(
  context: DriverContext,
  options: GceDriverOptions = {},
): Promise<GceInstanceSet> {
  const config = await resolveGceConfig(parseGceParameters(context.parameters));
  // Resource tags go into every VM's metadata; a key GCE refuses is a config error, found now.
  const badTags = Object.keys(context.sharedResourceTags).flatMap((k) => {
    const why = badTagKey(k);
    return why === undefined ? [] : [`Containers.CloudVMs.ResourceTags.${k}: ${why}`];
  });
  if (badTags.length > 0) throw new DriverParametersError(badTags);
  const api = options.api ?? createGceApi(config);
  const metrics = createGceMetrics(context.registry, config.zones);
  return new GceInstanceSet(config, context.instanceSetId, api, metrics, context.logger, options);
}

export class GceInstanceSet implements InstanceSet {
  readonly #clock: Clock;
  readonly #setLabel: string;
  readonly #createBackoff = new ThrottleBackoff();
  readonly #listBackoff = new ThrottleBackoff();
  readonly #changeBackoff = new ThrottleBackoff();
  readonly #pollIntervalMs: number;
  readonly #operationTimeoutMs: number;
  /** Where the next create starts in the zone list. */
  #currentZone = 0;
  #ownApi: boolean;

  constructor(
    readonly config: GceConfig,
    readonly instanceSetId: InstanceSetId,
    private readonly api: GceApi,
    private readonly metrics: GceMetrics,
    private readonly logger: Logger,
    options: GceDriverOptions = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    this.#setLabel = instanceSetLabelValue(instanceSetId);
    this.#pollIntervalMs = options.operationPollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.#ownApi = options.api === undefined;
  }

  /** The value of the `arvados_instance_set` label on this set's VMs. */
  get setLabel(): string {
    return this.#setLabel;
  }

  /**
   * Insert the VM and wait for the insert operation, since GCE reports a zone without capacity
   * only there. A zone-specific failure tries the next configured zone; the next create starts
   * at the zone that last succeeded, or that gave the final error.
   */
  async create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    signal?.throwIfAborted();
    for (const key of Object.keys(request.tags)) {
      const why = badTagKey(key);
      if (why !== undefined)
        throw new GceDriverError("invalid-tag", `cannot create instance: ${why}`);
    }
    const { instanceType } = request;
    const name = newInstanceName(this.#setLabel);
    const bootDiskSizeGb = await this.#bootDiskSize(request.imageId, signal);
    const zones = this.config.zones;
    const start = this.#currentZone;
    let errToReturn: unknown;
    for (let k = 0; k < zones.length; k++) {
      const index = (start + k) % zones.length;
      const zone = zones[index]!;
      const resource = instanceResource({
        config: this.config,
        zone,
        name,
        request,
        setLabel: this.#setLabel,
        bootDiskSizeGb,
      });
      let err: unknown;
      try {
        await this.#waitDone(zone, await this.api.insert(zone, resource, signal), signal);
      } catch (e) {
        err = e;
      }
      this.metrics.instanceStarts.labels(zone, err === undefined ? "1" : "0").inc();
      // Kept even on failure, so repeated failures start at (and report) each zone in turn.
      this.#currentZone = index;
      if (err === undefined) {
        this.#createBackoff.reset();
        this.logger.info(
          { Instance: `${zone}/${name}`, InstanceType: instanceType.Name, Zone: zone },
          "created instance",
        );
        return this.#created(zone, resource, signal);
      }
      // Report a capacity error if there was one: that is what the pool can act on.
      if (!isCapacityError(errToReturn) || isCapacityError(err)) errToReturn = err;
      if (!isZoneSpecificError(err) || k === zones.length - 1) break;
      this.logger.warn(
        { Zone: zone, error: errorMessage(err) },
        "instance insert failed, trying next zone",
      );
    }
    throw classifyGceError(errToReturn, this.#createBackoff, this.#clock.now());
  }

  /** The boot disk size to ask for: the image's own unless a larger minimum is configured. */
  async #bootDiskSize(imageId: string, signal?: AbortSignal): Promise<number | undefined> {
    const min = this.config.minBootDiskSizeGb;
    if (min === 0) return undefined;
    let imageGb: number;
    try {
      imageGb = await this.api.imageDiskSizeGb(
        sourceImagePath(imageId, this.config.project),
        signal,
      );
    } catch (err) {
      throw classifyGceError(err, this.#createBackoff, this.#clock.now());
    }
    return Math.max(min, imageGb);
  }

  /** The new VM as GCE now describes it, or as it was asked for (no address yet) if that fails. */
  async #created(
    zone: string,
    resource: GceInstanceResource,
    signal?: AbortSignal,
  ): Promise<Instance> {
    try {
      return new GceInstance(this, await this.api.get(zone, resource.name ?? "", signal));
    } catch (err) {
      // The VM exists; the next listing brings its address.
      this.logger.warn(
        { Instance: `${zone}/${resource.name ?? ""}`, error: errorMessage(err) },
        "cannot read the new instance; its address follows with the next listing",
      );
      return new GceInstance(this, { ...resource, zone, status: "PROVISIONING" });
    }
  }

  /**
   * Poll a zone operation until it is done, at most every `operationPollIntervalMs`, for at
   * most `operationTimeoutMs`. A finished operation with errors rejects with GceOperationError.
   */
  async #waitDone(zone: string, op: GceOperation, signal?: AbortSignal): Promise<GceOperation> {
    const deadline = this.#clock.now() + this.#operationTimeoutMs;
    let current = op;
    while (current.status !== "DONE") {
      if (typeof current.name !== "string" || current.name === "") {
        throw new GceDriverError("bad-response", "the API returned an operation without a name");
      }
      if (this.#clock.now() >= deadline) {
        throw new GceDriverError(
          "operation-timeout",
          `${current.operationType ?? ""} operation ${current.name} in ${zone} not done after ${this.#operationTimeoutMs / 1000}s`,
        );
      }
      const polled = this.#clock.now();
      current = await this.api.waitOperation(zone, current.name, signal);
      const rest = this.#pollIntervalMs - (this.#clock.now() - polled);
      if (current.status !== "DONE" && rest > 0) await this.#clock.sleep(rest, signal);
    }
    const errors = current.error?.errors ?? [];
    if (errors.length > 0) {
      throw new GceOperationError(
        current.name ?? "",
        errors.map((e) => ({
          code: e.code ?? "",
          message: e.message ?? "",
          ...quotaInfoOf(e.errorDetails),
        })),
        current.httpErrorStatusCode ?? undefined,
      );
    }
    return current;
  }

  /**
   * Every VM in the project (all zones, so a zone dropped from `Zones` still has its VMs
   * adopted and destroyed). When the filter names this set's InstanceSetID tag, only VMs with
   * the set's label are fetched; the caller filters on the tags themselves in any case.
   */
  async instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    const ours = Object.entries(filter).some(
      ([k, v]) => k.endsWith("InstanceSetID") && v === this.instanceSetId,
    );
    let listed: GceInstanceResource[];
    try {
      listed = await this.api.list(
        ours ? `labels.${INSTANCE_SET_LABEL} = "${this.#setLabel}"` : undefined,
        signal,
      );
    } catch (err) {
      throw classifyGceError(err, this.#listBackoff, this.#clock.now());
    }
    this.#listBackoff.reset();
    const out = listed.map((r) => new GceInstance(this, r));
    const perZone = new Map(this.config.zones.map((z) => [z, 0]));
    for (const i of out) perZone.set(i.zone, (perZone.get(i.zone) ?? 0) + 1);
    for (const [zone, n] of perZone) this.metrics.instances.labels(zone).set(n);
    return out;
  }

  instanceQuotaGroup(type: InstanceType): string {
    return gceQuotaGroup(type);
  }

  /** @internal Merge `tags` into the VM's metadata, retrying when it changed meanwhile. */
  async setTags(inst: GceInstance, tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    for (const key of Object.keys(tags)) {
      const why = badTagKey(key);
      if (why !== undefined) throw new GceDriverError("invalid-tag", `cannot set tags: ${why}`);
    }
    let metadata: GceMetadata = inst.metadata;
    for (let attempt = 1; ; attempt++) {
      try {
        const op = await this.api.setMetadata(
          inst.zone,
          inst.name,
          {
            fingerprint: metadata.fingerprint ?? null,
            items: mergeTagsIntoMetadata(metadata.items, tags),
          },
          signal,
        );
        await this.#waitDone(inst.zone, op, signal);
        this.#changeBackoff.reset();
        return;
      } catch (err) {
        if (!isFingerprintMismatch(err) || attempt >= SET_METADATA_ATTEMPTS) {
          throw classifyGceError(err, this.#changeBackoff, this.#clock.now());
        }
      }
      // Someone else changed the metadata: merge into what is there now.
      try {
        metadata = (await this.api.get(inst.zone, inst.name, signal)).metadata ?? {};
      } catch (err) {
        throw classifyGceError(err, this.#changeBackoff, this.#clock.now());
      }
    }
  }

  /** @internal Ask GCE to delete the VM; an instance that is already gone counts as deleted. */
  async destroy(inst: GceInstance, signal?: AbortSignal): Promise<void> {
    try {
      await this.api.delete(inst.zone, inst.name, signal);
    } catch (err) {
      if (gceErrorFacts(err)?.httpStatus === 404) {
        this.logger.info({ Instance: inst.id }, "instance to delete was already gone");
        return;
      }
      throw classifyGceError(err, this.#changeBackoff, this.#clock.now());
    }
    this.#changeBackoff.reset();
    this.logger.info({ Instance: inst.id }, "deleting instance");
  }

  async stop(): Promise<void> {
    // Clients we built hold sockets; an API passed in belongs to the caller.
    if (this.#ownApi) {
      this.#ownApi = false;
      await this.api.close();
    }
  }
}

function isFingerprintMismatch(err: unknown): boolean {
  const facts = gceErrorFacts(err);
  return facts?.httpStatus === 412 || (facts?.reasons.includes("conditionNotMet") ?? false);
}

function quotaInfoOf(details: readonly { quotaInfo?: QuotaInfo | null }[] | null | undefined): {
  quotaInfo?: QuotaInfo;
} {
  const info = details?.find((d) => d.quotaInfo != null)?.quotaInfo;
  return info == null ? {} : { quotaInfo: info };
}

/** The last segment of a GCE resource URL (`…/zones/us-central1-a` → `us-central1-a`). */
function lastSegment(url: string | null | undefined): string {
  return (url ?? "").replace(/.*\//, "");
}

/** A snapshot of one GCE VM as listed or created. */
export class GceInstance implements Instance {
  readonly id: InstanceId;
  readonly providerType: string;
  readonly address: string;
  readonly remoteUser: string;
  readonly tags: InstanceTags;
  readonly zone: string;
  readonly name: string;
  /** GCE's status: PROVISIONING, STAGING, RUNNING, STOPPING, TERMINATED, … */
  readonly status: string;
  /** The metadata as listed, with its fingerprint, for setTags. */
  readonly metadata: GceMetadata;
  readonly labels: Readonly<Record<string, string>>;

  constructor(
    private readonly set: GceInstanceSet,
    resource: GceInstanceResource,
  ) {
    this.zone = lastSegment(resource.zone);
    this.name = resource.name ?? "";
    // `zone/name` is unique in the project and names the VM for every call.
    this.id = instanceId(`${this.zone}/${this.name}`);
    this.providerType = lastSegment(resource.machineType);
    this.address = resource.networkInterfaces?.[0]?.networkIP ?? "";
    this.remoteUser = set.config.adminUsername;
    this.metadata = {
      fingerprint: resource.metadata?.fingerprint ?? null,
      items: (resource.metadata?.items ?? []).map((i) => ({
        key: i.key ?? "",
        value: i.value ?? "",
      })),
    };
    this.tags = Object.freeze(tagsFromMetadata(this.metadata.items));
    this.labels = Object.freeze({ ...resource.labels });
    this.status = resource.status ?? "";
  }

  toString(): string {
    return this.id;
  }

  /** Adds or overwrites the given tags in the VM's metadata; other items stay. */
  setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    return this.set.setTags(this, tags, signal);
  }

  /**
   * Empty: GCE has no per-instance price history (Spot prices change at most monthly and are
   * published only in the billing catalog), so crunch-run uses the configured Price.
   */
  priceHistory(_type: InstanceType): readonly InstancePrice[] {
    return [];
  }

  destroy(signal?: AbortSignal): Promise<void> {
    return this.set.destroy(this, signal);
  }

  verifyHostKey(): Promise<HostKeyVerdict> {
    // The caller proves the host key by reading the instance secret over the connection.
    return Promise.resolve({ kind: "not-implemented" });
  }
}
