export {
  DispatcherStartError,
  VERSION,
  bundledRunnerPath,
  defaultDrivers,
  deriveInstanceSetId,
  runnerApiHost,
  startDispatcher,
  type Dispatcher,
  type DispatcherOptions,
} from "./dispatcher.js";
export { NOT_ENABLED, chooseListenUrl, type ListenChoice } from "./listen-url.js";
export { acquireInstanceLock, lockName } from "./lock.js";
export { databasePasswords } from "./dispatch-lock.js";
export { checkDispatcherConfig, type DispatcherCheck } from "./config-check.js";
export {
  SELF_EXE,
  chooseRunner,
  runnerChoiceFor,
  type RunnerChoice,
  type RunnerKind,
} from "./runner-choice.js";
