export { ApiError } from "./errors.js";
export {
  type ContainerApi,
  type ContainerApiOptions,
  createApp,
  type Fault,
  FaultInjector,
  startContainerApi,
} from "./server.js";
export { type Actor, Store, type StoreOptions } from "./store.js";
export { TRANSITIONS, normaliseRuntimeConstraints } from "./rules.js";
