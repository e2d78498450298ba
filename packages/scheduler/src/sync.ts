// The syncer (dispatcher-core §3.7), after every pass: reconcile the queue's container states
// with what the pool runs.
import type { Logger, QueuedContainer } from "@dispatch-cloud/arvados-types";
import type { ContainerOperations } from "./operations.js";
import type { ContainerQueue, WorkerPool } from "./ports.js";

export class Syncer<C extends QueuedContainer> {
  #warnedUnexpectedState = false;
  readonly #queue: ContainerQueue<C>;
  readonly #pool: WorkerPool;
  readonly #logger: Logger;
  readonly #ops: ContainerOperations<C>;

  constructor(
    queue: ContainerQueue<C>,
    pool: WorkerPool,
    logger: Logger,
    ops: ContainerOperations<C>,
  ) {
    this.#queue = queue;
    this.#pool = pool;
    this.#logger = logger;
    this.#ops = ops;
  }

  /** Cancel, kill, requeue or forget each container whose state disagrees with the pool. */
  async sync(): Promise<void> {
    const counts = await this.#pool.countWorkers();
    const anyUnknown = (counts.unknown ?? 0) > 0;
    const running = this.#pool.running();
    const { entries, threshold } = this.#queue.entries();
    const thresholdMs = threshold.getTime();
    const ops = this.#ops;
    for (const [uuid, ent] of entries) {
      const ctr = ent.container;
      const inRunning = running.has(uuid);
      const exitTime = running.get(uuid) ?? null;
      const exited = exitTime !== null;
      // The cache was fetched after crunch-run exited, so its state is final.
      const fresh = exited && thresholdMs > exitTime.getTime();
      switch (ctr.state) {
        case "Running":
          if (!inRunning) {
            if (!anyUnknown) ops.cancel(uuid, "not running on any worker");
          } else if (exited && fresh) {
            ops.cancel(uuid, "state=Running after crunch-run exited");
          } else if (ctr.priority === 0) {
            ops.kill(uuid, "priority=0");
          }
          break;
        case "Complete":
        case "Cancelled":
          if (inRunning) {
            ops.kill(uuid, `state=${ctr.state}`);
          } else {
            this.#logger.info(
              { ContainerUUID: uuid, State: ctr.state },
              "container finished -- dropping from queue",
            );
            this.#queue.forget(uuid);
          }
          break;
        case "Queued":
          if (inRunning) {
            ops.kill(uuid, "pool says running, but queue says state=Queued");
          } else if (ctr.priority === 0) {
            this.#logger.info(
              { ContainerUUID: uuid, State: ctr.state },
              "container on hold -- dropping from queue",
            );
            this.#queue.forget(uuid);
          }
          break;
        case "Locked":
          if (inRunning && exited && fresh) {
            ops.requeue(uuid, "crunch-run exited");
          } else if (inRunning && !exited && ctr.priority === 0) {
            ops.kill(uuid, "priority=0");
          } else if (!inRunning && ctr.priority === 0) {
            ops.requeue(uuid, "priority=0");
          }
          break;
        default:
          if (!this.#warnedUnexpectedState) {
            this.#warnedUnexpectedState = true;
            this.#logger.error(
              { ContainerUUID: uuid, State: String(ctr.state) },
              "BUG: unexpected state",
            );
          }
      }
    }
    for (const uuid of running.keys()) {
      if (!entries.has(uuid)) ops.kill(uuid, "not in queue");
    }
  }
}
