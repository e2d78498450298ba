/*
 * The few Compute Engine calls the driver makes, over the SDK's REST transport, each one bounded
 * in time and abandoned when the caller's signal aborts. The SDK, which takes seconds to import,
 * is loaded with the first call, so a daemon starts (and answers its management API) without
 * waiting for it.
 */
import { abortReason, raceAbort } from "@dispatch-cloud/arvados-types";
import type {
  ImagesClient,
  InstancesClient,
  ZoneOperationsClient,
  protos,
} from "@google-cloud/compute";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";
import { endpointParts, type GceConfig } from "./params.js";

export type GceInstanceResource = protos.google.cloud.compute.v1.IInstance;
export type GceOperation = protos.google.cloud.compute.v1.IOperation;
export type GceMetadata = protos.google.cloud.compute.v1.IMetadata;

/** How long one API call may take before the driver gives up on it. */
export const CALL_TIMEOUT_MS = 60_000;
/** `operations.wait` may hold the request up to two minutes by design; allow a little more. */
export const WAIT_CALL_TIMEOUT_MS = 150_000;

export interface GceApi {
  insert(zone: string, instance: GceInstanceResource, signal?: AbortSignal): Promise<GceOperation>;
  get(zone: string, name: string, signal?: AbortSignal): Promise<GceInstanceResource>;
  /** Every instance in the project (all zones, all pages) matching `filter`. */
  list(filter: string | undefined, signal?: AbortSignal): Promise<GceInstanceResource[]>;
  setMetadata(
    zone: string,
    name: string,
    metadata: GceMetadata,
    signal?: AbortSignal,
  ): Promise<GceOperation>;
  delete(zone: string, name: string, signal?: AbortSignal): Promise<GceOperation>;
  /** One `zoneOperations.wait`: the operation once done, or as it is after a while. */
  waitOperation(zone: string, name: string, signal?: AbortSignal): Promise<GceOperation>;
  /** The size of an image (`projects/P/global/images/N` or `…/images/family/F`), in GB. */
  imageDiskSizeGb(image: string, signal?: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

/**
 * The SDK's client options for the configured project, credentials and endpoint. Retries are
 * left to the worker pool, which backs off by error kind.
 */
function clientOptions(config: GceConfig): ConstructorParameters<typeof InstancesClient>[0] {
  const credentials =
    config.credentials.kind === "inline"
      ? {
          credentials: {
            client_email: config.credentials.key.client_email,
            private_key: config.credentials.key.private_key,
          },
        }
      : {};
  const ep = config.endpoint === "" ? undefined : endpointParts(config.endpoint);
  return {
    projectId: config.project,
    fallback: true,
    ...credentials,
    ...(ep === undefined
      ? {}
      : {
          apiEndpoint: ep.host,
          port: ep.port,
          protocol: ep.protocol,
          // With a custom endpoint the SDK would set scopes, turning the service-account key
          // into an OAuth token exchange with Google; with none it signs its own JWT for the
          // Compute API, as it does against Google's endpoint, and needs no other server.
          scopes: [],
        }),
  };
}

/** Calls go out once; the pool decides when to try again. */
const NO_RETRY = { retry: null } as const;

export function createGceApi(config: GceConfig): GceApi {
  const options = clientOptions(config);
  const project = config.project;
  let clients:
    Promise<{ instances: InstancesClient; operations: ZoneOperationsClient }> | undefined;
  let images: Promise<ImagesClient> | undefined;
  const open = new Set<{ close(): Promise<void> }>();
  /**
   * Initialised clients. The SDK's methods start their own initialisation without handling its
   * failure (an unhandled rejection), so it is done here first, and a failed one (e.g. no
   * Application Default Credentials) gives up those clients so the next call tries afresh.
   */
  const ready = async <T extends { initialize(): Promise<unknown>; close(): Promise<void> }>(
    make: () => T,
  ): Promise<T> => {
    const client = make();
    try {
      await bounded(() => client.initialize(), undefined);
      open.add(client);
      return client;
    } catch (err) {
      void client.close().catch(() => undefined);
      throw new Error(`cannot set up the Compute API client: ${errorMessage(err)}`, { cause: err });
    }
  };
  // Shared by every caller, so set up without any one caller's signal; each caller waits for it
  // with its own.
  const sdk = (signal?: AbortSignal) => {
    clients ??= import("@google-cloud/compute").then(async (m) => {
      const [instances, operations] = await Promise.all([
        ready(() => new m.InstancesClient(options)),
        ready(() => new m.ZoneOperationsClient(options)),
      ]);
      return { instances, operations };
    });
    const p = clients;
    p.catch(() => {
      if (clients === p) clients = undefined;
    });
    return bounded(() => p, signal);
  };
  const imagesClient = (signal?: AbortSignal) => {
    images ??= import("@google-cloud/compute").then((m) =>
      ready(() => new m.ImagesClient(options)),
    );
    const p = images;
    p.catch(() => {
      if (images === p) images = undefined;
    });
    return bounded(() => p, signal);
  };
  /** A call that changes something: GCE answers with the zone operation doing it. */
  const mutate = async (
    start: (c: InstancesClient) => Promise<[{ latestResponse: unknown }, ...unknown[]]>,
    signal: AbortSignal | undefined,
  ): Promise<GceOperation> => {
    const { instances } = await sdk(signal);
    const [op] = await bounded(() => start(instances), signal);
    return op.latestResponse as GceOperation;
  };
  return {
    insert: (zone, instanceResource, signal) =>
      mutate((c) => c.insert({ project, zone, instanceResource }, NO_RETRY), signal),
    async get(zone, instance, signal) {
      const { instances } = await sdk(signal);
      const [inst] = await bounded(
        () => instances.get({ project, zone, instance }, NO_RETRY),
        signal,
      );
      return inst;
    },
    async list(filter, signal) {
      const { instances } = await sdk(signal);
      const out: GceInstanceResource[] = [];
      const iterable = instances.aggregatedListAsync(
        // A zone that cannot be listed fails the whole listing: a partial one would make the
        // pool think that zone's VMs were gone.
        { project, returnPartialSuccess: false, ...(filter === undefined ? {} : { filter }) },
        // The iterator fetches page after page itself; saying so keeps the SDK from warning.
        { ...NO_RETRY, autoPaginate: false },
      );
      const pages = iterable[Symbol.asyncIterator]();
      for (;;) {
        const next = await bounded(() => pages.next(), signal);
        if (next.done === true) break;
        out.push(...(next.value[1].instances ?? []));
      }
      return out;
    },
    setMetadata: (zone, instance, metadataResource, signal) =>
      mutate((c) => c.setMetadata({ project, zone, instance, metadataResource }, NO_RETRY), signal),
    delete: (zone, instance, signal) =>
      mutate((c) => c.delete({ project, zone, instance }, NO_RETRY), signal),
    async waitOperation(zone, operation, signal) {
      const { operations } = await sdk(signal);
      const [op] = await bounded(
        () => operations.wait({ project, zone, operation }, NO_RETRY),
        signal,
        WAIT_CALL_TIMEOUT_MS,
      );
      return op;
    },
    async imageDiskSizeGb(path, signal) {
      const m = /^projects\/([^/]+)\/global\/images\/(?:family\/([^/]+)|([^/]+))$/.exec(path);
      if (m === null) throw new Error(`cannot look up image ${JSON.stringify(path)}`);
      const [imageProject, family, image] = [m[1]!, m[2], m[3]];
      const client = await imagesClient(signal);
      const [img] =
        family !== undefined
          ? await bounded(
              () => client.getFromFamily({ project: imageProject, family }, NO_RETRY),
              signal,
            )
          : await bounded(
              () => client.get({ project: imageProject, image: image ?? "" }, NO_RETRY),
              signal,
            );
      return Number(img.diskSizeGb ?? 0);
    },
    async close() {
      await Promise.allSettled([...open].map((c) => c.close()));
      open.clear();
    },
  };
}

/**
 * The call `start` makes, abandoned (rejecting with the abort reason) when `signal` aborts, or
 * with a timeout error when `timeoutMs` passes. The SDK's REST calls cannot be cancelled from
 * outside, so an abandoned call runs to its end in the background, its outcome ignored.
 */
export function bounded<T>(
  start: () => Promise<T>,
  signal: AbortSignal | undefined,
  timeoutMs: number = CALL_TIMEOUT_MS,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  const deadline = AbortSignal.timeout(timeoutMs);
  const stop = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
  return raceAbort(start(), stop, () =>
    signal?.aborted
      ? abortReason(signal)
      : new Error(`no answer from the Compute API within ${timeoutMs / 1000}s`),
  );
}
