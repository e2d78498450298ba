export {
  DispatcherStartError,
  SELF_EXE,
  VERSION,
  bundledRunnerPath,
  defaultDrivers,
  deriveInstanceSetId,
  resolveRunnerBinary,
  runnerApiHost,
  startDispatcher,
  type Dispatcher,
  type DispatcherOptions,
} from "./dispatcher.js";
export { NOT_ENABLED, chooseListenUrl, type ListenChoice } from "./listen-url.js";
export { acquireInstanceLock, lockName } from "./lock.js";
export { databasePasswords } from "./dispatch-lock.js";
export { checkDispatcherConfig, type DispatcherCheck } from "./config-check.js";
