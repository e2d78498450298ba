export { ApiError } from "./errors.js";
export {
  type ContainerApi,
  type ContainerApiOptions,
  createApp,
  type Fault,
  FaultInjector,
  type Logger,
  startContainerApi,
} from "./server.js";
export { type Actor, Store, type StoreOptions } from "./store.js";
export { TRANSITIONS, normaliseRuntimeConstraints, type ContainerState } from "./rules.js";
