import { DriverParametersError } from "@dispatch-cloud/cloud-driver-api";
import { describe, expect, it } from "vitest";
import { readParameters } from "./params.js";

const minimal = {
  SubscriptionID: "sub",
  ClientID: "cid",
  ClientSecret: "s3cret",
  TenantID: "tid",
  ResourceGroup: "rg",
  Network: "net",
  Subnet: "subnet",
};

function problemsOf(fn: () => unknown): readonly string[] {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(DriverParametersError);
  return (caught as DriverParametersError).problems;
}

describe("readParameters", () => {
  it("applies the Arvados defaults", () => {
    const p = readParameters(minimal, { credentialInjected: false });
    expect(p.CloudEnvironment.name).toBe("AzurePublicCloud");
    expect(p.CloudEnvironment.resourceManagerEndpoint).toBe("https://management.azure.com");
    expect(p.Location).toBe("centralus");
    expect(p.AdminUsername).toBe("crunch");
    expect(p.DeleteDanglingResourcesAfter).toBe(20_000);
    expect(p.ImageResourceGroup).toBe("rg");
    expect(p.NetworkResourceGroup).toBe("rg");
    expect(p.ResourceManagerEndpoint).toBe("");
    expect(p.ActiveDirectoryEndpoint).toBe("");
  });

  it("takes an https authority host override, without a trailing slash", () => {
    const p = readParameters(
      { ...minimal, ActiveDirectoryEndpoint: "https://login.example.net:8443/" },
      { credentialInjected: false },
    );
    expect(p.ActiveDirectoryEndpoint).toBe("https://login.example.net:8443");
    expect(
      problemsOf(() =>
        readParameters(
          { ...minimal, ActiveDirectoryEndpoint: "http://127.0.0.1:1234" },
          { credentialInjected: false },
        ),
      ),
    ).toEqual([
      'Containers.CloudVMs.DriverParameters.ActiveDirectoryEndpoint: must be an https URL (tokens are never fetched over http), not "http://127.0.0.1:1234"',
    ]);
  });

  it("matches keys case-insensitively and ignores other drivers' keys", () => {
    const { TenantID: _t, ResourceGroup: _r, ...rest } = minimal;
    const p = readParameters(
      {
        ...rest,
        TenantId: "tenant-2",
        resourcegroup: "rg",
        cloudenvironment: "AzureChinaCloud",
        deleteDanglingResourcesAfter: "1m30s",
        ImageResourceGroup: "images",
        Region: "us-east-1",
        EBSVolumeType: "gp2",
      },
      { credentialInjected: false },
    );
    expect(p.TenantID).toBe("tenant-2");
    expect(p.CloudEnvironment.authorityHost).toBe("https://login.chinacloudapi.cn");
    expect(p.CloudEnvironment.storageEndpointSuffix).toBe("core.chinacloudapi.cn");
    expect(p.DeleteDanglingResourcesAfter).toBe(90_000);
    expect(p.ImageResourceGroup).toBe("images");
  });

  it("knows the US government cloud", () => {
    const p = readParameters(
      { ...minimal, CloudEnvironment: "AzureUSGovernmentCloud" },
      { credentialInjected: false },
    );
    expect(p.CloudEnvironment.resourceManagerEndpoint).toBe("https://management.usgovcloudapi.net");
    expect(p.CloudEnvironment.authorityHost).toBe("https://login.microsoftonline.us");
    expect(p.CloudEnvironment.storageEndpointSuffix).toBe("core.usgovcloudapi.net");
  });

  it("reports every problem with its key path", () => {
    const problems = problemsOf(() =>
      readParameters(
        {
          SubscriptionID: "",
          ClientSecret: 42,
          CloudEnvironment: "AzureGermanCloud",
          DeleteDanglingResourcesAfter: "20",
          ResourceManagerEndpoint: "localhost:1234",
          Network: "net",
        },
        { credentialInjected: false },
      ),
    );
    const at = "Containers.CloudVMs.DriverParameters.";
    const keys = problems.map((p) => p.slice(at.length, p.indexOf(":")));
    expect(problems.every((p) => p.startsWith(at))).toBe(true);
    expect(new Set(keys)).toEqual(
      new Set([
        "SubscriptionID",
        "ClientID",
        "ClientSecret",
        "TenantID",
        "CloudEnvironment",
        "ResourceGroup",
        "Subnet",
        "DeleteDanglingResourcesAfter",
        "ResourceManagerEndpoint",
      ]),
    );
    expect(problems.find((p) => p.includes("CloudEnvironment"))).toContain("AzureGermanCloud");
    // The secret's value never appears in a problem.
    expect(problems.join("\n")).not.toContain("s3cret");
  });

  it("does not require client credentials when one is injected", () => {
    const { ClientID: _a, ClientSecret: _b, TenantID: _c, ...rest } = minimal;
    expect(readParameters(rest, { credentialInjected: true }).ClientID).toBe("");
    expect(problemsOf(() => readParameters(rest, { credentialInjected: false }))).toHaveLength(3);
  });
});
