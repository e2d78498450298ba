export type {
  CreateRequest,
  DriverContext,
  DriverFactory,
  Instance,
  InstancePrice,
  InstanceSet,
  InstanceTags,
} from "./types.js";
export {
  CapacityError,
  NotImplementedError,
  QuotaError,
  RateLimitError,
  errorMessage,
  type CapacityScope,
  type CloudErrorKind,
} from "./errors.js";
export {
  DEFAULT_TAG_KEY_PREFIX,
  INSTANCE_SECRET_PATH,
  createTags,
  initCommandWithSecret,
  tagKeys,
  type TagKeys,
} from "./tags.js";
export { normalizePriceHistory } from "./price.js";
export { ThrottleBackoff } from "./backoff.js";
export { authorizedKeyWire, generateEd25519KeyPair, type SshKeyPair } from "./ssh-keys.js";
export {
  DRIVER_PARAMETERS_PATH,
  DriverParametersError,
  parseGoDuration,
  readDriverParameters,
  type DriverParameterReader,
  type NumberOptions,
} from "./parameters.js";
export {
  DRIVER_OPERATIONS_METRIC,
  decorateInstanceSet,
  instrumented,
  rateLimited,
  tagFiltered,
  tagsMatch,
  withDefaultTags,
  type DecorateOptions,
} from "./decorators.js";
export {
  UnsupportedDriverError,
  createDriverRegistry,
  type DriverDefinition,
  type DriverRegistry,
  type ParameterReport,
} from "./registry.js";
