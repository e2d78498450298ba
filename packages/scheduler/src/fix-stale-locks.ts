// The stale-lock fixer (dispatcher-core §3.6), run once before the first pass.
import type {
  Clock,
  ContainerUuid,
  Logger,
  QueuedContainer,
  Timers,
} from "@dispatch-cloud/arvados-types";
import type { ContainerQueue, WorkerPool } from "./ports.js";

export interface StaleLockDeps<C extends QueuedContainer> {
  readonly queue: ContainerQueue<C>;
  readonly pool: WorkerPool;
  readonly logger: Logger;
  readonly clock: Pick<Clock, "now"> & Timers;
  /** Containers.StaleLockTimeout, ms. */
  readonly staleLockTimeoutMs: number;
}

/**
 * After a restart, containers we locked may sit on VMs the pool has not re-probed yet. Wait
 * (up to StaleLockTimeout) for unknown workers to report, then unlock what is still unaccounted.
 */
export async function fixStaleLocks<C extends QueuedContainer>(
  d: StaleLockDeps<C>,
  signal?: AbortSignal,
): Promise<void> {
  let notified: (() => void) | undefined;
  let expired = false;
  const poke = () => {
    const n = notified;
    notified = undefined;
    n?.();
  };
  const unsub = d.pool.subscribe(poke);
  const timer = d.clock.setTimeout(() => {
    expired = true;
    poke();
  }, d.staleLockTimeoutMs);
  const onAbort = () => poke();
  signal?.addEventListener("abort", onAbort);
  let stale: ContainerUuid[] = [];
  try {
    for (;;) {
      const counts = await d.pool.countWorkers(signal);
      if (!((counts.unknown ?? 0) > 0) || signal?.aborted) break;
      const running = d.pool.running();
      stale = [];
      for (const [uuid, ent] of d.queue.entries().entries) {
        if (ent.container.state === "Locked" && !running.has(uuid)) stale.push(uuid);
      }
      if (stale.length === 0) return;
      if (expired) break;
      await new Promise<void>((resolve) => (notified = resolve));
      if (expired) break;
    }
    // Deliberately as Arvados: the list computed before the last wait is the one unlocked.
    for (const uuid of stale) {
      if (signal?.aborted) return;
      const r = await d.queue.unlock(uuid, signal);
      if (!r.ok) {
        d.logger.warn(
          { ContainerUUID: uuid, error: r.error.message },
          `Unlock ${uuid}: ${r.error.message}`,
        );
      }
    }
  } finally {
    unsub();
    d.clock.clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}
