import {
  CreateTagsCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSpotPriceHistoryCommand,
  EC2Client,
  ImportKeyPairCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance as AwsInstance,
  type RunInstancesCommandInput,
} from "@aws-sdk/client-ec2";
import { instanceSetId } from "@dispatch-cloud/arvados-types";
import {
  CapacityError,
  QuotaError,
  RateLimitError,
  type CreateRequest,
} from "@dispatch-cloud/cloud-driver-api";
import { mockClient } from "aws-sdk-client-mock";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createEc2InstanceSet, type Ec2InstanceSet } from "./instance-set.js";
import { awsError, instanceType, recordingLogger, type LogEntry } from "./testing/fixtures.js";

const GiB = 2 ** 30;
const HOUR = 3_600_000;
const RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDOW1kmN8Ez5JSjsxDNkiKiZmFI6rQizeddgDOlLZjT4OUD+G0R1brfJ9lDTeLO5WWJL0b11NkIv+Es9FUZax7Ggd5UMzSgi5MUxgCUKI7TeIvfe9tzdRSHjBNwV4lhaRt7Ch4zGrsQ1sJm8Drexo2Jta4ORZ4A7G7OA1d0DRbpww== comment";
const RSA_MD5 = "bd:ba:5c:24:1f:09:fd:4a:42:7a:19:2c:e3:12:14:b0";
const RSA_SHA1 = "d7:3e:b9:25:fe:47:ce:70:65:ea:70:df:d1:63:68:d0:2f:81:38:7f";

const client = new EC2Client({
  region: "us-east-1",
  credentials: { accessKeyId: "x", secretAccessKey: "x" },
});
const ec2 = mockClient(client);

let now = Date.parse("2026-03-01T00:00:00Z");
let logs: LogEntry[];
let registry: Registry;

async function newSet(
  parameters: Record<string, unknown> = {},
  withRegistry = true,
): Promise<Ec2InstanceSet> {
  const logger = recordingLogger();
  logs = logger.entries;
  return createEc2InstanceSet(
    {
      parameters,
      instanceSetId: instanceSetId("zzzzz-gj3su-000000000000000"),
      sharedResourceTags: {},
      logger,
      registry: withRegistry ? registry : null,
    },
    { client, clock: { now: () => now } },
  );
}

/** Element i, failing the test when it is missing. */
function nth<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`expected at least ${i + 1} elements, got ${xs.length}`);
  return x;
}

function request(overrides: Partial<CreateRequest> = {}): CreateRequest {
  return {
    instanceType: instanceType(),
    imageId: "ami-0123456789",
    tags: { ArvadosInstanceSetID: "zzzzz-gj3su-000000000000000", ArvadosInstanceSecret: "s3cr3t" },
    initCommand: "echo hello",
    publicKey: null,
    ...overrides,
  };
}

function awsInstance(id: string, extra: Partial<AwsInstance> = {}): AwsInstance {
  return {
    InstanceId: id,
    InstanceType: "m5.large",
    PrivateIpAddress: "10.1.2.3",
    State: { Name: "running", Code: 16 },
    Tags: [{ Key: "ArvadosInstanceSetID", Value: "zzzzz-gj3su-000000000000000" }],
    ...extra,
  };
}

async function metricValues(name: string): Promise<Record<string, number>> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const out: Record<string, number> = {};
  for (const v of (m?.values ?? []) as { labels: Record<string, string>; value: number }[]) {
    out[Object.values(v.labels).join(",")] = v.value;
  }
  return out;
}

beforeEach(() => {
  ec2.reset();
  registry = new Registry();
  now = Date.parse("2026-03-01T00:00:00Z");
});
afterEach(() => ec2.reset());

