import { ComputeManagementClient } from "@azure/arm-compute";
import { NetworkManagementClient } from "@azure/arm-network";
import {
  RestError,
  createHttpHeaders,
  createPipelineRequest,
  exponentialRetryPolicy,
  type Pipeline,
  type TlsSettings,
} from "@azure/core-rest-pipeline";
import { ClientSecretCredential, type TokenCredential } from "@azure/identity";
import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import type { AzureParameters } from "./params.js";

export interface AzureClients {
  readonly compute: ComputeManagementClient;
  readonly network: NetworkManagementClient;
  /** ARM base URL the clients talk to. */
  readonly endpoint: string;
  readonly insecure: boolean;
}

/** Storage management API version used for ListKeys, as Arvados uses. */
const STORAGE_API_VERSION = "2018-02-01";

/**
 * PEM certificates that replace the system's trusted CAs for every Azure call (token endpoint,
 * ARM, ListKeys): a private cloud's CA, or a test's self-signed peer.
 */
export type TrustedCertificates = string | readonly string[];

function tlsOptions(ca: TrustedCertificates | undefined): { tlsOptions?: TlsSettings } {
  return ca === undefined ? {} : { tlsOptions: { ca: typeof ca === "string" ? ca : [...ca] } };
}

export function buildCredential(
  p: AzureParameters,
  injected: TokenCredential | undefined,
  ca?: TrustedCertificates,
): TokenCredential {
  if (injected !== undefined) return injected;
  const override = p.ActiveDirectoryEndpoint !== "";
  return new ClientSecretCredential(p.TenantID, p.ClientID, p.ClientSecret, {
    authorityHost: override ? p.ActiveDirectoryEndpoint : p.CloudEnvironment.authorityHost,
    // MSAL checks an authority it does not know with login.microsoftonline.com; an authority
    // host the operator configured is trusted as given (a private cloud, or a local test peer).
    ...(override ? { disableInstanceDiscovery: true } : {}),
    ...tlsOptions(ca),
  });
}

export function buildClients(
  p: AzureParameters,
  credential: TokenCredential,
  ca?: TrustedCertificates,
): AzureClients {
  const endpoint = p.ResourceManagerEndpoint || p.CloudEnvironment.resourceManagerEndpoint;
  // The token audience is the real cloud's ARM endpoint even when a test endpoint is used.
  const scope = `${p.CloudEnvironment.resourceManagerEndpoint}/.default`;
  const insecure = endpoint.startsWith("http://");
  const compute = new ComputeManagementClient(credential, p.SubscriptionID, {
    endpoint,
    credentials: { scopes: [scope] },
    allowInsecureConnection: insecure,
    ...tlsOptions(ca),
  });
  const network = new NetworkManagementClient(credential, p.SubscriptionID, {
    endpoint,
    $host: endpoint,
    credentialScopes: scope,
    allowInsecureConnection: insecure,
    ...tlsOptions(ca),
  });
  for (const pipeline of [compute.pipeline, network.pipeline]) adjustPipeline(pipeline, insecure);
  return { compute, network, endpoint, insecure };
}

/**
 * - 429s (and 503s with Retry-After) must reach the classifier, so the dispatcher's own rate
 *   limiting backs off every call; the SDK's default retry would sleep inside one call instead.
 *   Server errors and transport failures are still retried.
 * - A bearer token is never sent over plain http: that only happens against a local fake,
 *   which needs no token, and the SDK refuses to try anyway.
 */
function adjustPipeline(pipeline: Pipeline, insecure: boolean): void {
  pipeline.removePolicy({ name: "defaultRetryPolicy" });
  pipeline.addPolicy(exponentialRetryPolicy({ maxRetries: 3 }), { phase: "Retry" });
  if (insecure) pipeline.removePolicy({ name: "bearerTokenAuthenticationPolicy" });
}

/**
 * A blob container client for unmanaged VHD images: ListKeys on StorageAccount (in
 * ResourceGroup) and the first key. There is no storage management SDK among our dependencies,
 * so ListKeys goes through the network client's authenticated pipeline.
 */
export async function buildBlobContainer(
  p: AzureParameters,
  clients: AzureClients,
  signal?: AbortSignal,
): Promise<{ container: ContainerClient; serviceUrl: string }> {
  const url =
    `${clients.endpoint}/subscriptions/${encodeURIComponent(p.SubscriptionID)}` +
    `/resourceGroups/${encodeURIComponent(p.ResourceGroup)}` +
    `/providers/Microsoft.Storage/storageAccounts/${encodeURIComponent(p.StorageAccount)}` +
    `/listKeys?api-version=${STORAGE_API_VERSION}`;
  const request = createPipelineRequest({
    url,
    method: "POST",
    allowInsecureConnection: clients.insecure,
    headers: createHttpHeaders({ accept: "application/json" }),
    ...(signal === undefined ? {} : { abortSignal: signal }),
  });
  const response = await clients.network.sendRequest(request);
  const body = parseJson(response.bodyAsText ?? undefined);
  if (response.status < 200 || response.status >= 300) {
    const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    throw new RestError(
      `listing keys of storage account "${p.StorageAccount}" failed: ${typeof err?.message === "string" ? err.message : `HTTP ${response.status}`}`,
      {
        statusCode: response.status,
        response,
        ...(typeof err?.code === "string" ? { code: err.code } : {}),
      },
    );
  }
  const key = (body as { keys?: { value?: unknown }[] } | undefined)?.keys?.[0]?.value;
  if (typeof key !== "string" || key === "") {
    throw new Error(`storage account "${p.StorageAccount}" returned no access keys`);
  }
  const serviceUrl =
    p.StorageBlobEndpoint ||
    `https://${p.StorageAccount}.blob.${p.CloudEnvironment.storageEndpointSuffix}`;
  const container = new ContainerClient(
    `${serviceUrl}/${p.BlobContainer}`,
    new StorageSharedKeyCredential(p.StorageAccount, key),
  );
  return { container, serviceUrl };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Options for a long-running operation: the poll interval when set, and the caller's signal. */
export function lroOptions(
  pollIntervalMs: number | undefined,
  signal?: AbortSignal,
): { updateIntervalInMs?: number; abortSignal?: AbortSignal } {
  return {
    ...(pollIntervalMs === undefined ? {} : { updateIntervalInMs: pollIntervalMs }),
    ...(signal === undefined ? {} : { abortSignal: signal }),
  };
}
