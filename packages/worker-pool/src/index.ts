export { WorkerPool, type WorkerPoolDeps } from "./pool.js";
export type { PoolSubscription } from "./subscription.js";
export type { Executor, ExecutorFactory } from "./executor.js";
export {
  BOOT_OUTCOMES,
  type BootOutcome,
  type ContainerToStart,
  type CreateRefusal,
  type CreateResult,
  type WorkerCounts,
  type WorkerPoolConfig,
} from "./types.js";
export { DEFAULTS as POOL_DEFAULTS } from "./settings.js";
export {
  detachCommand,
  detachStdin,
  installCommand,
  parseListOutput,
  shellQuote,
  type ListReport,
} from "./commands.js";
