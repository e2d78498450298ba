export {
  createAzureDriver,
  AzureInstance,
  AzureInstanceSet,
  GC_INTERVAL_MS,
  type AzureDriverOptions,
} from "./driver.js";
export { CREATED_AT_TAG, DELETERS_PER_KIND } from "./collector.js";
export type { TrustedCertificates } from "./clients.js";
export { classifyAzureError, parseRetryAfter, DEFAULT_RETRY_AFTER_MS } from "./classify.js";
export { AzureDriverError, type AzureDriverErrorKind } from "./errors.js";
export {
  AZURE_PARAMETER_KEYS,
  CLOUD_ENVIRONMENTS,
  readParameters,
  type AzureParameters,
  type CloudEnvironment,
  type CloudEnvironmentName,
} from "./params.js";
