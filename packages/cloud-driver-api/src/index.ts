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
