import type { ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { ContainerQueue } from "@dispatch-cloud/container-queue";
import type { Scheduler } from "@dispatch-cloud/scheduler";
import type { WorkerPool } from "@dispatch-cloud/worker-pool";
import { checkRunner, createPool, createScheduling, type PoolOptions } from "./steps.js";
import { runLogged } from "./teardown.js";

/**
 * What runs only while this dispatcher holds the dispatch lock: the worker pool, the container
 * queue and the scheduler (steps 4e–g and 5). Losing the lock stops a session as a normal stop
 * does (no VM destroyed, no container killed); getting it back starts a new one, which adopts
 * the VMs and running containers again, as a restarted dispatcher would.
 */
export interface Session {
  readonly pool: WorkerPool;
  readonly queue: ContainerQueue;
  readonly scheduler: Scheduler;
  /** The runner check's answer at start (the management API serves it until the next one). */
  readonly health: { ok: true } | { ok: false; error: string };
  /** Scheduler, then pool; then forgets the session's metrics so a new session can register. */
  stop(): Promise<void>;
}

export interface SessionOptions extends PoolOptions {
  readonly client: ArvadosClient;
}

/** Builds a session (the scheduler not started yet); undoes itself if a step fails. */
export async function startSession(o: SessionOptions): Promise<Session> {
  // The metrics this session registers: those new by the time it is built (or has failed).
  const names = (): Set<string> => new Set(o.registry.getMetricsAsArray().map((m) => m.name));
  const before = names();
  let mine: string[] = [];
  const claimMetrics = (): void => {
    mine = [...names()].filter((n) => !before.has(n));
  };
  const forgetMetrics = (): void => {
    for (const n of mine) o.registry.removeSingleMetric(n);
  };
  const pool = createPool(o);
  try {
    const health = await checkRunner(pool, o.runnerBinary, o.bundledRunner);
    pool.start();
    const { queue, scheduler } = createScheduling({
      cluster: o.loaded.cluster,
      types: o.types,
      client: o.client,
      pool,
      registry: o.registry,
      logger: o.logger,
    });
    claimMetrics();
    return {
      pool,
      queue,
      scheduler,
      health,
      async stop() {
        await runLogged(o.logger, "scheduler", () => scheduler.stop());
        await runLogged(o.logger, "worker pool", () => pool.stop());
        forgetMetrics();
      },
    };
  } catch (err) {
    await runLogged(o.logger, "worker pool", () => pool.stop());
    claimMetrics();
    forgetMetrics();
    throw err;
  }
}
