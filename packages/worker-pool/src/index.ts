export { WorkerPool, type PoolSubscription, type WorkerPoolDeps } from "./pool.js";
export type {
  ExecResult,
  ExecuteOptions,
  Executor,
  ExecutorFactory,
  ExecutorTarget,
} from "./executor.js";
export {
  BOOT_OUTCOMES,
  IDLE_BEHAVIORS,
  WORKER_STATES,
  containerUuid,
  isIdleBehavior,
  type ActionResult,
  type BootOutcome,
  type ContainerToStart,
  type ContainerUuid,
  type CreateRefusal,
  type CreateResult,
  type IdleBehavior,
  type InstanceView,
  type WorkerCounts,
  type WorkerPoolConfig,
  type WorkerState,
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