describe("create", () => {
  it("sends every RunInstances parameter of a fully configured preemptible type", async () => {
    ec2.on(DescribeKeyPairsCommand).resolves({ KeyPairs: [] });
    ec2.on(ImportKeyPairCommand).resolves({});
    ec2
      .on(RunInstancesCommand)
      .resolves({ Instances: [awsInstance("i-1", { InstanceLifecycle: "spot" })] });
    const set = await newSet({
      SubnetID: ["subnet-a", "subnet-b"],
      SecurityGroupIDs: { "sg-1": {}, "sg-2": {} },
      EBSVolumeType: "gp3",
      IAMInstanceProfile: "dispatch-profile",
      AdminUsername: "admin",
    });
    const inst = await set.create(
      request({
        instanceType: instanceType({ Preemptible: true, Price: 0.02, AddedScratch: 50 * GiB + 1 }),
        publicKey: RSA,
      }),
    );
    const want: RunInstancesCommandInput = {
      ImageId: "ami-0123456789",
      InstanceType: "m5.large",
      MinCount: 1,
      MaxCount: 1,
      NetworkInterfaces: [
        {
          AssociatePublicIpAddress: false,
          DeleteOnTermination: true,
          DeviceIndex: 0,
          Groups: ["sg-1", "sg-2"],
          SubnetId: "subnet-a",
        },
      ],
      DisableApiTermination: false,
      InstanceInitiatedShutdownBehavior: "terminate",
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: [
            { Key: "ArvadosInstanceSetID", Value: "zzzzz-gj3su-000000000000000" },
            { Key: "ArvadosInstanceSecret", Value: "s3cr3t" },
          ],
        },
      ],
      MetadataOptions: { HttpEndpoint: "enabled", HttpTokens: "required" },
      UserData: Buffer.from("#!/bin/sh\necho hello\n").toString("base64"),
      KeyName: `arvados-dispatch-keypair-${RSA_MD5}`,
      BlockDeviceMappings: [
        {
          DeviceName: "/dev/xvdt",
          Ebs: { DeleteOnTermination: true, VolumeSize: 51, VolumeType: "gp3" },
        },
      ],
      InstanceMarketOptions: {
        MarketType: "spot",
        SpotOptions: { InstanceInterruptionBehavior: "terminate", MaxPrice: "0.02" },
      },
      IamInstanceProfile: { Name: "dispatch-profile" },
    };
    expect(nth(ec2.commandCalls(RunInstancesCommand), 0).args[0].input).toEqual(want);
    expect(inst).toMatchObject({
      id: "i-1",
      providerType: "m5.large",
      address: "10.1.2.3",
      remoteUser: "admin",
    });
    expect(inst.tags).toEqual({ ArvadosInstanceSetID: "zzzzz-gj3su-000000000000000" });
    expect(
      await inst.verifyHostKey(Buffer.alloc(0), { run: () => Promise.reject(new Error("unused")) }),
    ).toEqual({
      kind: "not-implemented",
    });
  });

  it("leaves out what is not configured", async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [awsInstance("i-1")] });
    const set = await newSet();
    await set.create(request({ initCommand: "" }));
    const input = nth(ec2.commandCalls(RunInstancesCommand), 0).args[0].input;
    expect(input.NetworkInterfaces).toEqual([
      { AssociatePublicIpAddress: false, DeleteOnTermination: true, DeviceIndex: 0 },
    ]);
    expect(Buffer.from(input.UserData!, "base64").toString()).toBe("#!/bin/sh\n\n");
    for (const key of [
      "KeyName",
      "BlockDeviceMappings",
      "InstanceMarketOptions",
      "IamInstanceProfile",
    ]) {
      expect(input).not.toHaveProperty(key);
    }
    expect(ec2.commandCalls(DescribeKeyPairsCommand)).toHaveLength(0);
  });

  it("formats MaxPrice like Go's %v", async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [awsInstance("i-1")] });
    const set = await newSet();
    await set.create(
      request({ instanceType: instanceType({ Preemptible: true, Price: 0.00001 }) }),
    );
    await set.create(request({ instanceType: instanceType({ Preemptible: true, Price: 1.5 }) }));
    expect(
      ec2
        .commandCalls(RunInstancesCommand)
        .map((c) => c.args[0].input.InstanceMarketOptions?.SpotOptions?.MaxPrice),
    ).toEqual(["1e-05", "1.5"]);
  });

  describe("subnet failover", () => {
    function failBySubnet(errors: Record<string, [string, string]>): string[] {
      const tried: string[] = [];
      ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
        const subnet = input.NetworkInterfaces?.[0]?.SubnetId ?? "";
        tried.push(subnet);
        const e = errors[subnet];
        if (e !== undefined) throw awsError(e[0], e[1]);
        return { Instances: [awsInstance(`i-${subnet}`, { SubnetId: subnet })] };
      });
      return tried;
    }

    it("tries the next subnet after a subnet error and reports each subnet's error in turn", async () => {
      const tried = failBySubnet({
        full: [
          "InsufficientFreeAddressesInSubnet",
          "The specified subnet does not have enough free addresses",
        ],
        broken: ["InvalidSubnetId.NotFound", "The subnet ID 'broken' does not exist"],
      });
      const set = await newSet({ SubnetID: ["full", "broken"] });
      const first = await set.create(request()).catch((e: unknown) => e);
      expect(tried).toEqual(["full", "broken"]);
      expect((first as { name: string }).name).toBe("InvalidSubnetId.NotFound");
      const second = await set.create(request()).catch((e: unknown) => e);
      expect(tried).toEqual(["full", "broken", "broken", "full"]);
      expect(QuotaError.is(second)).toBe(true);
      expect((second as Error).message).toMatch(/^InsufficientFreeAddressesInSubnet: /);
      expect(
        logs.filter((l) => l.message === "RunInstances failed, trying next subnet"),
      ).toHaveLength(2);
      expect(await metricValues("arvados_dispatchcloud_ec2_instance_starts_total")).toEqual({
        "full,0": 2,
        "full,1": 0,
        "broken,0": 2,
        "broken,1": 0,
      });
    });

    it("prefers the capacity error over a later or earlier subnet error", async () => {
      const tried = failBySubnet({
        full: [
          "InsufficientFreeAddressesInSubnet",
          "The specified subnet does not have enough free addresses",
        ],
        capacity: [
          "InsufficientInstanceCapacity",
          "We currently do not have sufficient m5.large capacity",
        ],
      });
      const set = await newSet({ SubnetID: ["full", "capacity"] });
      for (let i = 0; i < 3; i++) {
        const err = await set.create(request()).catch((e: unknown) => e);
        expect(CapacityError.is(err) && err.scope).toBe("instance-type");
      }
      expect(tried).toEqual(["full", "capacity", "capacity", "full", "full", "capacity"]);
    });

    it("starts the next create with the subnet that succeeded", async () => {
      const tried = failBySubnet({
        bad: ["InvalidSubnetID.NotFound", "The subnet ID 'bad' does not exist"],
      });
      const set = await newSet({ SubnetID: ["bad", "good", "other"] });
      const inst = await set.create(request());
      expect(inst.id).toBe("i-good");
      await set.create(request());
      expect(tried).toEqual(["bad", "good", "good"]);
      expect(await metricValues("arvados_dispatchcloud_ec2_instance_starts_total")).toMatchObject({
        "bad,0": 1,
        "good,1": 2,
        "other,0": 0,
        "other,1": 0,
      });
    });

    it("stops at an error that is not subnet-specific", async () => {
      const tried = failBySubnet({
        a: ["InvalidAMIID.NotFound", "The image id '[ami-0123456789]' does not exist"],
      });
      const set = await newSet({ SubnetID: ["a", "b"] });
      const err = await set.create(request()).catch((e: unknown) => e);
      expect(tried).toEqual(["a"]);
      expect((err as { name: string }).name).toBe("InvalidAMIID.NotFound");
    });
  });

  it("returns throttling as a rate limit error with a growing backoff, reset by success", async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(awsError("RequestLimitExceeded", "Request limit exceeded."))
      .rejectsOnce(awsError("RequestLimitExceeded", "Request limit exceeded."))
      .resolvesOnce({ Instances: [awsInstance("i-1")] })
      .rejectsOnce(awsError("RequestLimitExceeded", "Request limit exceeded."));
    const set = await newSet();
    const retryIn = async (): Promise<number> => {
      const err = await set.create(request()).catch((e: unknown) => e);
      if (!RateLimitError.is(err)) throw new Error(`not a rate limit error: ${String(err)}`);
      return err.earliestRetry.getTime() - now;
    };
    expect(await retryIn()).toBe(1000);
    expect(await retryIn()).toBe(2500);
    await set.create(request());
    expect(await retryIn()).toBe(1000);
  });

  it("classifies quota and vCPU limit errors", async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(
        awsError("InstanceLimitExceeded", "Your quota allows for 0 more running instance(s)."),
      )
      .rejectsOnce(
        awsError(
          "VcpuLimitExceeded",
          "You have requested more vCPU capacity than your current vCPU limit",
        ),
      );
    const set = await newSet();
    expect(QuotaError.is(await set.create(request()).catch((e: unknown) => e))).toBe(true);
    const err = await set.create(request()).catch((e: unknown) => e);
    expect(CapacityError.is(err) && err.scope).toBe("quota-group");
  });
});

