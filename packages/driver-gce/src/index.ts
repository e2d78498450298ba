import type { DriverDefinition, DriverFactory } from "@dispatch-cloud/cloud-driver-api";
import { createGceInstanceSet } from "./instance-set.js";
import { GCE_PARAMETER_KEYS, parseGceParameters } from "./params.js";

/** The `gce` driver: `Containers.CloudVMs.Driver: gce`. */
export const createGceDriver: DriverFactory = (context) => createGceInstanceSet(context);

/**
 * The `gce` driver with its DriverParameters keys and check, for the registry. The check reads
 * no CredentialsFile: a config check need not see the key the daemon will read.
 */
export const gceDriver: DriverDefinition = {
  create: createGceDriver,
  parameterKeys: GCE_PARAMETER_KEYS,
  parseParameters: (p) => parseGceParameters(p),
};

export {
  createGceInstanceSet,
  GceInstance,
  GceInstanceSet,
  type GceDriverOptions,
} from "./instance-set.js";
// The SDK itself loads with the first API call, not when this package is imported.
export {
  CALL_TIMEOUT_MS,
  createGceApi,
  type GceApi,
  type GceInstanceResource,
  type GceOperation,
} from "./api.js";
export {
  DEFAULT_SCOPES,
  GCE_PARAMETER_KEYS,
  parseGceParameters,
  resolveGceConfig,
  type CredentialsSource,
  type GceConfig,
  type GceParameterKey,
  type ServiceAccountKey,
} from "./params.js";
export {
  classifyGceError,
  gceErrorFacts,
  GceApiError,
  GceOperationError,
  isQuotaGroupQuota,
  isZoneSpecificError,
  type GceErrorFacts,
  type OperationErrorEntry,
  type QuotaFacts,
} from "./classify.js";
export {
  INSTANCE_SET_LABEL,
  RESERVED_METADATA_KEYS,
  instanceSetLabelValue,
  tagsFromMetadata,
} from "./metadata.js";
export { gceQuotaGroup } from "./quota-group.js";
export {
  LOCAL_SSD_BYTES,
  SCRATCH_DEVICE_NAME,
  instanceResource,
  sourceImagePath,
} from "./resource.js";
export { GceDriverError, type GceDriverErrorKind } from "./errors.js";
