export type {
  CreateRequest,
  DriverContext,
  DriverFactory,
  GpuFeatures,
  HostKeyChallengeSession,
  HostKeyVerdict,
  Instance,
  InstanceId,
  InstancePrice,
  InstanceSet,
  InstanceSetId,
  InstanceTags,
  InstanceType,
  Logger,
} from "./types.js";
export { instanceId, instanceSetId } from "./types.js";
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
  initCommandWithSecret,
  tagKeys,
  type TagKeys,
} from "./tags.js";
export { normalizePriceHistory } from "./price.js";
export { ThrottleBackoff } from "./backoff.js";
export { abortReason, systemClock, type Clock } from "./clock.js";
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
