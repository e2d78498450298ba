import { hostname } from "node:os";
import {
  systemClock,
  type Clock,
  type InstanceSetId,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import {
  ClusterLock,
  RETRY_MS,
  checkConnection,
  connectionConfigured,
  lockApplicationName,
} from "@dispatch-cloud/cluster-lock";
import type { LoadedConfig } from "@dispatch-cloud/config";
import { acquireInstanceLock } from "./lock.js";
import { fail } from "./steps.js";

/** The lock that makes this the one dispatcher (dispatcher spec §1.2 step 4d). */
export interface DispatchLock {
  /** True for Arvados's PostgreSQL lock, false for the per-host fallback. */
  readonly clusterWide: boolean;
  /**
   * Waits until held (true) or `signal` aborts (false). `onLost` is called once if the lock
   * goes after that. The per-host lock never waits: it throws a DispatcherStartError if taken.
   */
  acquire(onLost: (reason: string) => void, signal?: AbortSignal): Promise<boolean>;
  release(): Promise<void>;
}

export interface DispatchLockOptions {
  /** Time for the lock's retries and checks (default real time). */
  readonly clock?: Clock;
  /** Between attempts and liveness checks (default Arvados's 5 s). */
  readonly retryMs?: number;
  /** Told why we wait whenever that changes (who holds the cluster lock, or a database error). */
  readonly onWaiting?: (reason: string) => void;
}

/**
 * Arvados's PostgreSQL advisory lock 10005 when `PostgreSQL.Connection` is configured, so our
 * dispatcher and Arvados's exclude each other across hosts; otherwise one dispatcher per
 * InstanceSetID per host (an abstract Unix socket the kernel frees when the process dies).
 */
export function dispatchLock(
  loaded: LoadedConfig,
  id: InstanceSetId,
  logger: Logger,
  options: DispatchLockOptions = {},
): DispatchLock {
  const connection = loaded.cluster.PostgreSQL.Connection;
  if (!connectionConfigured(connection)) {
    let held: { release(): Promise<void> } | undefined;
    return {
      clusterWide: false,
      async acquire() {
        const locked = await acquireInstanceLock(id);
        if (!locked.ok) fail(locked.error);
        held = locked.lock;
        return true;
      },
      release: () => held?.release() ?? Promise.resolve(),
    };
  }
  const checked = checkConnection(connection, `Clusters.${loaded.clusterId}.PostgreSQL.Connection`);
  if (checked.settings === null) fail(checked.errors.join("; "));
  for (const w of checked.warnings) logger.warn({}, w);
  const lock = new ClusterLock({
    settings: checked.settings,
    logger: logger.child({ Component: "cluster-lock" }),
    clock: options.clock ?? systemClock,
    retryMs: options.retryMs ?? RETRY_MS,
    applicationName: lockApplicationName(process.pid, hostname()),
    ...(options.onWaiting === undefined ? {} : { onWaiting: options.onWaiting }),
  });
  return {
    clusterWide: true,
    acquire: (onLost, signal) => lock.acquire(onLost, signal),
    release: () => lock.release(),
  };
}

/** The database password(s) in `PostgreSQL.Connection`, for the logger to scrub. */
export function databasePasswords(connection: unknown): string[] {
  if (typeof connection !== "object" || connection === null) return [];
  return Object.entries(connection).flatMap(([k, v]) =>
    k.toLowerCase() === "password" && typeof v === "string" && v !== "" ? [v] : [],
  );
}
