export { createSshExecutorFactory, SshExecutor, type SshExecutorOptions } from "./executor.js";
export { SshExecutorError, type SshErrorKind } from "./errors.js";
export {
  buildCommandLine,
  instanceSecretCommand,
  parseAddress,
  shellQuote,
  INSTANCE_SECRET_PATH,
} from "./command.js";
export type {
  Clock,
  ExecResult,
  ExecuteOptions,
  Executor,
  ExecutorFactory,
  ExecutorTarget,
  HostKeyVerdict,
  Logger,
  RunResult,
  VerifySession,
} from "./types.js";
