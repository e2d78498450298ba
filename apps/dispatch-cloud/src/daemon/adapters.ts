import type { QueuedContainer } from "@dispatch-cloud/arvados-types";
import type { ContainerQueue, PolledContainer } from "@dispatch-cloud/container-queue";
import type {
  ContainersView,
  HealthCheck,
  ManagementPorts,
  MetricsSource,
  PoolAdmin,
  QueueEntryView,
} from "@dispatch-cloud/http-api";
import type { Registry } from "prom-client";
import type {
  ContainerQueue as SchedulerQueuePort,
  Scheduler,
  WorkerPool as SchedulerPoolPort,
} from "@dispatch-cloud/scheduler";
import type { WorkerPool } from "@dispatch-cloud/worker-pool";
import type { Session } from "./session.js";

/**
 * The scheduler's WorkerPool port over the real pool: the pool answers a create with a result
 * that says why it refused; the scheduler only needs the placeholder view or null.
 */
export function schedulerPoolPort(pool: WorkerPool): SchedulerPoolPort {
  return {
    atQuota: () => pool.atQuota(),
    atCapacity: (type) => pool.atCapacity(type),
    create(type) {
      const r = pool.create(type);
      return r.ok ? r.view : null;
    },
    shutdown: (id) => pool.shutdown(id),
    instances: () => pool.instances(),
    countWorkers: (signal) => pool.countWorkers(signal),
    running: () => pool.running(),
    subscribe: (listener) => pool.subscribe(listener),
    startContainer: (id, ctr) => pool.startContainer(id, ctr),
    killContainer: (uuid, reason) => pool.killContainer(uuid, reason),
    forgetContainer: (uuid) => pool.forgetContainer(uuid),
  };
}

/** The management API's containers view over the scheduler's latest pass. */
export function containersView<C extends QueuedContainer>(
  scheduler: Scheduler<C>,
  passed: () => boolean,
): ContainersView {
  return {
    containers(): readonly QueueEntryView[] | null {
      // Arvados serves `"items": null` until the first pass has run.
      if (!passed()) return null;
      return scheduler.lastQueue().map(({ entry, schedulingStatus }): QueueEntryView => ({
        container: entry.container,
        instanceTypes: entry.instanceTypes,
        instanceResources: entry.instanceResources,
        firstSeenAt: entry.firstSeenAt,
        schedulingStatus,
      }));
    },
  };
}

/**
 * The health check the management API calls synchronously: the last answer of the pool's
 * (asynchronous) runner-binary check, refreshed in the background on every call.
 */
export function poolHealth(
  pool: WorkerPool,
  initial: { ok: true } | { ok: false; error: string },
): HealthCheck {
  let last = initial;
  let checking = false;
  return {
    check() {
      if (!checking) {
        checking = true;
        pool
          .checkHealth()
          .then((r) => (last = r))
          .catch((err: unknown) => (last = { ok: false, error: String(err) }))
          .finally(() => (checking = false));
      }
      return last.ok ? { healthy: true } : { healthy: false, error: last.error };
    },
  };
}

/** The scheduler's ContainerQueue port is the real queue: the same methods and records. */
export function schedulerQueuePort(queue: ContainerQueue): SchedulerQueuePort<PolledContainer> {
  return queue;
}

/**
 * prom-client's Registry as the management API's MetricsSource. It fits at run time; only its
 * `type` field is declared as prom-client's MetricType rather than a string.
 */
export function metricsSource(registry: Registry): MetricsSource {
  return registry as unknown as MetricsSource;
}

/**
 * The management API's ports over whichever session is dispatching. While the dispatch lock is
 * not ours nothing is managed here: no queue (`items: null`), no instances, every action a 404,
 * and the health check says why.
 */
export function sessionPorts(
  current: () => Session | null,
  pausedBecause: () => string,
): ManagementPorts {
  const checks = new WeakMap<Session, HealthCheck>();
  const miss = { ok: false as const, error: "not dispatching" };
  const pool: PoolAdmin = {
    instances: () => current()?.pool.instances() ?? [],
    killContainer: (uuid, reason) => current()?.pool.killContainer(uuid, reason) ?? false,
    setIdleBehavior: (id, b) => current()?.pool.setIdleBehavior(id, b) ?? miss,
    killInstance: (id, reason) => current()?.pool.killInstance(id, reason) ?? miss,
  };
  return {
    scheduler: {
      containers() {
        const s = current();
        if (s === null) return null;
        return containersView(
          s.scheduler,
          () => s.queue.entries().threshold.getTime() > 0,
        ).containers();
      },
    },
    pool,
    health: {
      check() {
        const s = current();
        if (s === null) return { healthy: false, error: `not dispatching: ${pausedBecause()}` };
        let h = checks.get(s);
        if (h === undefined) {
          h = poolHealth(s.pool, s.health);
          checks.set(s, h);
        }
        return h.check();
      },
    },
  };
}
