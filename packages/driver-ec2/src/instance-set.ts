import {
  CreateTagsCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2ClientConfig,
  type Instance as AwsInstance,
  type RunInstancesCommandInput,
} from "@aws-sdk/client-ec2";
import {
  instanceId,
  systemClock,
  type Clock,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceType,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import {
  errorMessage,
  type CreateRequest,
  type DriverContext,
  type Instance,
  type InstancePrice,
  type InstanceSet,
  type InstanceTags,
} from "@dispatch-cloud/cloud-driver-api";
import {
  classifyEc2Error,
  isCapacityError,
  isSubnetSpecificError,
  ThrottleBackoff,
} from "./classify.js";
import { Ec2DriverError } from "./errors.js";
import { formatGoFloat } from "./go-format.js";
import { KeyPairResolver, signalOption } from "./keypair.js";
import { createEc2Metrics, type Ec2Metrics } from "./metrics.js";
import { parseEc2Parameters, type Ec2Config } from "./params.js";
import { ec2QuotaGroup } from "./quota-group.js";
import { SpotPriceCache } from "./spot-prices.js";

const GiB = 2 ** 30;

/** Knobs for tests and embedders; the daemon passes none. */
export interface Ec2DriverOptions {
  /** Time for throttle backoff and the spot price cache. */
  readonly clock?: Pick<Clock, "now">;
  /** A client to use instead of one built from the parameters (e.g. a mocked one). */
  readonly client?: EC2Client;
  /** DescribeInstances MaxResults (5–1000); unset asks AWS for its default page size. */
  readonly listPageSize?: number;
}

/** The AWS client config the DriverParameters describe. */
export function ec2ClientConfig(config: Ec2Config): EC2ClientConfig {
  return {
    // The pool owns retries and backoff; the SDK must surface every error at once.
    maxAttempts: 1,
    ...(config.region === "" ? {} : { region: config.region }),
    ...(config.endpoint === "" ? {} : { endpoint: config.endpoint }),
    // Both keys empty: the SDK's default chain (environment, shared config, instance role).
    ...(config.accessKeyId === ""
      ? {}
      : {
          credentials: {
            accessKeyId: config.accessKeyId,
            secretAccessKey: config.secretAccessKey,
          },
        }),
  };
}

/**
 * Build the EC2 instance set. Rejects with DriverParametersError (every problem, with its key
 * path) when DriverParameters are invalid.
 */
export async function createEc2InstanceSet(
  context: DriverContext,
  options: Ec2DriverOptions = {},
): Promise<Ec2InstanceSet> {
  const logger = context.logger.child({ driver: "ec2" });
  const config = parseEc2Parameters(context.parameters, logger);
  const client = options.client ?? new EC2Client(ec2ClientConfig(config));
  const metrics = createEc2Metrics(context.registry, config.subnetIds);
  return new Ec2InstanceSet(config, client, metrics, logger, options);
}

export class Ec2InstanceSet implements InstanceSet {
  readonly #clock: Pick<Clock, "now">;
  readonly #keyPairs: KeyPairResolver;
  readonly #spotPrices: SpotPriceCache;
  readonly #createBackoff = new ThrottleBackoff();
  readonly #listBackoff = new ThrottleBackoff();
  /** Where the next Create starts in the subnet list. */
  #currentSubnet = 0;
  #ownClient: boolean;

  constructor(
    readonly config: Ec2Config,
    private readonly client: EC2Client,
    private readonly metrics: Ec2Metrics,
    private readonly logger: Logger,
    private readonly options: Ec2DriverOptions = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    this.#keyPairs = new KeyPairResolver(client);
    this.#spotPrices = new SpotPriceCache(client, config.spotPriceUpdateIntervalMs, logger);
    this.#ownClient = options.client === undefined;
  }

  async create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    signal?.throwIfAborted();
    const { instanceType } = request;
    // Key pair failures are not cloud-state errors the pool could back off from; pass them as is.
    const keyName =
      request.publicKey === null
        ? undefined
        : await this.#keyPairs.resolve(request.publicKey, signal);
    const input = this.runInstancesInput(request, keyName);
    const subnets = this.config.subnetIds;
    const start = this.#currentSubnet;
    let errToReturn: unknown;
    let instance: AwsInstance | undefined;
    for (let k = 0; ; k++) {
      const index = subnets.length === 0 ? 0 : (start + k) % subnets.length;
      const subnet = subnets[index] ?? "";
      if (subnet !== "") input.NetworkInterfaces![0]!.SubnetId = subnet;
      let err: unknown;
      try {
        const resp = await this.client.send(new RunInstancesCommand(input), signalOption(signal));
        instance = resp.Instances?.[0];
        if (instance === undefined) {
          err = new Ec2DriverError(
            "bad-response",
            "RunInstances succeeded but returned no instance",
          );
        }
      } catch (e) {
        err = e;
      }
      this.metrics.instanceStarts.labels(subnet, err === undefined ? "1" : "0").inc();
      // Report the last capacity error if there was one, since that is what the pool can act on.
      if (err !== undefined && (!isCapacityError(errToReturn) || isCapacityError(err)))
        errToReturn = err;
      if (err !== undefined && isSubnetSpecificError(err) && k < subnets.length - 1) {
        this.logger.warn(
          { SubnetID: subnet, error: errorMessage(err) },
          "RunInstances failed, trying next subnet",
        );
        continue;
      }
      // Kept even on failure, so repeated failures start at (and report) each subnet in turn.
      this.#currentSubnet = index;
      if (err === undefined) break;
      throw classifyEc2Error(errToReturn, this.#createBackoff, this.#clock.now());
    }
    this.#createBackoff.reset();
    this.logger.info(
      { Instance: instance!.InstanceId, InstanceType: instanceType.Name },
      "created instance",
    );
    return new Ec2Instance(this, instance!, "");
  }

  /** The RunInstances request for one attempt, before the subnet is chosen. */
  runInstancesInput(request: CreateRequest, keyName: string | undefined): RunInstancesCommandInput {
    const { instanceType } = request;
    const input: RunInstancesCommandInput = {
      ImageId: request.imageId,
      InstanceType: instanceType.ProviderType as RunInstancesCommandInput["InstanceType"],
      MinCount: 1,
      MaxCount: 1,
      NetworkInterfaces: [
        {
          AssociatePublicIpAddress: false,
          DeleteOnTermination: true,
          DeviceIndex: 0,
          ...(this.config.securityGroupIds.length === 0
            ? {}
            : { Groups: [...this.config.securityGroupIds] }),
        },
      ],
      DisableApiTermination: false,
      InstanceInitiatedShutdownBehavior: "terminate",
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: Object.entries(request.tags).map(([Key, Value]) => ({ Key, Value })),
        },
      ],
      // IMDSv2 only: a token is required, so a request forged through the VM can't read metadata.
      MetadataOptions: { HttpEndpoint: "enabled", HttpTokens: "required" },
      UserData: Buffer.from(`#!/bin/sh\n${request.initCommand}\n`).toString("base64"),
    };
    if (keyName !== undefined) input.KeyName = keyName;
    if (instanceType.AddedScratch > 0) {
      input.BlockDeviceMappings = [
        {
          DeviceName: "/dev/xvdt",
          Ebs: {
            DeleteOnTermination: true,
            VolumeSize: Math.ceil(instanceType.AddedScratch / GiB),
            VolumeType: this.config.ebsVolumeType as "gp2",
          },
        },
      ];
    }
    if (instanceType.Preemptible) {
      input.InstanceMarketOptions = {
        MarketType: "spot",
        SpotOptions: {
          InstanceInterruptionBehavior: "terminate",
          MaxPrice: formatGoFloat(instanceType.Price),
        },
      };
    }
    if (this.config.iamInstanceProfile !== "") {
      input.IamInstanceProfile = { Name: this.config.iamInstanceProfile };
    }
    return input;
  }

  async instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    const Filters = Object.entries(filter).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
    const listed: AwsInstance[] = [];
    let NextToken: string | undefined;
    do {
      let resp;
      try {
        resp = await this.client.send(
          new DescribeInstancesCommand({
            ...(Filters.length === 0 ? {} : { Filters }),
            ...(this.options.listPageSize === undefined
              ? {}
              : { MaxResults: this.options.listPageSize }),
            ...(NextToken === undefined ? {} : { NextToken }),
          }),
          signalOption(signal),
        );
      } catch (err) {
        throw classifyEc2Error(err, this.#listBackoff, this.#clock.now());
      }
      this.#listBackoff.reset();
      for (const rsv of resp.Reservations ?? []) {
        for (const inst of rsv.Instances ?? []) {
          const state = inst.State?.Name;
          if (state === "shutting-down" || state === "terminated") continue;
          listed.push(inst);
        }
      }
      // AWS has been seen to end the last page with "" rather than no token.
      NextToken = resp.NextToken === "" ? undefined : resp.NextToken;
    } while (NextToken !== undefined);

    const zones = new Map<string, string>();
    const spot = listed.filter((i) => i.InstanceLifecycle === "spot");
    if (spot.length > 0 && this.config.spotPriceUpdateIntervalMs > 0) {
      await this.#availabilityZones(zones, signal);
      await this.#spotPrices.refresh(
        spot.map((i) => ({
          instanceType: i.InstanceType ?? "",
          availabilityZone: zones.get(i.InstanceId ?? "") ?? "",
        })),
        this.#clock.now(),
        signal,
      );
    }
    this.#countBySubnet(listed);
    return listed.map((i) => new Ec2Instance(this, i, zones.get(i.InstanceId ?? "") ?? ""));
  }

  /** Instance ID → availability zone, from an unfiltered DescribeInstanceStatus; partial on error. */
  async #availabilityZones(zones: Map<string, string>, signal?: AbortSignal): Promise<void> {
    let NextToken: string | undefined;
    do {
      let resp;
      try {
        resp = await this.client.send(
          new DescribeInstanceStatusCommand({
            IncludeAllInstances: true,
            ...(NextToken === undefined ? {} : { NextToken }),
          }),
          signalOption(signal),
        );
      } catch (err) {
        this.logger.error({ error: errorMessage(err) }, "error getting instance statuses");
        return;
      }
      for (const st of resp.InstanceStatuses ?? []) {
        if (st.InstanceId !== undefined) zones.set(st.InstanceId, st.AvailabilityZone ?? "");
      }
      NextToken = resp.NextToken === "" ? undefined : resp.NextToken;
    } while (NextToken !== undefined);
  }

  #countBySubnet(listed: readonly AwsInstance[]): void {
    const counts = new Map<string, number>([["", 0]]);
    for (const s of this.config.subnetIds) counts.set(s, 0);
    for (const i of listed) {
      const s = i.SubnetId ?? "";
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    for (const [subnet, n] of counts) this.metrics.instances.labels(subnet).set(n);
  }

  instanceQuotaGroup(type: InstanceType): string {
    return ec2QuotaGroup(type, this.config.instanceTypeQuotaGroups);
  }

  /** Price history for a listed instance, with the hourly cost of its AddedScratch volume. */
  priceHistory(type: string, spot: boolean, zone: string, instType: InstanceType): InstancePrice[] {
    if (!spot) return [];
    const ebsHourly = (this.config.ebsPrice * Math.ceil(instType.AddedScratch / GiB)) / 30 / 24;
    return this.#spotPrices
      .history(type, zone)
      .map((p) => ({ StartTime: p.StartTime, Price: p.Price + ebsHourly }));
  }

  async setTags(id: InstanceId, tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new CreateTagsCommand({
        Resources: [id],
        Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      }),
      signalOption(signal),
    );
  }

  async destroy(id: InstanceId, signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new TerminateInstancesCommand({ InstanceIds: [id] }),
      signalOption(signal),
    );
    this.logger.info({ Instance: id }, "terminated instance");
  }

  stop(): Promise<void> {
    // A client we built holds sockets; one passed in belongs to the caller.
    if (this.#ownClient) {
      this.#ownClient = false;
      this.client.destroy();
    }
    return Promise.resolve();
  }
}

