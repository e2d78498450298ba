import type { DriverDefinition, DriverFactory } from "@dispatch-cloud/cloud-driver-api";
import { createEc2InstanceSet } from "./instance-set.js";
import { EC2_PARAMETER_KEYS, parseEc2Parameters } from "./params.js";

/** The `ec2` driver: `Containers.CloudVMs.Driver: ec2`. */
export const createEc2Driver: DriverFactory = (context) => createEc2InstanceSet(context);

/** The `ec2` driver with its DriverParameters keys and check, for the registry. */
export const ec2Driver: DriverDefinition = {
  create: createEc2Driver,
  parameterKeys: EC2_PARAMETER_KEYS,
  parseParameters: (p) => parseEc2Parameters(p),
};

export {
  createEc2InstanceSet,
  ec2ClientConfig,
  Ec2Instance,
  Ec2InstanceSet,
  type Ec2DriverOptions,
} from "./instance-set.js";
export { EC2_PARAMETER_KEYS, parseEc2Parameters, type Ec2Config } from "./params.js";
export {
  awsErrorCode,
  classifyEc2Error,
  isCapacityError,
  isSubnetSpecificError,
  QUOTA_CODES,
  THROTTLE_CODES,
  ThrottleBackoff,
} from "./classify.js";
export { DEFAULT_INSTANCE_TYPE_QUOTA_GROUPS, ec2QuotaGroup } from "./quota-group.js";
export { awsKeyFingerprints, KEY_PAIR_NAME_PREFIX } from "./keypair.js";
export { formatGoFloat } from "./go-format.js";
export { Ec2DriverError, type Ec2DriverErrorKind } from "./errors.js";
