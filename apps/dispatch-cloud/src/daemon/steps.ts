/*
 * The dispatcher's start-up steps (dispatcher spec §1.2), one function each, so the sequence in
 * dispatcher.ts reads as the spec does. Each step either returns what it built or throws a
 * DispatcherStartError whose message is for the operator; the caller undoes earlier steps.
 */
import { existsSync } from "node:fs";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { Clock, InstanceSetId, InstanceType, Logger } from "@dispatch-cloud/arvados-types";
import {
  UnsupportedDriverError,
  decorateInstanceSet,
  errorMessage,
  type DriverFactory,
  type DriverRegistry,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import {
  encodeCluster,
  type ClusterConfig,
  type DispatchKey,
  type LoadedConfig,
} from "@dispatch-cloud/config";
import { ContainerQueue } from "@dispatch-cloud/container-queue";
import {
  localhostInstanceType,
  validateLoopbackInstanceTypes,
} from "@dispatch-cloud/driver-loopback";
import {
  createManagementApp,
  listen,
  type ListeningServer,
  type ManagementPorts,
} from "@dispatch-cloud/http-api";
import { Scheduler } from "@dispatch-cloud/scheduler";
import { createSshExecutorFactory } from "@dispatch-cloud/ssh-executor";
import { WorkerPool, type WorkerPoolConfig } from "@dispatch-cloud/worker-pool";
import { Gauge, type Registry } from "prom-client";
import { metricsSource, schedulerPoolPort, schedulerQueuePort } from "./adapters.js";
import { bindAddress, chooseListenUrl, type ListenChoice } from "./listen-url.js";

/** A start-up failure: the message is for the operator, printed as is (no stack). */
export class DispatcherStartError extends Error {
  override readonly name = "DispatcherStartError";
}

export function fail(message: string): never {
  throw new DispatcherStartError(message);
}

/** Step 1: the InternalURLs entry this process serves, and where it binds. */
export async function listenChoice(
  cluster: ClusterConfig,
  serviceInternalUrl: string | undefined,
): Promise<ListenChoice> {
  const service = cluster.Services["DispatchCloud"];
  const chosen = await chooseListenUrl(service?.InternalURLs ?? {}, serviceInternalUrl);
  if (!chosen.ok) fail(chosen.error);
  if (chosen.choice.listen.protocol !== "http:") {
    fail(
      `cannot serve ${chosen.choice.listen.href}: TLS is not supported by this dispatcher; use an http:// InternalURL (or ListenURL) behind a TLS proxy`,
    );
  }
  return chosen.choice;
}

export interface FrameworkMetricsOptions {
  readonly version: string;
  /** sha256 of the config file, for `arvados_config_*_timestamp_seconds` (omit if unknown). */
  readonly configSha256?: string | undefined;
  /** When the config file was last modified, ms since the epoch. */
  readonly configSourceTime?: number | undefined;
}

/** Step 2: the gauges every Arvados service registers before its handler exists. */
export function registerFrameworkMetrics(registry: Registry, o: FrameworkMetricsOptions): void {
  new Gauge({
    name: "arvados_version_running",
    help: "Indicated version is running.",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version: o.version }, 1);
  if (o.configSha256 === undefined) return;
  new Gauge({
    name: "arvados_config_load_timestamp_seconds",
    help: "Time when config file was loaded.",
    labelNames: ["sha256"],
    registers: [registry],
  }).set({ sha256: o.configSha256 }, Date.now() / 1000);
  if (o.configSourceTime !== undefined) {
    new Gauge({
      name: "arvados_config_source_timestamp_seconds",
      help: "Timestamp of config file when it was loaded.",
      labelNames: ["sha256"],
      registers: [registry],
    }).set({ sha256: o.configSha256 }, o.configSourceTime / 1000);
  }
}

/**
 * Step 3: the API client. Arvados sets no request timeout at all (one hung request stalls
 * polling); we keep the client's generous default (5 minutes) so a hung controller cannot stall
 * the dispatcher forever.
 */
export function controllerClient(
  cluster: ClusterConfig,
  logger: Logger,
): { client: ArvadosClient; controllerUrl: URL } {
  const controller = cluster.Services["Controller"]?.ExternalURL ?? "";
  let controllerUrl: URL;
  try {
    controllerUrl = new URL(controller);
  } catch {
    fail(
      `Services.Controller.ExternalURL: cannot use ${JSON.stringify(controller)}: need the controller's URL`,
    );
  }
  if (controllerUrl.host === "") fail("Services.Controller.ExternalURL: host is empty");
  const client = new ArvadosClient({
    apiHost: controllerUrl.href,
    token: cluster.SystemRootToken,
    insecure: cluster.TLS.Insecure,
    maxConcurrentRequests: cluster.API.MaxConcurrentRequests,
    logger: logger.child({ Component: "arvados-client" }),
  });
  return { client, controllerUrl };
}

/** The configured instance types (the loopback driver's one synthesised type if none). */
export function instanceTypes(cluster: ClusterConfig): InstanceType[] {
  const vms = cluster.Containers.CloudVMs;
  const types: InstanceType[] = Object.values(cluster.InstanceTypes);
  if (vms.Driver === "loopback") {
    const problems = validateLoopbackInstanceTypes(Object.keys(cluster.InstanceTypes));
    if (problems.length > 0) fail(problems.join("; "));
    if (types.length === 0) return [localhostInstanceType()];
  }
  if (types.length === 0) fail("InstanceTypes: no instance types are configured");
  return types;
}

/** Step 4c, first half: the driver `Containers.CloudVMs.Driver` names. */
export function lookupDriver(drivers: DriverRegistry, name: string): DriverFactory {
  try {
    return drivers.lookupDriver(name);
  } catch (err) {
    if (err instanceof UnsupportedDriverError) fail(`error initializing driver: ${err.message}`);
    throw err;
  }
}

export interface InstanceSetOptions {
  readonly cluster: ClusterConfig;
  readonly id: InstanceSetId;
  readonly factory: DriverFactory;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock: Clock;
}

/** Step 4c: the driver's instance set with the decorators stacked (cloud-side §1.6). */
export async function decoratedInstanceSet(o: InstanceSetOptions): Promise<InstanceSet> {
  const vms = o.cluster.Containers.CloudVMs;
  const driverLogger = o.logger.child({ Driver: vms.Driver });
  let set: InstanceSet;
  try {
    set = await o.factory({
      parameters: vms.DriverParameters,
      instanceSetId: o.id,
      sharedResourceTags: vms.ResourceTags,
      logger: driverLogger,
      registry: o.registry,
    });
  } catch (err) {
    fail(`error initializing driver: ${errorMessage(err)}`);
  }
  return decorateInstanceSet(set, {
    registry: o.registry,
    maxCloudOpsPerSecond: vms.MaxCloudOpsPerSecond,
    resourceTags: vms.ResourceTags,
    logger: driverLogger,
    clock: o.clock,
  });
}

export interface PoolOptions {
  readonly loaded: LoadedConfig;
  readonly key: DispatchKey;
  readonly id: InstanceSetId;
  readonly types: readonly InstanceType[];
  readonly instanceSet: InstanceSet;
  /** The runner file to deploy ("" for none). */
  readonly runnerBinary: string;
  /** The bundled runner `/proc/self/exe` stands for. */
  readonly bundledRunner: string;
  /** What crunch-run gets as ARVADOS_API_HOST. */
  readonly apiHost: string;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock: Clock;
}

/** Step 4b: the private key the dispatcher logs in to every VM with (config parsed it). */
export function requireDispatchKey(loaded: LoadedConfig): DispatchKey {
  if (loaded.dispatchKey === null) {
    fail(
      "error parsing configured Containers.DispatchPrivateKey: no key configured (the dispatcher logs in to every VM with it)",
    );
  }
  return loaded.dispatchKey;
}

/** Step 4e: the worker pool (not started). */
export function createPool(o: PoolOptions): WorkerPool {
  return new WorkerPool({
    instanceSet: o.instanceSet,
    executorFactory: createSshExecutorFactory({
      privateKey: o.key.text,
      port: o.loaded.cluster.Containers.CloudVMs.SSHPort,
      logger: o.logger.child({ Component: "ssh" }),
    }),
    clock: o.clock,
    logger: o.logger,
    registry: o.registry,
    config: poolConfig(o),
  });
}

function poolConfig(o: PoolOptions): WorkerPoolConfig {
  const { cluster } = o.loaded;
  const c = cluster.Containers;
  const vms = c.CloudVMs;
  return {
    instanceSetId: o.id,
    clusterId: o.loaded.clusterId,
    instanceTypes: Object.fromEntries(o.types.map((t) => [t.Name, t])),
    imageId: vms.ImageID,
    tagKeyPrefix: vms.TagKeyPrefix,
    bootProbeCommand: vms.BootProbeCommand,
    instanceInitCommand: vms.InstanceInitCommand,
    deployRunnerBinary: o.runnerBinary,
    deployRunnerDirectory: vms.DeployRunnerDirectory,
    crunchRunCommand: c.CrunchRunCommand,
    runtimeEngine: c.RuntimeEngine,
    crunchRunArgumentsList: c.CrunchRunArgumentsList,
    publicKey: vms.DeployPublicKey ? o.key.authorizedKey : null,
    maxProbesPerSecond: vms.MaxProbesPerSecond,
    maxConcurrentInstanceCreateOps: vms.MaxConcurrentInstanceCreateOps,
    maxInstances: vms.MaxInstances,
    probeIntervalMs: vms.ProbeInterval,
    syncIntervalMs: vms.SyncInterval,
    timeoutIdleMs: vms.TimeoutIdle,
    timeoutBootingMs: vms.TimeoutBooting,
    timeoutProbeMs: vms.TimeoutProbe,
    timeoutShutdownMs: vms.TimeoutShutdown,
    timeoutTermMs: vms.TimeoutTERM,
    timeoutSignalMs: vms.TimeoutSignal,
    timeoutStaleRunLockMs: vms.TimeoutStaleRunLock,
    apiHost: o.apiHost,
    apiInsecure: cluster.TLS.Insecure,
    systemRootToken: cluster.SystemRootToken,
    localKeepBlobBuffersPerVcpu: c.LocalKeepBlobBuffersPerVCPU,
    driver: vms.Driver,
    clusterConfigJson: encodeCluster(cluster),
  };
}

/**
 * Step 5 (before the pool starts creating): the runner must load. Returns the first health
 * answer, which the management API serves until the next check.
 */
export async function checkRunner(
  pool: WorkerPool,
  runnerBinary: string,
  bundledRunner: string,
): Promise<{ ok: true } | { ok: false; error: string }> {
  if (runnerBinary !== "" && runnerBinary === bundledRunner && !existsSync(bundledRunner)) {
    fail(
      `error loading runner binary: ${bundledRunner} does not exist (build apps/crunch-run, or set Containers.CloudVMs.DeployRunnerBinary)`,
    );
  }
  const health = await pool.checkHealth();
  if (!health.ok) fail(health.error);
  return health;
}

export interface SchedulingOptions {
  readonly cluster: ClusterConfig;
  readonly types: readonly InstanceType[];
  readonly client: ArvadosClient;
  readonly pool: WorkerPool;
  readonly registry: Registry;
  readonly logger: Logger;
}

/** Steps 4f–g: the container queue and the scheduler over it (not started). */
export function createScheduling(o: SchedulingOptions): {
  queue: ContainerQueue;
  scheduler: Scheduler;
} {
  const { cluster } = o;
  const vms = cluster.Containers.CloudVMs;
  const queue = new ContainerQueue({
    client: o.client,
    logger: o.logger,
    registry: o.registry,
    selection: {
      instanceTypes: o.types,
      reserveExtraRAM: cluster.Containers.ReserveExtraRAM,
      localKeepBlobBuffersPerVCPU: cluster.Containers.LocalKeepBlobBuffersPerVCPU,
      maximumPriceFactor: cluster.Containers.MaximumPriceFactor,
    },
  });
  const scheduler = new Scheduler({
    queue: schedulerQueuePort(queue),
    pool: schedulerPoolPort(o.pool),
    logger: o.logger,
    instanceTypes: o.types,
    registry: o.registry,
    pollIntervalMs: vms.PollInterval,
    staleLockTimeoutMs: cluster.Containers.StaleLockTimeout,
    maxInstances: vms.MaxInstances,
    initialQuotaEstimate: vms.InitialQuotaEstimate,
    supervisorFraction: vms.SupervisorFraction,
    maxRunningContainersPerInstance: vms.MaxRunningContainersPerInstance,
    last503: () => {
      const t = o.client.lastServerError503();
      return t === null ? null : new Date(t);
    },
  });
  return { queue, scheduler };
}

export interface ManagementApiOptions {
  readonly cluster: ClusterConfig;
  readonly listenAt: URL;
  readonly ports: ManagementPorts;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly dashboardDir?: string;
}

/** Steps 4h and 6: the management API, listening. */
export async function serveManagementApi(
  o: ManagementApiOptions,
): Promise<{ server: ListeningServer; listenUrl: string }> {
  const app = createManagementApp({
    managementToken: o.cluster.ManagementToken,
    ports: o.ports,
    registry: metricsSource(o.registry),
    logger: o.logger.child({ Component: "management-api" }),
    ...(o.dashboardDir === undefined ? {} : { dashboardDir: o.dashboardDir }),
    service: {
      registry: o.registry,
      limits: {
        maxConcurrent: o.cluster.API.MaxConcurrentRequests,
        maxQueue: o.cluster.API.MaxQueuedRequests,
        maxQueueTimeForMinPriorityMs: o.cluster.API.MaxQueueTimeForLockRequests,
      },
    },
  });
  const { host, port } = bindAddress(o.listenAt);
  let server: ListeningServer;
  try {
    server = await listen(app, host, port);
  } catch (err) {
    fail(`cannot listen on ${o.listenAt.host}: ${errorMessage(err)}`);
  }
  const bound = server.address;
  const listenUrl = `http://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}/`;
  return { server, listenUrl };
}
