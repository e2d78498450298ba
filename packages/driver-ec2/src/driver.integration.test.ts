/**
 * The EC2 driver against a moto server (scripts/peers/moto.sh install), reached through a small
 * proxy that can answer chosen requests with EC2 errors moto never produces. Nothing here
 * connects to the private addresses moto gives its instances.
 */
import { generateKeyPairSync } from "node:crypto";
import {
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeVolumesCommand,
  EC2Client,
  ImportKeyPairCommand,
  type Instance as AwsInstance,
} from "@aws-sdk/client-ec2";
import { instanceSetId } from "@dispatch-cloud/arvados-types";
import {
  CapacityError,
  QuotaError,
  RateLimitError,
  type CreateRequest,
  type DriverContext,
} from "@dispatch-cloud/cloud-driver-api";
import { runConformanceSuite } from "@dispatch-cloud/cloud-driver-api/testing";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createEc2Driver } from "./index.js";
import { createEc2InstanceSet, type Ec2InstanceSet } from "./instance-set.js";
import { awsKeyFingerprints } from "./keypair.js";
import {
  instanceType,
  MOTO_CREDENTIALS,
  MOTO_REGION,
  recordingLogger,
  startFaultProxy,
  startMoto,
  type FaultProxy,
  type MotoServer,
} from "./testing/index.js";

const GiB = 2 ** 30;
const SET_ID = "zzzzz-gj3su-integration0001";

let moto: MotoServer;
let proxy: FaultProxy;
let direct: EC2Client;

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startFaultProxy(moto.endpoint);
  direct = new EC2Client({
    region: MOTO_REGION,
    endpoint: moto.endpoint,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  direct?.destroy();
  await proxy?.stop();
  await moto?.stop();
});

function context(
  parameters: Record<string, unknown>,
  registry: Registry | null = null,
): DriverContext {
  return {
    parameters: {
      ...MOTO_CREDENTIALS,
      Region: MOTO_REGION,
      Endpoint: proxy.endpoint,
      ...parameters,
    },
    instanceSetId: instanceSetId(SET_ID),
    sharedResourceTags: {},
    logger: recordingLogger(),
    registry,
  };
}

/** An RSA public key in authorized_keys form (moto computes AWS-identical fingerprints for RSA). */
function rsaAuthorizedKey(): string {
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  const mpint = (b64u: string): Buffer => {
    let b = Buffer.from(b64u, "base64url");
    if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return b;
  };
  const str = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const wire = Buffer.concat([
    str(Buffer.from("ssh-rsa")),
    str(mpint(jwk.e ?? "")),
    str(mpint(jwk.n ?? "")),
  ]);
  return `ssh-rsa ${wire.toString("base64")} test@example`;
}

function request(overrides: Partial<CreateRequest> = {}): CreateRequest {
  return {
    instanceType: instanceType(),
    imageId: "ami-12c6146b",
    tags: { ArvadosInstanceSetID: SET_ID, ArvadosInstanceSecret: "f".repeat(40) },
    initCommand: 'umask 0177 && echo -n "secret" >/var/run/arvados-instance-secret\ntrue',
    publicKey: null,
    ...overrides,
  };
}

async function describeOne(id: string): Promise<AwsInstance> {
  const resp = await direct.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  const inst = resp.Reservations?.[0]?.Instances?.[0];
  if (inst === undefined) throw new Error(`moto does not know ${id}`);
  return inst;
}

/** An IAM instance profile in moto's IAM backend, through its query API. */
async function createInstanceProfile(name: string): Promise<void> {
  const resp = await fetch(`${moto.endpoint}/`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      // moto routes by the service named in the credential scope; it does not check signatures.
      authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${MOTO_REGION}/iam/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: new URLSearchParams({
      Action: "CreateInstanceProfile",
      InstanceProfileName: name,
      Version: "2010-05-08",
    }),
  });
  expect(resp.status).toBe(200);
  await resp.arrayBuffer();
}

