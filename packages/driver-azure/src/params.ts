import { readDriverParameters } from "@dispatch-cloud/cloud-driver-api";

/** The Azure clouds an operator can name in `CloudEnvironment`, with their endpoints. */
export interface CloudEnvironment {
  readonly name: CloudEnvironmentName;
  /** Azure Resource Manager base URL, no trailing slash. */
  readonly resourceManagerEndpoint: string;
  /** Entra ID (AAD) authority host for client-credential logins. */
  readonly authorityHost: string;
  /** Blob URLs are `https://<account>.blob.<suffix>/`. */
  readonly storageEndpointSuffix: string;
}

export type CloudEnvironmentName =
  "AzurePublicCloud" | "AzureUSGovernmentCloud" | "AzureChinaCloud";

export const CLOUD_ENVIRONMENTS: Readonly<Record<CloudEnvironmentName, CloudEnvironment>> = {
  AzurePublicCloud: {
    name: "AzurePublicCloud",
    resourceManagerEndpoint: "https://management.azure.com",
    authorityHost: "https://login.microsoftonline.com",
    storageEndpointSuffix: "core.windows.net",
  },
  AzureUSGovernmentCloud: {
    name: "AzureUSGovernmentCloud",
    resourceManagerEndpoint: "https://management.usgovcloudapi.net",
    authorityHost: "https://login.microsoftonline.us",
    storageEndpointSuffix: "core.usgovcloudapi.net",
  },
  AzureChinaCloud: {
    name: "AzureChinaCloud",
    resourceManagerEndpoint: "https://management.chinacloudapi.cn",
    authorityHost: "https://login.chinacloudapi.cn",
    storageEndpointSuffix: "core.chinacloudapi.cn",
  },
};

/** DriverParameters after defaults and validation. Names follow config.yml. */
export interface AzureParameters {
  readonly SubscriptionID: string;
  readonly ClientID: string;
  readonly ClientSecret: string;
  readonly TenantID: string;
  readonly CloudEnvironment: CloudEnvironment;
  readonly ResourceGroup: string;
  /**
   * Defaults to ResourceGroup. Managed and gallery images live here. OS disks do not (Azure
   * puts them beside their VM), but the disk collector looks here too for older leftovers.
   */
  readonly ImageResourceGroup: string;
  readonly Location: string;
  readonly Network: string;
  /** Defaults to ResourceGroup. */
  readonly NetworkResourceGroup: string;
  readonly Subnet: string;
  readonly StorageAccount: string;
  readonly BlobContainer: string;
  readonly SharedImageGalleryName: string;
  readonly SharedImageGalleryImageVersion: string;
  /** Milliseconds. */
  readonly DeleteDanglingResourcesAfter: number;
  readonly AdminUsername: string;
  /**
   * Not an Arvados key: replaces the environment's ARM endpoint, so tests can point the driver
   * at a local fake (`http://127.0.0.1:PORT`). Over plain http no bearer token is sent.
   */
  readonly ResourceManagerEndpoint: string;
  /**
   * Not an Arvados key: replaces the environment's Entra ID (AAD) authority host for the
   * client-credentials login, e.g. a private cloud's or a test's `https://127.0.0.1:PORT`. Such
   * a host is trusted as configured (no instance discovery against login.microsoftonline.com).
   */
  readonly ActiveDirectoryEndpoint: string;
  /**
   * Not an Arvados key: the blob service URL for StorageAccount instead of
   * `https://<StorageAccount>.blob.<suffix>`, e.g. azurite's `http://127.0.0.1:PORT/devstoreaccount1`.
   */
  readonly StorageBlobEndpoint: string;
}

/** Every DriverParameters key the Azure driver reads (config checks warn about any other). */
export const AZURE_PARAMETER_KEYS = [
  "SubscriptionID",
  "ClientID",
  "ClientSecret",
  "TenantID",
  "CloudEnvironment",
  "ResourceGroup",
  "ImageResourceGroup",
  "Location",
  "Network",
  "NetworkResourceGroup",
  "Subnet",
  "StorageAccount",
  "BlobContainer",
  "SharedImageGalleryName",
  "SharedImageGalleryImageVersion",
  "DeleteDanglingResourcesAfter",
  "AdminUsername",
  "ResourceManagerEndpoint",
  "ActiveDirectoryEndpoint",
  "StorageBlobEndpoint",
] as const;

/**
 * Reads and checks DriverParameters (keys case-insensitive, unknown keys ignored: the object
 * also carries the EC2 driver's defaults). Throws a DriverParametersError listing every problem
 * with its key path.
 */
export function readParameters(
  raw: Readonly<Record<string, unknown>> | null | undefined,
  options: { credentialInjected: boolean },
): AzureParameters {
  const r = readDriverParameters(raw, undefined, AZURE_PARAMETER_KEYS);
  const optional = (key: string) => r.string(key, { default: "" });
  const required = (key: string) => r.string(key, { nonEmpty: true });
  const credential = options.credentialInjected ? optional : required;

  const envName = r.oneOf(
    "CloudEnvironment",
    Object.keys(CLOUD_ENVIRONMENTS) as CloudEnvironmentName[],
    { default: "AzurePublicCloud" },
  );
  const endpoint = (key: string, { httpsOnly = false } = {}): string => {
    const v = optional(key).replace(/\/+$/, "");
    if (v === "") return v;
    if (httpsOnly && !/^https:\/\/[^/]/.test(v))
      r.problem(
        key,
        `must be an https URL (tokens are never fetched over http), not ${JSON.stringify(v)}`,
      );
    else if (!/^https?:\/\/[^/]/.test(v))
      r.problem(key, `must be an http or https URL, not ${JSON.stringify(v)}`);
    return v;
  };
  const resourceGroup = required("ResourceGroup");
  const value: AzureParameters = {
    SubscriptionID: required("SubscriptionID"),
    ClientID: credential("ClientID"),
    ClientSecret: credential("ClientSecret"),
    TenantID: credential("TenantID"),
    CloudEnvironment: CLOUD_ENVIRONMENTS[envName],
    ResourceGroup: resourceGroup,
    ImageResourceGroup: optional("ImageResourceGroup") || resourceGroup,
    Location: r.string("Location", { default: "centralus" }) || "centralus",
    Network: required("Network"),
    NetworkResourceGroup: optional("NetworkResourceGroup") || resourceGroup,
    Subnet: required("Subnet"),
    StorageAccount: optional("StorageAccount"),
    BlobContainer: optional("BlobContainer"),
    SharedImageGalleryName: optional("SharedImageGalleryName"),
    SharedImageGalleryImageVersion: optional("SharedImageGalleryImageVersion"),
    DeleteDanglingResourcesAfter: r.duration("DeleteDanglingResourcesAfter", {
      default: 20_000,
      min: 0,
    }),
    AdminUsername: r.string("AdminUsername", { default: "crunch" }) || "crunch",
    ResourceManagerEndpoint: endpoint("ResourceManagerEndpoint"),
    ActiveDirectoryEndpoint: endpoint("ActiveDirectoryEndpoint", { httpsOnly: true }),
    StorageBlobEndpoint: endpoint("StorageBlobEndpoint"),
  };
  r.finish();
  return value;
}
