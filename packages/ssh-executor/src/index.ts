export { createSshExecutorFactory, SshExecutor, type SshExecutorOptions } from "./executor.js";
export { SshExecutorError, type SshErrorKind } from "./errors.js";
export {
  buildCommandLine,
  instanceSecretCommand,
  parseAddress,
  shellQuote,
  INSTANCE_SECRET_PATH,
} from "./command.js";