describe("key pairs", () => {
  it("uses an existing key pair found by fingerprint, looking it up on every create", async () => {
    ec2.on(DescribeKeyPairsCommand).resolves({ KeyPairs: [{ KeyName: "operators-key" }] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [awsInstance("i-1")] });
    const set = await newSet();
    await set.create(request({ publicKey: RSA }));
    await set.create(request({ publicKey: RSA }));
    const lookups = ec2.commandCalls(DescribeKeyPairsCommand);
    expect(lookups).toHaveLength(2);
    expect(nth(lookups, 0).args[0].input).toEqual({
      Filters: [{ Name: "fingerprint", Values: [RSA_MD5, RSA_SHA1] }],
    });
    expect(ec2.commandCalls(ImportKeyPairCommand)).toHaveLength(0);
    expect(ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.KeyName)).toEqual([
      "operators-key",
      "operators-key",
    ]);
  });

  it("imports the key once, without its comment, and caches the name", async () => {
    ec2.on(DescribeKeyPairsCommand).resolves({ KeyPairs: [] });
    ec2.on(ImportKeyPairCommand).resolves({});
    ec2.on(RunInstancesCommand).resolves({ Instances: [awsInstance("i-1")] });
    const set = await newSet();
    await Promise.all([
      set.create(request({ publicKey: RSA })),
      set.create(request({ publicKey: RSA })),
    ]);
    expect(ec2.commandCalls(DescribeKeyPairsCommand)).toHaveLength(1);
    const imports = ec2.commandCalls(ImportKeyPairCommand);
    expect(imports).toHaveLength(1);
    expect(nth(imports, 0).args[0].input.KeyName).toBe(`arvados-dispatch-keypair-${RSA_MD5}`);
    expect(Buffer.from(nth(imports, 0).args[0].input.PublicKeyMaterial!).toString()).toBe(
      `${RSA.split(" ").slice(0, 2).join(" ")}\n`,
    );
  });

  it("reports key pair failures without classifying them", async () => {
    ec2
      .on(DescribeKeyPairsCommand)
      .rejectsOnce(awsError("RequestLimitExceeded", "Request limit exceeded."))
      .resolves({ KeyPairs: [] });
    ec2
      .on(ImportKeyPairCommand)
      .rejects(awsError("InvalidKeyPair.Format", "Key is not in valid OpenSSH public key format"));
    const set = await newSet();
    const search = await set.create(request({ publicKey: RSA })).catch((e: unknown) => e);
    expect(RateLimitError.is(search)).toBe(false);
    expect((search as Error).message).toBe("Could not search for keypair: Request limit exceeded.");
    await expect(set.create(request({ publicKey: RSA }))).rejects.toThrow(
      "Could not import keypair: Key is not in valid OpenSSH public key format",
    );
    await expect(set.create(request({ publicKey: "garbage" }))).rejects.toThrow(
      /^Could not make key fingerprint: /,
    );
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });
});

