import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import {
  instanceSetId as brandInstanceSetId,
  systemClock,
  type Clock,
  type InstanceSetId,
  type InstanceType,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import {
  UnsupportedDriverError,
  createDriverRegistry,
  decorateInstanceSet,
  errorMessage,
  type DriverRegistry,
  type InstanceSet,
} from "@dispatch-cloud/cloud-driver-api";
import { encodeCluster, type ClusterConfig, type LoadedConfig } from "@dispatch-cloud/config";
import { ContainerQueue } from "@dispatch-cloud/container-queue";
import { createAzureDriver } from "@dispatch-cloud/driver-azure";
import { createEc2Driver } from "@dispatch-cloud/driver-ec2";
import {
  localhostInstanceType,
  loopbackDriver,
  validateLoopbackInstanceTypes,
} from "@dispatch-cloud/driver-loopback";
import { stubDriver } from "@dispatch-cloud/driver-stub";
import { createManagementApp, listen, type ListeningServer } from "@dispatch-cloud/http-api";
import { Scheduler } from "@dispatch-cloud/scheduler";
import { createSshExecutorFactory } from "@dispatch-cloud/ssh-executor";
import { WorkerPool, type WorkerPoolConfig } from "@dispatch-cloud/worker-pool";
import { Gauge, Registry } from "prom-client";
import {
  containersView,
  metricsSource,
  poolHealth,
  schedulerPoolPort,
  schedulerQueuePort,
} from "./adapters.js";
import { bindAddress, chooseListenUrl } from "./listen-url.js";
import { acquireInstanceLock, type InstanceLock } from "./lock.js";

/** Our version, reported as `arvados_version_running{version}` and in the `listening` line. */
export const VERSION = "0.1.0";

/** Arvados's DeployRunnerBinary default: "the dispatcher's own crunch-run". */
export const SELF_EXE = "/proc/self/exe";

/**
 * The bundled runner (apps/crunch-run's one-file build), beside this app in the workspace:
 * apps/dispatch-cloud/{src,dist}/daemon → apps/crunch-run/dist/crunch-run.cjs.
 */
export function bundledRunnerPath(): string {
  return fileURLToPath(new URL("../../../crunch-run/dist/crunch-run.cjs", import.meta.url));
}

/** Every driver `Containers.CloudVMs.Driver` may name. */
export function defaultDrivers(): DriverRegistry {
  return createDriverRegistry({
    ec2: createEc2Driver,
    azure: createAzureDriver(),
    loopback: loopbackDriver,
    stub: stubDriver,
  });
}

/**
 * InstanceSetID (cloud-side §1.8): the token UUID of a `v2/` token, else the lowercase hex MD5
 * of the token. It tags every VM, so changing SystemRootToken orphans running VMs.
 */
export function deriveInstanceSetId(systemRootToken: string): InstanceSetId {
  if (systemRootToken.startsWith("v2/")) {
    const uuid = systemRootToken.split("/")[1];
    if (uuid !== undefined && uuid !== "") return brandInstanceSetId(uuid);
  }
  return brandInstanceSetId(createHash("md5").update(systemRootToken).digest("hex"));
}

/**
 * What crunch-run gets as ARVADOS_API_HOST. Arvados sends host[:port] and crunch-run assumes
 * https; for a plain-http controller (the demo, tests) we send the whole URL, which our runner
 * and the stub understand, since host:port would be taken as https.
 */
export function runnerApiHost(controllerUrl: URL): string {
  return controllerUrl.protocol === "http:"
    ? `http://${controllerUrl.host}${controllerUrl.pathname.replace(/\/$/, "")}`
    : controllerUrl.host;
}

/**
 * Which runner the pool deploys, from `CloudVMs.DeployRunnerBinary`:
 * - `/proc/self/exe` (Arvados's default, "our own crunch-run") → our bundled runner;
 * - "" → deploy nothing, run `Containers.CrunchRunCommand` already on the VM image;
 * - any other path → deploy that file as is.
 */
export function resolveRunnerBinary(configured: string, bundled: string): string {
  return configured === SELF_EXE ? bundled : configured;
}

export interface DispatcherOptions {
  /** The loaded config (`loadConfig(...).config`). */
  readonly config: LoadedConfig;
  readonly logger: Logger;
  /** `ARVADOS_SERVICE_INTERNAL_URL` from the environment: picks one InternalURLs entry. */
  readonly serviceInternalUrl?: string;
  /** Time for the pool, the cloud decorators and SSH (default real time). */
  readonly clock?: Clock;
  /** The runner `/proc/self/exe` stands for (default: the bundled apps/crunch-run build). */
  readonly runnerBinaryPath?: string;
  /** The drivers by name (default: ec2, azure, loopback, stub). Tests inject a shared stub cloud. */
  readonly drivers?: DriverRegistry;
  /** Metrics registry (default: a fresh one). */
  readonly registry?: Registry;
  /** sha256 of the config file, for `arvados_config_*_timestamp_seconds` (omit if unknown). */
  readonly configSha256?: string;
  /** When the config file was last modified, ms since the epoch. */
  readonly configSourceTime?: number;
}

export interface Dispatcher {
  /** The InternalURLs entry served (what clients use). */
  readonly url: string;
  /** Where the management API is actually bound (`http://host:port/`). */
  readonly listenUrl: string;
  readonly instanceSetId: InstanceSetId;
  readonly pool: WorkerPool;
  readonly queue: ContainerQueue;
  readonly scheduler: Scheduler;
  readonly client: ArvadosClient;
  readonly registry: Registry;
  /**
   * Stop in Arvados's order: scheduler, pool, instance set, HTTP server, lock. Destroys no VM
   * and kills no container: a new dispatcher adopts everything.
   */
  stop(): Promise<void>;
}

/** A start-up failure: the message is for the operator, printed as is (no stack). */
export class DispatcherStartError extends Error {
  override readonly name = "DispatcherStartError";
}

function fail(message: string): never {
  throw new DispatcherStartError(message);
}

function instanceTypes(cluster: ClusterConfig): InstanceType[] {
  const vms = cluster.Containers.CloudVMs;
  const types: InstanceType[] = Object.values(cluster.InstanceTypes);
  if (vms.Driver === "loopback") {
    const problems = validateLoopbackInstanceTypes(Object.keys(cluster.InstanceTypes));
    if (problems.length > 0) fail(problems.join("; "));
    if (types.length === 0) return [localhostInstanceType()];
  }
  return types;
}

function poolConfig(
  loaded: LoadedConfig,
  id: InstanceSetId,
  types: readonly InstanceType[],
  runnerBinary: string,
  apiHost: string,
): WorkerPoolConfig {
  const { cluster } = loaded;
  const c = cluster.Containers;
  const vms = c.CloudVMs;
  return {
    instanceSetId: id,
    clusterId: loaded.clusterId,
    instanceTypes: Object.fromEntries(types.map((t) => [t.Name, t])),
    imageId: vms.ImageID,
    tagKeyPrefix: vms.TagKeyPrefix,
    bootProbeCommand: vms.BootProbeCommand,
    instanceInitCommand: vms.InstanceInitCommand,
    deployRunnerBinary: runnerBinary,
    deployRunnerDirectory: vms.DeployRunnerDirectory,
    crunchRunCommand: c.CrunchRunCommand,
    runtimeEngine: c.RuntimeEngine,
    crunchRunArgumentsList: c.CrunchRunArgumentsList,
    publicKey: vms.DeployPublicKey ? (loaded.dispatchKey?.authorizedKey ?? null) : null,
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
    apiHost,
    apiInsecure: cluster.TLS.Insecure,
    systemRootToken: cluster.SystemRootToken,
    localKeepBlobBuffersPerVcpu: c.LocalKeepBlobBuffersPerVCPU,
    driver: vms.Driver,
    clusterConfigJson: encodeCluster(cluster),
  };
}

/**
 * Starts a dispatcher from a loaded config: the start-up sequence of dispatcher spec §1.2.
 * Resolves once the management API listens and the scheduler runs; rejects with a
 * DispatcherStartError (message for the operator) when it cannot start, having undone
 * whatever it had started.
 */
export async function startDispatcher(options: DispatcherOptions): Promise<Dispatcher> {
  const { config: loaded, logger } = options;
  const { cluster } = loaded;
  const vms = cluster.Containers.CloudVMs;
  const clock = options.clock ?? systemClock;
  const cleanups: (() => Promise<void>)[] = [];
  const undo = async (): Promise<void> => {
    for (const f of cleanups.splice(0).toReversed()) {
      try {
        await f();
      } catch (err) {
        logger.warn({ error: errorMessage(err) }, "error while stopping");
      }
    }
  };

  try {
    // §1.2 step 1: the listen URL.
    const service = cluster.Services["DispatchCloud"];
    const chosen = await chooseListenUrl(service?.InternalURLs ?? {}, options.serviceInternalUrl);
    if (!chosen.ok) fail(chosen.error);
    const { url, listen: listenAt } = chosen.choice;
    if (listenAt.protocol !== "http:") {
      fail(
        `cannot serve ${listenAt.href}: TLS is not supported by this dispatcher; use an http:// InternalURL (or ListenURL) behind a TLS proxy`,
      );
    }

    // Step 2: the registry and the framework's gauges.
    const registry = options.registry ?? new Registry();
    new Gauge({
      name: "arvados_version_running",
      help: "Indicated version is running.",
      labelNames: ["version"],
      registers: [registry],
    }).set({ version: VERSION }, 1);
    if (options.configSha256 !== undefined) {
      new Gauge({
        name: "arvados_config_load_timestamp_seconds",
        help: "Time when config file was loaded.",
        labelNames: ["sha256"],
        registers: [registry],
      }).set({ sha256: options.configSha256 }, Date.now() / 1000);
      if (options.configSourceTime !== undefined) {
        new Gauge({
          name: "arvados_config_source_timestamp_seconds",
          help: "Timestamp of config file when it was loaded.",
          labelNames: ["sha256"],
          registers: [registry],
        }).set({ sha256: options.configSha256 }, options.configSourceTime / 1000);
      }
    }

    // Step 3: the API client. Arvados sets no request timeout at all (one hung request stalls
    // polling); we keep the client's generous default (5 minutes) so a hung controller cannot
    // stall the dispatcher forever.
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
    cleanups.push(() => client.close());

    // Step 4a: InstanceSetID.
    const id = deriveInstanceSetId(cluster.SystemRootToken);

    // 4b: the private key (config already parsed it).
    const key = loaded.dispatchKey;
    if (key === null) {
      fail(
        "error parsing configured Containers.DispatchPrivateKey: no key configured (the dispatcher logs in to every VM with it)",
      );
    }

    // 4c: the driver and its decorators (cloud-side §1.6).
    const drivers = options.drivers ?? defaultDrivers();
    let factory;
    try {
      factory = drivers.lookupDriver(vms.Driver);
    } catch (err) {
      if (err instanceof UnsupportedDriverError) fail(`error initializing driver: ${err.message}`);
      throw err;
    }
    const types = instanceTypes(cluster);
    if (types.length === 0) fail("InstanceTypes: no instance types are configured");
    const driverLogger = logger.child({ Driver: vms.Driver });
    let set: InstanceSet;
    try {
      set = await factory({
        parameters: vms.DriverParameters,
        instanceSetId: id,
        sharedResourceTags: vms.ResourceTags,
        logger: driverLogger,
        registry,
      });
    } catch (err) {
      fail(`error initializing driver: ${errorMessage(err)}`);
    }
    const instanceSet = decorateInstanceSet(set, {
      registry,
      maxCloudOpsPerSecond: vms.MaxCloudOpsPerSecond,
      resourceTags: vms.ResourceTags,
      logger: driverLogger,
      clock,
    });
    cleanups.push(() => instanceSet.stop());

    // 4d: one dispatcher per InstanceSetID on this host (Arvados: PostgreSQL advisory lock).
    const locked = await acquireInstanceLock(id);
    if (!locked.ok) fail(locked.error);
    const lock: InstanceLock = locked.lock;
    cleanups.push(() => lock.release());

    // 4e: the worker pool.
    const bundled = options.runnerBinaryPath ?? bundledRunnerPath();
    const runnerBinary = resolveRunnerBinary(vms.DeployRunnerBinary, bundled);
    const pool = new WorkerPool({
      instanceSet,
      executorFactory: createSshExecutorFactory({
        privateKey: key.text,
        port: vms.SSHPort,
        logger: logger.child({ Component: "ssh" }),
      }),
      clock,
      logger,
      registry,
      config: poolConfig(loaded, id, types, runnerBinary, runnerApiHost(controllerUrl)),
    });
    cleanups.push(() => pool.stop());

    // Step 5 (before the pool starts creating): the runner must load.
    if (runnerBinary !== "" && runnerBinary === bundled && !existsSync(bundled)) {
      fail(
        `error loading runner binary: ${bundled} does not exist (build apps/crunch-run, or set Containers.CloudVMs.DeployRunnerBinary)`,
      );
    }
    const health = await pool.checkHealth();
    if (!health.ok) fail(health.error);
    pool.start();

    // 4f–g: queue and scheduler.
    const queue = new ContainerQueue({
      client,
      logger,
      registry,
      selection: {
        instanceTypes: types,
        reserveExtraRAM: cluster.Containers.ReserveExtraRAM,
        localKeepBlobBuffersPerVCPU: cluster.Containers.LocalKeepBlobBuffersPerVCPU,
        maximumPriceFactor: cluster.Containers.MaximumPriceFactor,
      },
    });
    const scheduler = new Scheduler({
      queue: schedulerQueuePort(queue),
      pool: schedulerPoolPort(pool),
      logger,
      instanceTypes: types,
      registry,
      pollIntervalMs: vms.PollInterval,
      staleLockTimeoutMs: cluster.Containers.StaleLockTimeout,
      maxInstances: vms.MaxInstances,
      initialQuotaEstimate: vms.InitialQuotaEstimate,
      supervisorFraction: vms.SupervisorFraction,
      maxRunningContainersPerInstance: vms.MaxRunningContainersPerInstance,
      last503: () => {
        const t = client.lastServerError503();
        return t === null ? null : new Date(t);
      },
    });

    // 4h + step 6: the management API.
    const app = createManagementApp({
      managementToken: cluster.ManagementToken,
      ports: {
        scheduler: containersView(scheduler, () => queue.entries().threshold.getTime() > 0),
        pool,
        health: poolHealth(pool, health),
      },
      registry: metricsSource(registry),
      logger: logger.child({ Component: "management-api" }),
    });
    const { host, port } = bindAddress(listenAt);
    let server: ListeningServer;
    try {
      server = await listen(app, host, port);
    } catch (err) {
      fail(`cannot listen on ${listenAt.host}: ${errorMessage(err)}`);
    }
    cleanups.push(() => server.close());
    const bound = server.address;
    const listenUrl = `http://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}/`;
    logger.info(
      { URL: url.href, Listen: listenUrl, Service: "arvados-dispatch-cloud", Version: VERSION },
      "listening",
    );

    // Step 7: run.
    scheduler.start();

    // From here on, stop() owns the teardown.
    cleanups.length = 0;
    const step = async (what: string, f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (err) {
        logger.warn({ error: errorMessage(err) }, `error stopping ${what}`);
      }
    };
    let stopping: Promise<void> | undefined;
    const stop = async (): Promise<void> => {
      logger.info({}, "stopping");
      // Arvados's order: scheduler, pool, instance set, HTTP server, lock.
      await step("scheduler", () => scheduler.stop());
      await step("worker pool", () => pool.stop());
      await step("instance set", () => instanceSet.stop());
      await step("management API", () => server.close());
      await step("lock", () => lock.release());
      await step("API client", () => client.close());
      logger.info({}, "stopped");
    };
    return {
      url: url.href,
      listenUrl,
      instanceSetId: id,
      pool,
      queue,
      scheduler,
      client,
      registry,
      stop() {
        stopping ??= stop();
        return stopping;
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}