/** A snapshot of one EC2 instance as listed or created. */
export class Ec2Instance implements Instance {
  readonly id: InstanceId;
  readonly providerType: string;
  readonly address: string;
  readonly remoteUser: string;
  readonly tags: InstanceTags;
  readonly availabilityZone: string;
  readonly spot: boolean;
  /** "" when the instance is not in a VPC subnet. */
  readonly subnetId: string;

  constructor(
    private readonly set: Ec2InstanceSet,
    instance: AwsInstance,
    availabilityZone: string,
  ) {
    this.id = instanceId(instance.InstanceId ?? "");
    this.providerType = instance.InstanceType ?? "";
    this.address = instance.PrivateIpAddress ?? "";
    this.remoteUser = set.config.adminUsername;
    const tags: Record<string, string> = {};
    for (const t of instance.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? "";
    this.tags = Object.freeze(tags);
    this.availabilityZone = availabilityZone;
    this.spot = instance.InstanceLifecycle === "spot";
    this.subnetId = instance.SubnetId ?? "";
  }

  toString(): string {
    return this.id;
  }

  /** Adds or overwrites the given tags; EC2 never removes tags not mentioned. */
  setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    return this.set.setTags(this.id, tags, signal);
  }

  priceHistory(type: InstanceType): readonly InstancePrice[] {
    return this.set.priceHistory(this.providerType, this.spot, this.availabilityZone, type);
  }

  destroy(signal?: AbortSignal): Promise<void> {
    return this.set.destroy(this.id, signal);
  }

  verifyHostKey(): Promise<HostKeyVerdict> {
    // EC2 offers no trustworthy host key channel; the caller checks the instance secret instead.
    return Promise.resolve({ kind: "not-implemented" });
  }
}
