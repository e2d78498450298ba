import { DriverParametersError } from "@dispatch-cloud/cloud-driver-api";
import { describe, expect, it } from "vitest";
import { ec2ClientConfig } from "./instance-set.js";
import { parseEc2Parameters } from "./params.js";

function problemsOf(params: Record<string, unknown>): readonly string[] {
  try {
    parseEc2Parameters(params);
  } catch (err) {
    if (err instanceof DriverParametersError) return err.problems;
    throw err;
  }
  return [];
}

describe("parseEc2Parameters", () => {
  it("applies the Arvados defaults to an empty object", () => {
    expect(parseEc2Parameters({})).toEqual({
      accessKeyId: "",
      secretAccessKey: "",
      region: "",
      endpoint: "",
      securityGroupIds: [],
      subnetIds: [],
      adminUsername: "crunch",
      ebsVolumeType: "gp2",
      ebsPrice: 0.1,
      iamInstanceProfile: "",
      spotPriceUpdateIntervalMs: 86_400_000,
      instanceTypeQuotaGroups: {
        a: "standard",
        c: "standard",
        d: "standard",
        h: "standard",
        i: "standard",
        m: "standard",
        r: "standard",
        t: "standard",
        z: "standard",
        vt: "g",
        p5: "p5",
      },
    });
  });

  it("matches keys case-insensitively and ignores other drivers' keys", () => {
    const c = parseEc2Parameters({
      accesskeyid: "AKID",
      SECRETACCESSKEY: "secret",
      region: "eu-west-1",
      endpoint: "http://127.0.0.1:5000",
      adminusername: "admin",
      ebsvolumetype: "gp3",
      EbsPrice: 0.08,
      IamInstanceProfile: "dispatch",
      spotPriceUpdateInterval: "1h30m",
      TenantID: "azure-only",
      Location: "centralus",
    });
    expect(c).toMatchObject({
      accessKeyId: "AKID",
      secretAccessKey: "secret",
      region: "eu-west-1",
      endpoint: "http://127.0.0.1:5000",
      adminUsername: "admin",
      ebsVolumeType: "gp3",
      ebsPrice: 0.08,
      iamInstanceProfile: "dispatch",
      spotPriceUpdateIntervalMs: 5_400_000,
    });
  });

  it.each([
    [undefined, []],
    ["", []],
    [[], []],
    ["subnet-1", ["subnet-1"]],
    [
      ["subnet-1", "subnet-2"],
      ["subnet-1", "subnet-2"],
    ],
  ])("reads SubnetID %j as %j", (SubnetID, want) => {
    expect(parseEc2Parameters(SubnetID === undefined ? {} : { SubnetID }).subnetIds).toEqual(want);
  });

  it("reads SecurityGroupIDs as a list or as a map keyed by ID", () => {
    expect(parseEc2Parameters({ SecurityGroupIDs: ["sg-1", "sg-2"] }).securityGroupIds).toEqual([
      "sg-1",
      "sg-2",
    ]);
    expect(
      parseEc2Parameters({ SecurityGroupIDs: { "sg-2": {}, "sg-1": {} } }).securityGroupIds,
    ).toEqual(["sg-1", "sg-2"]);
    expect(parseEc2Parameters({ SecurityGroupIDs: {} }).securityGroupIds).toEqual([]);
  });

  it("defaults an empty EBSVolumeType to gp2 and treats a zero interval as off", () => {
    const c = parseEc2Parameters({ EBSVolumeType: "", SpotPriceUpdateInterval: "0" });
    expect(c.ebsVolumeType).toBe("gp2");
    expect(c.spotPriceUpdateIntervalMs).toBe(0);
  });

  it("merges InstanceTypeQuotaGroups into the defaults", () => {
    const c = parseEc2Parameters({
      InstanceTypeQuotaGroups: { g: "g", p5: "p-family", m: "mine" },
    });
    expect(c.instanceTypeQuotaGroups).toMatchObject({
      a: "standard",
      g: "g",
      p5: "p-family",
      m: "mine",
      vt: "g",
    });
  });

  it("reports every problem with its key path", () => {
    expect(
      problemsOf({
        AccessKeyID: "AKID",
        Region: 5,
        Endpoint: "127.0.0.1:5000",
        SecurityGroupIDs: ["sg-1", 7],
        SubnetID: ["subnet-1", ""],
        EBSPrice: "cheap",
        SpotPriceUpdateInterval: "24",
        InstanceTypeQuotaGroups: ["m"],
      }),
    ).toEqual([
      "Containers.CloudVMs.DriverParameters.SecretAccessKey: AccessKeyID and SecretAccessKey must both be set, or both be empty to use the default credential chain",
      'Containers.CloudVMs.DriverParameters.Endpoint: must be an http:// or https:// URL, not "127.0.0.1:5000"',
      "Containers.CloudVMs.DriverParameters.Region: must be a string, not 5",
      "Containers.CloudVMs.DriverParameters.SecurityGroupIDs[1]: must be a non-empty string, not 7",
      'Containers.CloudVMs.DriverParameters.SubnetID[1]: must be a non-empty string, not ""',
      'Containers.CloudVMs.DriverParameters.EBSPrice: must be a number, not "cheap"',
      'Containers.CloudVMs.DriverParameters.SpotPriceUpdateInterval: must be a duration such as "10s" or "1m30s", not "24"',
      'Containers.CloudVMs.DriverParameters.InstanceTypeQuotaGroups: must be a map of strings, not ["m"]',
    ]);
  });

  it("rejects a SubnetID that is neither a string nor a list", () => {
    expect(problemsOf({ SubnetID: 3 })).toEqual([
      "Containers.CloudVMs.DriverParameters.SubnetID: must be a subnet ID or a list of them, not 3",
    ]);
  });
});

describe("ec2ClientConfig", () => {
  it("turns SDK retries off and uses static keys and the endpoint when given", () => {
    const c = parseEc2Parameters({
      AccessKeyID: "AKID",
      SecretAccessKey: "secret",
      Region: "us-east-1",
      Endpoint: "http://127.0.0.1:5000",
    });
    expect(ec2ClientConfig(c)).toEqual({
      maxAttempts: 1,
      region: "us-east-1",
      endpoint: "http://127.0.0.1:5000",
      credentials: { accessKeyId: "AKID", secretAccessKey: "secret" },
    });
  });

  it("leaves credentials to the SDK's default chain when both keys are empty", () => {
    expect(ec2ClientConfig(parseEc2Parameters({ Region: "us-west-2" }))).toEqual({
      maxAttempts: 1,
      region: "us-west-2",
    });
  });
});