describe("instances", () => {
  it("filters by tag, follows pages until an empty token, and skips terminated instances", async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              awsInstance("i-1", { SubnetId: "subnet-a" }),
              awsInstance("i-2", { State: { Name: "terminated" } }),
            ],
          },
        ],
        NextToken: "page2",
      })
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              awsInstance("i-3", { State: { Name: "shutting-down" } }),
              awsInstance("i-4", { State: { Name: "stopped" } }),
            ],
          },
          { Instances: [awsInstance("i-5", { State: { Name: "pending" }, SubnetId: "subnet-x" })] },
        ],
        NextToken: "",
      });
    const set = await newSet({ SubnetID: ["subnet-a", "subnet-b"] });
    const list = await set.instances({
      ArvadosInstanceSetID: "zzzzz-gj3su-000000000000000",
      Other: "v",
    });
    expect(list.map((i) => i.id)).toEqual(["i-1", "i-4", "i-5"]);
    const calls = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
    const Filters = [
      { Name: "tag:ArvadosInstanceSetID", Values: ["zzzzz-gj3su-000000000000000"] },
      { Name: "tag:Other", Values: ["v"] },
    ];
    expect(calls).toEqual([{ Filters }, { Filters, NextToken: "page2" }]);
    expect(await metricValues("arvados_dispatchcloud_ec2_instances")).toEqual({
      "": 1,
      "subnet-a": 1,
      "subnet-b": 0,
      "subnet-x": 1,
    });
    // On-demand instances trigger no zone or price lookups.
    expect(ec2.commandCalls(DescribeInstanceStatusCommand)).toHaveLength(0);
  });

  it("returns a throttled page as a rate limit error with its own backoff", async () => {
    ec2
      .on(DescribeInstancesCommand)
      .rejectsOnce(awsError("RequestLimitExceeded", "Request limit exceeded."))
      .rejectsOnce(awsError("RequestLimitExceeded", "Request limit exceeded."));
    ec2
      .on(RunInstancesCommand)
      .rejects(awsError("RequestLimitExceeded", "Request limit exceeded."));
    const set = await newSet();
    const e1 = await set.instances({}).catch((e: unknown) => e);
    const e2 = await set.instances({}).catch((e: unknown) => e);
    const e3 = await set.create(request()).catch((e: unknown) => e);
    expect([e1, e2, e3].map((e) => (e as RateLimitError).earliestRetry.getTime() - now)).toEqual([
      1000, 2500, 1000,
    ]);
  });

  it("sets tags with CreateTags and destroys with TerminateInstances", async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolves({ Reservations: [{ Instances: [awsInstance("i-1")] }] });
    ec2.on(CreateTagsCommand).resolves({});
    ec2.on(TerminateInstancesCommand).resolves({});
    const set = await newSet();
    const inst = nth(await set.instances({}), 0);
    await inst.setTags({ ArvadosIdleBehavior: "hold" });
    await inst.destroy();
    expect(nth(ec2.commandCalls(CreateTagsCommand), 0).args[0].input).toEqual({
      Resources: ["i-1"],
      Tags: [{ Key: "ArvadosIdleBehavior", Value: "hold" }],
    });
    expect(nth(ec2.commandCalls(TerminateInstancesCommand), 0).args[0].input).toEqual({
      InstanceIds: ["i-1"],
    });
  });
});

