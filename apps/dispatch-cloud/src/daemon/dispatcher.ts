import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { ArvadosClient } from "@dispatch-cloud/arvados-client";
import {
  instanceSetId as brandInstanceSetId,
  systemClock,
  type Clock,
  type InstanceSetId,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import { createDriverRegistry, type DriverRegistry } from "@dispatch-cloud/cloud-driver-api";
import { RETRY_MS } from "@dispatch-cloud/cluster-lock";
import type { LoadedConfig } from "@dispatch-cloud/config";
import type { ContainerQueue } from "@dispatch-cloud/container-queue";
import {
  AZURE_PARAMETER_KEYS,
  createAzureDriver,
  readParameters as readAzureParameters,
} from "@dispatch-cloud/driver-azure";
import { ec2Driver } from "@dispatch-cloud/driver-ec2";
import { gceDriver } from "@dispatch-cloud/driver-gce";
import { loopbackDriver } from "@dispatch-cloud/driver-loopback";
import { stubDriverDefinition } from "@dispatch-cloud/driver-stub";
import type { Scheduler } from "@dispatch-cloud/scheduler";
import type { WorkerPool } from "@dispatch-cloud/worker-pool";
import { Registry } from "prom-client";
import { sessionPorts } from "./adapters.js";
import { checkDispatcherConfig } from "./config-check.js";
import { dispatchLock, type DispatchLockOptions } from "./dispatch-lock.js";
import { LockFollower } from "./lock-follower.js";
import { runnerChoiceFor } from "./runner-choice.js";
import { startSession } from "./session.js";
import {
  controllerClient,
  decoratedInstanceSet,
  instanceTypes,
  listenChoice,
  lookupDriver,
  registerFrameworkMetrics,
  requireDispatchKey,
  serveManagementApi,
} from "./steps.js";
import { Teardown, runLogged } from "./teardown.js";

export { DispatcherStartError } from "./steps.js";

/** Our version, reported as `arvados_version_running{version}` and in the `listening` line. */
export const VERSION = "0.1.0";

/**
 * The bundled runner (apps/crunch-run's one-file build), beside this app in the workspace:
 * apps/dispatch-cloud/{src,dist}/daemon → apps/crunch-run/dist/crunch-run.cjs.
 */
export function bundledRunnerPath(): string {
  return fileURLToPath(new URL("../../../crunch-run/dist/crunch-run.cjs", import.meta.url));
}

/** Every driver `Containers.CloudVMs.Driver` may name, with the parameters each reads. */
export function defaultDrivers(): DriverRegistry {
  return createDriverRegistry({
    ec2: ec2Driver,
    azure: {
      create: createAzureDriver(),
      parameterKeys: AZURE_PARAMETER_KEYS,
      parseParameters: (p) => readAzureParameters(p, { credentialInjected: false }),
    },
    gce: gceDriver,
    // Arvados's loopback driver reads no DriverParameters either.
    loopback: { create: loopbackDriver, parameterKeys: [], parseParameters: () => undefined },
    stub: stubDriverDefinition,
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

export interface DispatcherOptions {
  /** The loaded config (`loadConfig(...).config`). */
  readonly config: LoadedConfig;
  readonly logger: Logger;
  /** `ARVADOS_SERVICE_INTERNAL_URL` from the environment: picks one InternalURLs entry. */
  readonly serviceInternalUrl?: string;
  /** Time for the pool, the cloud decorators and SSH (default real time). */
  readonly clock?: Clock;
  /** Where the bundled runner is (default: the apps/crunch-run build beside this app). */
  readonly runnerBinaryPath?: string;
  /** Where the dashboard's files are (default: beside the http-api build). */
  readonly dashboardDir?: string;
  /** The drivers by name (default: ec2, azure, gce, loopback, stub). Tests inject a shared stub cloud. */
  readonly drivers?: DriverRegistry;
  /** Metrics registry (default: a fresh one). */
  readonly registry?: Registry;
  /** sha256 of the config file, for `arvados_config_*_timestamp_seconds` (omit if unknown). */
  readonly configSha256?: string;
  /** When the config file was last modified, ms since the epoch. */
  readonly configSourceTime?: number;
  /** Aborting it gives up waiting for the dispatch lock (start-up then rejects). */
  readonly signal?: AbortSignal;
  /** Time and retry period for the dispatch lock (default real time, Arvados's 5 s). */
  readonly lock?: DispatchLockOptions;
}

export interface Dispatcher {
  /** The InternalURLs entry served (what clients use). */
  readonly url: string;
  /** Where the management API is actually bound (`http://host:port/`). */
  readonly listenUrl: string;
  readonly instanceSetId: InstanceSetId;
  /** The running session's pool, queue and scheduler (the last one's while the lock is lost). */
  readonly pool: WorkerPool;
  readonly queue: ContainerQueue;
  readonly scheduler: Scheduler;
  /** False while the dispatch lock is lost: nothing is scheduled, created or started. */
  readonly dispatching: boolean;
  /** Called whenever dispatching stops or resumes; returns the unsubscribe. */
  onDispatchingChange(listener: () => void): () => void;
  readonly client: ArvadosClient;
  readonly registry: Registry;
  /**
   * Stop in Arvados's order: scheduler, pool, instance set, HTTP server, lock. Destroys no VM
   * and kills no container: a new dispatcher adopts everything.
   */
  stop(): Promise<void>;
}

/**
 * Starts a dispatcher from a loaded config: the start-up sequence of dispatcher spec §1.2, one
 * named step at a time. Waits for the dispatch lock first (logging who holds it), and resolves
 * only once the management API listens and the scheduler runs;
 * rejects with a DispatcherStartError (message for the operator) when it cannot start, having
 * undone whatever it had started.
 */
export async function startDispatcher(options: DispatcherOptions): Promise<Dispatcher> {
  const { config: loaded, logger } = options;
  const { cluster } = loaded;
  const vms = cluster.Containers.CloudVMs;
  const clock = options.clock ?? systemClock;
  const started = new Teardown(logger);
  try {
    const { url, listen: listenAt } = await listenChoice(cluster, options.serviceInternalUrl);

    const registry = options.registry ?? new Registry();
    registerFrameworkMetrics(registry, {
      version: VERSION,
      configSha256: options.configSha256,
      configSourceTime: options.configSourceTime,
    });

    const { client, controllerUrl } = controllerClient(cluster, logger);
    started.add("API client", () => client.close());

    const id = deriveInstanceSetId(cluster.SystemRootToken);
    const key = requireDispatchKey(loaded);
    const drivers = options.drivers ?? defaultDrivers();
    const factory = lookupDriver(drivers, vms.Driver);
    // What config-check warns about (a DriverParameters key the driver never reads, an unused
    // database keyword) is worth a line at start too; errors stop the steps below anyway.
    for (const w of checkDispatcherConfig(loaded, drivers).warnings) logger.warn({}, w);
    const types = instanceTypes(cluster);
    const instanceSet = await decoratedInstanceSet({
      cluster,
      id,
      factory,
      registry,
      logger,
      clock,
    });
    started.add("instance set", () => instanceSet.stop());

    // 4d: the dispatch lock. Nothing below runs, and nothing listens, until it is ours.
    const lock = dispatchLock(loaded, id, logger, options.lock);
    started.add("lock", () => lock.release());
    const bundledRunner = options.runnerBinaryPath ?? bundledRunnerPath();
    const runner = runnerChoiceFor(cluster, bundledRunner);
    logger.info({ Runner: runner.kind, DeployRunnerBinary: runner.deploy }, runner.summary);
    const runnerBinary = runner.deploy;
    const follower = new LockFollower({
      lock,
      logger,
      clock: options.lock?.clock ?? systemClock,
      retryMs: options.lock?.retryMs ?? RETRY_MS,
      startSession: () =>
        startSession({
          loaded,
          key,
          id,
          types,
          instanceSet,
          client,
          runnerBinary,
          bundledRunner,
          apiHost: runnerApiHost(controllerUrl),
          registry,
          logger,
          clock,
        }),
    });
    // 4e–g and 5: pool, queue and scheduler.
    const first = await follower.begin(options.signal);
    started.add("dispatching", () => follower.stop());

    const { server, listenUrl } = await serveManagementApi({
      cluster,
      listenAt,
      ports: sessionPorts(
        () => follower.current(),
        () => follower.pausedBecause,
      ),
      registry,
      logger,
      ...(options.dashboardDir === undefined ? {} : { dashboardDir: options.dashboardDir }),
    });
    started.add("management API", () => server.close());
    logger.info(
      { URL: url.href, Listen: listenUrl, Service: "arvados-dispatch-cloud", Version: VERSION },
      "listening",
    );

    // Step 7: run.
    first.scheduler.start();

    let stopping: Promise<void> | undefined;
    const stop = async (): Promise<void> => {
      logger.info({}, "stopping");
      // Arvados's order: scheduler, pool, instance set, HTTP server, lock.
      await runLogged(logger, "dispatching", () => follower.stop());
      await runLogged(logger, "instance set", () => instanceSet.stop());
      await runLogged(logger, "management API", () => server.close());
      await runLogged(logger, "lock", () => lock.release());
      await runLogged(logger, "API client", () => client.close());
      logger.info({}, "stopped");
    };
    return {
      url: url.href,
      listenUrl,
      instanceSetId: id,
      get pool() {
        return follower.latest().pool;
      },
      get queue() {
        return follower.latest().queue;
      },
      get scheduler() {
        return follower.latest().scheduler;
      },
      get dispatching() {
        return follower.dispatching;
      },
      onDispatchingChange: (listener) => follower.onChange(listener),
      client,
      registry,
      stop() {
        stopping ??= stop();
        return stopping;
      },
    };
  } catch (err) {
    await started.undoAll();
    throw err;
  }
}
