// The per-container operations the scheduler starts without waiting for them (lock, cancel,
// kill, requeue), at most one per container at a time, as Arvados's uuidOp.
import type { ContainerUuid, Logger, QueuedContainer } from "@dispatch-cloud/arvados-types";
import { errText } from "./format.js";
import type { ContainerQueue, WorkerPool } from "./ports.js";

type OpName = "lock" | "cancel" | "kill" | "requeue";

export class ContainerOperations<C extends QueuedContainer = QueuedContainer> {
  /** Container UUID → the async operation in flight for it (at most one). */
  readonly #ops = new Map<ContainerUuid, OpName>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #queue: ContainerQueue<C>;
  readonly #pool: WorkerPool;
  readonly #logger: Logger;
  /** Asks for another pass in `ms`: an operation was refused because another is in flight. */
  readonly #retrySoon: (ms: number) => void;

  constructor(
    queue: ContainerQueue<C>,
    pool: WorkerPool,
    logger: Logger,
    retrySoon: (ms: number) => void,
  ) {
    this.#queue = queue;
    this.#pool = pool;
    this.#logger = logger;
    this.#retrySoon = retrySoon;
  }

  /** Whether an operation on `uuid` is in flight. */
  has(uuid: ContainerUuid): boolean {
    return this.#ops.has(uuid);
  }

  /** Resolves when every operation started so far has finished. */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all(this.#inflight);
  }

  /** Lock a Queued container (§3.4). */
  lock(uuid: ContainerUuid): void {
    if (!this.#claim(uuid, "lock")) return;
    this.#track(this.#lockOp(uuid));
  }

  cancel(uuid: ContainerUuid, reason: string): void {
    this.#uuidOp(uuid, "cancel", async () => {
      const log = this.#logger.child({ ContainerUUID: uuid });
      log.info({}, `cancelling container because ${reason}`);
      const r = await this.#queue.cancel(uuid);
      if (!r.ok) log.warn({ error: r.error.message }, "error cancelling container");
    });
  }

  kill(uuid: ContainerUuid, reason: string): void {
    this.#uuidOp(uuid, "kill", () => {
      this.#pool.killContainer(uuid, reason);
      this.#pool.forgetContainer(uuid);
    });
  }

  requeue(uuid: ContainerUuid, reason: string): void {
    this.#uuidOp(uuid, "requeue", async () => {
      const log = this.#logger.child({ ContainerUUID: uuid });
      log.info({}, `requeueing locked container because ${reason}`);
      const r = await this.#queue.unlock(uuid);
      if (!r.ok) log.warn({ error: r.error.message }, "error requeueing container");
    });
  }

  /** Claim `uuid` for `op` unless another operation on it is in flight; then retry the pass soon. */
  #claim(uuid: ContainerUuid, op: OpName): boolean {
    const current = this.#ops.get(uuid);
    if (current !== undefined) {
      this.#logger.debug(
        { ContainerUUID: uuid },
        `uuidLock not available, Op=${current} in progress`,
      );
      this.#retrySoon(250);
      return false;
    }
    this.#ops.set(uuid, op);
    return true;
  }

  /** Count `p` for settled() until it ends. */
  #track(p: Promise<void>): void {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    void p.then(done, (err: unknown) => {
      done();
      throw err;
    });
  }

  /** Run `fn` unless another operation on `uuid` is in flight; then retry the pass soon. */
  #uuidOp(uuid: ContainerUuid, op: OpName, fn: () => Promise<void> | void): void {
    if (!this.#claim(uuid, op)) return;
    const p = (async () => {
      try {
        await fn();
      } catch (err) {
        this.#logger.error({ ContainerUUID: uuid, error: errText(err) }, `${op} failed`);
      } finally {
        this.#ops.delete(uuid);
      }
    })();
    this.#track(p);
  }

  /**
   * What uuidOp would run for a lock, in one async function instead of two: a long queue locks
   * thousands of containers per pass, and each lock holds its frames until the controller
   * answers. Errors, logs and the end of the operation fall on the same turns as uuidOp's.
   */
  async #lockOp(uuid: ContainerUuid): Promise<void> {
    try {
      try {
        if (this.#queue.get(uuid)?.state !== "Queued") {
          this.#logger
            .child({ ContainerUUID: uuid })
            .debug(
              {},
              "container no longer queued by the time we decided to lock it, doing nothing",
            );
          return;
        }
        const r = await this.#queue.lock(uuid);
        if (!r.ok) {
          this.#logger
            .child({ ContainerUUID: uuid })
            .warn({ error: r.error.message }, "error locking container");
          return;
        }
        const after = this.#queue.get(uuid);
        if (after === undefined) {
          this.#logger
            .child({ ContainerUUID: uuid })
            .error({}, "(BUG?) container disappeared from queue after Lock succeeded");
        } else if (after.state !== "Locked") {
          this.#logger
            .child({ ContainerUUID: uuid })
            .warn({}, `(race?) container has state=${after.state} after Lock succeeded`);
        }
      } finally {
        // The turn uuidOp takes to await its inner function.
        await Promise.resolve();
      }
    } catch (err) {
      this.#logger.error({ ContainerUUID: uuid, error: errText(err) }, "lock failed");
    } finally {
      this.#ops.delete(uuid);
    }
  }
}
