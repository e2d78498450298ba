import type { DriverFactory } from "@dispatch-cloud/cloud-driver-api";
import { createEc2InstanceSet } from "./instance-set.js";

/** The `ec2` driver: `Containers.CloudVMs.Driver: ec2`. */
export const createEc2Driver: DriverFactory = (context) => createEc2InstanceSet(context);

export {
  createEc2InstanceSet,
  ec2ClientConfig,
  Ec2Instance,
  Ec2InstanceSet,
  type Ec2DriverOptions,
} from "./instance-set.js";
export { parseEc2Parameters, type Ec2Config } from "./params.js";
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