async function network(): Promise<{ subnets: [string, string]; groups: [string, string] }> {
  const vpc = await direct.send(new CreateVpcCommand({ CidrBlock: "10.20.0.0/16" }));
  const VpcId = vpc.Vpc!.VpcId!;
  const s1 = await direct.send(new CreateSubnetCommand({ VpcId, CidrBlock: "10.20.1.0/24" }));
  const s2 = await direct.send(new CreateSubnetCommand({ VpcId, CidrBlock: "10.20.2.0/24" }));
  const g1 = await direct.send(
    new CreateSecurityGroupCommand({ VpcId, GroupName: "ssh", Description: "ssh" }),
  );
  const g2 = await direct.send(
    new CreateSecurityGroupCommand({ VpcId, GroupName: "misc", Description: "misc" }),
  );
  return {
    subnets: [s1.Subnet!.SubnetId!, s2.Subnet!.SubnetId!],
    groups: [g1.GroupId!, g2.GroupId!],
  };
}

describe("EC2 driver against moto", () => {
  let set: Ec2InstanceSet | undefined;
  const newSet = async (
    parameters: Record<string, unknown> = {},
    registry: Registry | null = null,
  ) => {
    await set?.stop();
    set = await createEc2InstanceSet(context(parameters, registry), { listPageSize: 5 });
    return set;
  };

  beforeEach(async () => {
    await moto.reset();
    proxy.clear();
  });
  afterAll(async () => {
    await set?.stop();
  });

  it("creates a spot instance whose parameters read back from the API", async () => {
    const { subnets, groups } = await network();
    await createInstanceProfile("dispatch-profile");
    const key = rsaAuthorizedKey();
    const s = await newSet({
      SubnetID: subnets[0],
      SecurityGroupIDs: { [groups[0]]: {}, [groups[1]]: {} },
      IAMInstanceProfile: "dispatch-profile",
      EBSVolumeType: "gp3",
    });
    const type = instanceType({
      Name: "m5large.preemptible",
      Preemptible: true,
      Price: 0.05,
      AddedScratch: 20 * GiB,
    });
    const inst = await s.create(request({ instanceType: type, publicKey: key }));
    expect(inst.id).toMatch(/^i-/);
    expect(inst.tags).toEqual({
      ArvadosInstanceSetID: SET_ID,
      ArvadosInstanceSecret: "f".repeat(40),
    });

    const got = await describeOne(inst.id);
    expect(got.InstanceType).toBe("m5.large");
    expect(got.ImageId).toBe("ami-12c6146b");
    expect(got.InstanceLifecycle).toBe("spot");
    expect(got.KeyName).toBe(`arvados-dispatch-keypair-${awsKeyFingerprints(key)[0]}`);
    expect(got.SubnetId).toBe(subnets[0]);
    expect(got.IamInstanceProfile?.Arn).toMatch(/:instance-profile\/dispatch-profile$/);
    expect(got.NetworkInterfaces?.[0]?.Groups?.map((g) => g.GroupId).sort()).toEqual(
      [...groups].sort(),
    );
    expect(Object.fromEntries((got.Tags ?? []).map((t) => [t.Key, t.Value]))).toEqual(inst.tags);
    // moto does not echo MetadataOptions; the unit tests check that IMDSv2 is requested.

    const scratch = got.BlockDeviceMappings?.find((b) => b.DeviceName === "/dev/xvdt");
    expect(scratch?.Ebs?.DeleteOnTermination).toBe(true);
    const vols = await direct.send(
      new DescribeVolumesCommand({ VolumeIds: [scratch!.Ebs!.VolumeId!] }),
    );
    expect(vols.Volumes?.[0]).toMatchObject({ Size: 20, VolumeType: "gp3" });

    const ud = await direct.send(
      new DescribeInstanceAttributeCommand({ InstanceId: inst.id, Attribute: "userData" }),
    );
    expect(Buffer.from(ud.UserData!.Value!, "base64").toString()).toBe(
      `#!/bin/sh\n${request().initCommand}\n`,
    );

    const run = proxy.requests.find((p) => p.get("Action") === "RunInstances")!;
    expect(run.get("MetadataOptions.HttpTokens")).toBe("required");
    expect(run.get("MetadataOptions.HttpEndpoint")).toBe("enabled");
    expect(run.get("InstanceMarketOptions.SpotOptions.MaxPrice")).toBe("0.05");
    expect(run.get("NetworkInterface.1.AssociatePublicIpAddress")).toBe("false");
  });

  it("imports the key pair once by AWS fingerprint and reuses it from a fresh driver", async () => {
    const key = rsaAuthorizedKey();
    const [md5] = awsKeyFingerprints(key);
    const first = await newSet();
    await first.create(request({ publicKey: key }));
    await first.create(request({ publicKey: key }));
    const pairs = await direct.send(new DescribeKeyPairsCommand({}));
    expect(pairs.KeyPairs?.map((k) => [k.KeyName, k.KeyFingerprint])).toEqual([
      [`arvados-dispatch-keypair-${md5}`, md5],
    ]);
    expect(proxy.actions.filter((a) => a === "ImportKeyPair")).toHaveLength(1);

    // A new dispatcher has no cache: it finds the imported pair by fingerprint instead of importing.
    proxy.clear();
    const second = await newSet();
    const inst = await second.create(request({ publicKey: key }));
    expect(proxy.actions.filter((a) => a === "ImportKeyPair")).toEqual([]);
    expect((await describeOne(inst.id)).KeyName).toBe(`arvados-dispatch-keypair-${md5}`);
  });

  it("uses an operator's existing key pair with the same key", async () => {
    const key = rsaAuthorizedKey();
    await direct.send(
      new ImportKeyPairCommand({ KeyName: "operators-key", PublicKeyMaterial: Buffer.from(key) }),
    );
    const s = await newSet();
    const inst = await s.create(request({ publicKey: key }));
    expect((await describeOne(inst.id)).KeyName).toBe("operators-key");
    expect(proxy.actions).not.toContain("ImportKeyPair");
  });

  it("lists by tag across several pages, skips terminated instances, and tags without removing", async () => {
    const s = await newSet();
    const ours = [];
    for (let i = 0; i < 11; i++) ours.push(await s.create(request()));
    const [gone, tagged] = ours;
    if (gone === undefined || tagged === undefined) throw new Error("creates failed");
    await s.create(request({ tags: { ArvadosInstanceSetID: "someone-else" } }));
    proxy.clear();
    const listed = await s.instances({ ArvadosInstanceSetID: SET_ID });
    expect(listed.map((i) => i.id).sort()).toEqual(ours.map((i) => i.id).sort());
    // 11 matches at 5 per page.
    expect(proxy.actions.filter((a) => a === "DescribeInstances").length).toBeGreaterThanOrEqual(3);
    expect(
      proxy.requests.find((p) => p.get("Action") === "DescribeInstances")?.get("Filter.1.Name"),
    ).toBe("tag:ArvadosInstanceSetID");

    await gone.destroy();
    await tagged.setTags({ ArvadosIdleBehavior: "hold", ArvadosInstanceSecret: "replaced" });
    const after = await s.instances({ ArvadosInstanceSetID: SET_ID });
    expect(after.map((i) => i.id)).not.toContain(gone.id);
    expect(after).toHaveLength(10);
    expect(after.find((i) => i.id === tagged.id)?.tags).toEqual({
      ArvadosInstanceSetID: SET_ID,
      ArvadosInstanceSecret: "replaced",
      ArvadosIdleBehavior: "hold",
    });
  });

  it("looks up zones and spot prices when spot instances are listed", async () => {
    const s = await newSet();
    await s.create(request({ instanceType: instanceType({ Preemptible: true }) }));
    await s.create(request());
    proxy.clear();
    const listed = await s.instances({ ArvadosInstanceSetID: SET_ID });
    expect(listed).toHaveLength(2);
    expect(proxy.actions).toEqual([
      "DescribeInstances",
      "DescribeInstanceStatus",
      "DescribeSpotPriceHistory",
    ]);
    const prices = proxy.requests[2] ?? new URLSearchParams();
    expect(prices.get("Filter.1.Name")).toBe("instance-type");
    expect(prices.get("Filter.1.Value.1")).toBe("m5.large");
    expect(prices.get("Filter.2.Value.1")).toBe("Linux/UNIX");
    // moto ignores product-description and so returns no history; on-demand never has any.
    for (const i of listed) expect(i.priceHistory(instanceType())).toEqual([]);
  });

  it("fails over to the next subnet on a subnet error from the API and counts the attempts", async () => {
    const { subnets } = await network();
    const registry = new Registry();
    const s = await newSet({ SubnetID: subnets }, registry);
    proxy.inject({
      action: "RunInstances",
      code: "InsufficientFreeAddressesInSubnet",
      message: "The specified subnet does not have enough free addresses to satisfy the request.",
      when: (p) => p.get("NetworkInterface.1.SubnetId") === subnets[0],
      times: Infinity,
    });
    const inst = await s.create(request());
    expect((await describeOne(inst.id)).SubnetId).toBe(subnets[1]);
    // The next create starts at the subnet that worked.
    const again = await s.create(request());
    expect((await describeOne(again.id)).SubnetId).toBe(subnets[1]);
    const metrics = await registry.getSingleMetricAsString(
      "arvados_dispatchcloud_ec2_instance_starts_total",
    );
    expect(metrics).toContain(`{subnet_id="${subnets[0]}",success="0"} 1`);
    expect(metrics).toContain(`{subnet_id="${subnets[1]}",success="1"} 2`);
    await s.instances({});
    expect(await registry.getSingleMetricAsString("arvados_dispatchcloud_ec2_instances")).toContain(
      `{subnet_id="${subnets[1]}"} 2`,
    );
  });

  it("turns EC2 error responses into rate limit, quota and capacity errors", async () => {
    const s = await newSet();
    proxy.inject({
      action: "RunInstances",
      code: "RequestLimitExceeded",
      message: "Request limit exceeded.",
      status: 503,
    });
    proxy.inject({
      action: "RunInstances",
      code: "InstanceLimitExceeded",
      message: "Your quota allows for 0 more running instance(s).",
    });
    proxy.inject({
      action: "RunInstances",
      code: "InsufficientInstanceCapacity",
      message: "We currently do not have sufficient m5.large capacity.",
    });
    proxy.inject({
      action: "DescribeInstances",
      code: "Throttling",
      message: "Rate exceeded",
      status: 503,
    });
    const errs = [];
    for (let i = 0; i < 3; i++) errs.push(await s.create(request()).catch((e: unknown) => e));
    expect(RateLimitError.is(errs[0])).toBe(true);
    expect(QuotaError.is(errs[1])).toBe(true);
    expect(CapacityError.is(errs[2]) && errs[2].scope).toBe("instance-type");
    expect(RateLimitError.is(await s.instances({}).catch((e: unknown) => e))).toBe(true);
    // The SDK does not retry: each error cost exactly one request.
    expect(proxy.actions).toEqual([
      "RunInstances",
      "RunInstances",
      "RunInstances",
      "DescribeInstances",
    ]);
  });
});

describe("conformance", () => {
  runConformanceSuite(
    "ec2",
    async () => {
      await moto.reset();
      proxy.clear();
      const set = await createEc2Driver(context({}));
      return {
        set,
        cleanup: () => set.stop(),
        injectCreateError(kind) {
          const faults = {
            "rate-limit": {
              code: "RequestLimitExceeded",
              message: "Request limit exceeded.",
              status: 503,
            },
            quota: {
              code: "InstanceLimitExceeded",
              message: "Your quota allows for 0 more running instance(s).",
            },
            capacity: {
              code: "InsufficientInstanceCapacity",
              message: "We currently do not have sufficient capacity.",
            },
          } as const;
          proxy.inject({ action: "RunInstances", ...faults[kind] });
        },
      };
    },
    {
      instanceType: instanceType({ Name: "t3small", ProviderType: "t3.small" }),
      imageId: "ami-12c6146b",
      injectableErrors: ["rate-limit", "quota", "capacity"],
    },
  );
});