describe("spot prices", () => {
  const spot = (id: string, type = "m5.large"): AwsInstance =>
    awsInstance(id, { InstanceLifecycle: "spot", InstanceType: type });

  function setup(): void {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [spot("i-1"), spot("i-2", "c5.large"), awsInstance("i-3")] }],
    });
    ec2.on(DescribeInstanceStatusCommand).callsFake((input: { NextToken?: string }) =>
      input.NextToken === undefined
        ? {
            InstanceStatuses: [{ InstanceId: "i-1", AvailabilityZone: "us-east-1a" }],
            NextToken: "more",
          }
        : {
            InstanceStatuses: [
              { InstanceId: "i-2", AvailabilityZone: "us-east-1b" },
              { InstanceId: "i-3", AvailabilityZone: "us-east-1a" },
            ],
            NextToken: "",
          },
    );
  }

  const at = (h: number): Date => new Date(now - h * HOUR);

  it("fetches history for the listed spot types and adds the EBS cost", async () => {
    setup();
    ec2
      .on(DescribeSpotPriceHistoryCommand)
      .resolvesOnce({
        SpotPriceHistory: [
          {
            InstanceType: "m5.large",
            AvailabilityZone: "us-east-1a",
            SpotPrice: "0.03",
            Timestamp: at(5),
          },
          {
            InstanceType: "m5.large",
            AvailabilityZone: "us-east-1b",
            SpotPrice: "0.09",
            Timestamp: at(5),
          },
          {
            InstanceType: "m5.large",
            AvailabilityZone: "us-east-1a",
            SpotPrice: "bogus",
            Timestamp: at(4),
          },
          { AvailabilityZone: "us-east-1a", SpotPrice: "0.01", Timestamp: at(4) },
          { InstanceType: "m5.large", AvailabilityZone: "us-east-1a", Timestamp: at(4) },
        ],
        NextToken: "p2",
      })
      .resolvesOnce({
        SpotPriceHistory: [
          {
            InstanceType: "m5.large",
            AvailabilityZone: "us-east-1a",
            SpotPrice: "0.04",
            Timestamp: at(2),
          },
          {
            InstanceType: "m5.large",
            AvailabilityZone: "us-east-1a",
            SpotPrice: "0.04",
            Timestamp: at(1),
          },
          {
            InstanceType: "m5.large",
            AvailabilityZone: "us-east-1a",
            SpotPrice: "0.02",
            Timestamp: at(3),
          },
        ],
      });
    const set = await newSet({ EBSPrice: 0.1, SpotPriceUpdateInterval: "1h" });
    const list = await set.instances({});
    const calls = ec2.commandCalls(DescribeSpotPriceHistoryCommand).map((c) => c.args[0].input);
    expect(calls[0]).toEqual({
      StartTime: new Date(now - 3 * HOUR),
      Filters: [
        { Name: "instance-type", Values: ["m5.large", "c5.large"] },
        { Name: "product-description", Values: ["Linux/UNIX"] },
      ],
    });
    expect(calls[1]).toMatchObject({ NextToken: "p2" });
    expect(ec2.commandCalls(DescribeInstanceStatusCommand).map((c) => c.args[0].input)).toEqual([
      { IncludeAllInstances: true },
      { IncludeAllInstances: true, NextToken: "more" },
    ]);

    const [i1, i2, i3] = [nth(list, 0), nth(list, 1), nth(list, 2)];
    // 100 GiB at $0.10/GiB-month = $10/month = 10/720 per hour.
    const ebs = (0.1 * 100) / 30 / 24;
    expect(i1.priceHistory(instanceType({ AddedScratch: 100 * GiB }))).toEqual([
      { StartTime: at(2), Price: 0.04 + ebs },
      { StartTime: at(3), Price: 0.02 + ebs },
      { StartTime: at(5), Price: 0.03 + ebs },
    ]);
    expect(i1.priceHistory(instanceType())).toEqual([
      { StartTime: at(2), Price: 0.04 },
      { StartTime: at(3), Price: 0.02 },
      { StartTime: at(5), Price: 0.03 },
    ]);
    expect(i2.priceHistory(instanceType())).toEqual([]);
    expect(i3.priceHistory(instanceType())).toEqual([]);
  });

  it("refreshes only when an entry is older than the interval, and drops entries after 64 intervals", async () => {
    setup();
    ec2.on(DescribeSpotPriceHistoryCommand).callsFake(() => ({
      SpotPriceHistory: [
        {
          InstanceType: "m5.large",
          AvailabilityZone: "us-east-1a",
          SpotPrice: "0.03",
          Timestamp: new Date(now),
        },
        {
          InstanceType: "c5.large",
          AvailabilityZone: "us-east-1b",
          SpotPrice: "0.05",
          Timestamp: new Date(now),
        },
      ],
    }));
    const set = await newSet({ SpotPriceUpdateInterval: "1h" });
    await set.instances({});
    now += 30 * 60_000;
    await set.instances({});
    expect(ec2.commandCalls(DescribeSpotPriceHistoryCommand)).toHaveLength(1);
    now += 31 * 60_000;
    const list = await set.instances({});
    expect(ec2.commandCalls(DescribeSpotPriceHistoryCommand)).toHaveLength(2);
    expect(
      nth(list, 0)
        .priceHistory(instanceType())
        .map((p) => p.Price),
    ).toEqual([0.03]);

    // Only c5.large is still running; m5.large's entry ages out after 64 intervals.
    ec2
      .on(DescribeInstancesCommand)
      .resolves({ Reservations: [{ Instances: [spot("i-2", "c5.large")] }] });
    ec2.on(DescribeSpotPriceHistoryCommand).resolves({
      SpotPriceHistory: [
        {
          InstanceType: "c5.large",
          AvailabilityZone: "us-east-1b",
          SpotPrice: "0.05",
          Timestamp: new Date(now),
        },
      ],
    });
    now += 65 * HOUR;
    await set.instances({});
    expect(nth(list, 0).priceHistory(instanceType())).toEqual([]);
  });

  it("retries every listing while AWS has no records for a spot instance's zone", async () => {
    setup();
    ec2.on(DescribeSpotPriceHistoryCommand).resolves({ SpotPriceHistory: [] });
    const set = await newSet({ SpotPriceUpdateInterval: "1h" });
    await set.instances({});
    await set.instances({});
    expect(ec2.commandCalls(DescribeSpotPriceHistoryCommand)).toHaveLength(2);
  });

  it("logs lookup failures and still returns the listing", async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [spot("i-1")] }] });
    ec2
      .on(DescribeInstanceStatusCommand)
      .rejects(awsError("UnauthorizedOperation", "not authorized"));
    ec2
      .on(DescribeSpotPriceHistoryCommand)
      .rejects(awsError("UnauthorizedOperation", "not authorized"));
    const set = await newSet();
    const list = await set.instances({});
    expect(list.map((i) => i.id)).toEqual(["i-1"]);
    expect(logs.map((l) => l.message)).toEqual(
      expect.arrayContaining([
        "error getting instance statuses",
        "error retrieving spot instance prices",
      ]),
    );
  });

  it("looks up nothing when SpotPriceUpdateInterval is 0", async () => {
    setup();
    const set = await newSet({ SpotPriceUpdateInterval: "0" });
    await set.instances({});
    expect(ec2.commandCalls(DescribeInstanceStatusCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DescribeSpotPriceHistoryCommand)).toHaveLength(0);
  });
});

describe("metrics and quota groups", () => {
  it('pre-creates the start counters for each subnet, or for "" without subnets', async () => {
    await newSet({ SubnetID: ["s1", "s2"] });
    expect(await metricValues("arvados_dispatchcloud_ec2_instance_starts_total")).toEqual({
      "s1,0": 0,
      "s1,1": 0,
      "s2,0": 0,
      "s2,1": 0,
    });
    registry = new Registry();
    await newSet();
    expect(await metricValues("arvados_dispatchcloud_ec2_instance_starts_total")).toEqual({
      ",0": 0,
      ",1": 0,
    });
  });

  it("registers nothing without a registry", async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [awsInstance("i-1")] });
    const set = await newSet({}, false);
    await set.create(request());
    expect(await registry.getMetricsAsJSON()).toEqual([]);
  });

  it("uses the configured quota groups merged over the defaults", async () => {
    const set = await newSet({ InstanceTypeQuotaGroups: { g: "gpu" } });
    expect(
      set.instanceQuotaGroup(instanceType({ ProviderType: "g4dn.xlarge", Preemptible: true })),
    ).toBe("gpu-spot");
    expect(set.instanceQuotaGroup(instanceType({ ProviderType: "m5.large" }))).toBe("standard");
  });
});
