import {
  CapacityError,
  QuotaError,
  RateLimitError,
  ThrottleBackoff,
} from "@dispatch-cloud/cloud-driver-api";

// Shared with the other drivers; re-exported so this package's API stays as it was.
export { ThrottleBackoff };

/** The AWS SDK's default set of throttling error codes. */
export const THROTTLE_CODES: ReadonlySet<string> = new Set([
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottledException",
  "TooManyRequestsException",
  "ProvisionedThroughputExceededException",
  "TransactionInProgressException",
  "RequestLimitExceeded",
  "BandwidthLimitExceeded",
  "LimitExceededException",
  "RequestThrottled",
  "SlowDown",
  "PriorRequestNotComplete",
  "EC2ThrottledException",
]);

/** Codes meaning "no more VMs until some are destroyed". */
export const QUOTA_CODES: ReadonlySet<string> = new Set([
  "InstanceLimitExceeded",
  "InsufficientAddressCapacity",
  "InsufficientFreeAddressesInSubnet",
  "InsufficientVolumeCapacity",
  "MaxSpotInstanceCountExceeded",
]);

/** The code and message of an AWS API error (SDK v3 puts the code in `name`), if it is one. */
export function awsErrorCode(err: unknown): { code: string; message: string } | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { name?: unknown; Code?: unknown; message?: unknown; $metadata?: unknown };
  // Only service responses carry $metadata; a network failure's `name` is not an API code.
  if (e.$metadata === undefined) return undefined;
  const code = typeof e.Code === "string" && e.Code !== "" ? e.Code : e.name;
  if (typeof code !== "string") return undefined;
  return { code, message: typeof e.message === "string" ? e.message : "" };
}

/** A capacity error as far as choosing which Create error to report goes. */
export function isCapacityError(err: unknown): boolean {
  const aws = awsErrorCode(err);
  if (aws === undefined) return false;
  return (
    aws.code === "InsufficientInstanceCapacity" ||
    (aws.code === "Unsupported" && aws.message.includes("requested instance type"))
  );
}

const subnetSpecificMessage = /( subnet |sufficient free [Ii]pv[46] addresses)/;

/** An error that another subnet might not produce, so Create tries the next configured subnet. */
export function isSubnetSpecificError(err: unknown): boolean {
  const aws = awsErrorCode(err);
  if (aws === undefined) return false;
  const { code, message } = aws;
  return (
    code.includes("Subnet") ||
    code === "InsufficientInstanceCapacity" ||
    code === "InsufficientVolumeCapacity" ||
    code === "Unsupported" ||
    // Codes vary ("InvalidParameterValue", "Client.InvalidParameterValue", …), so match loosely.
    (code.includes("InvalidParameter") && subnetSpecificMessage.test(message))
  );
}

/**
 * Turn the outcome of a RunInstances or DescribeInstances call into what the dispatcher reacts
 * to: throttling → RateLimitError (advancing `backoff`), quota codes → QuotaError, capacity
 * codes → CapacityError with its scope; anything else, and success (`err` undefined), is returned
 * unchanged and resets `backoff`. Quota and capacity leave `backoff` as it was.
 */
export function classifyEc2Error(err: unknown, backoff: ThrottleBackoff, nowMs: number): unknown {
  const aws = err === undefined ? undefined : awsErrorCode(err);
  if (aws !== undefined) {
    const text = `${aws.code}: ${aws.message}`;
    if (THROTTLE_CODES.has(aws.code)) {
      const delay = backoff.next();
      return new RateLimitError(text, new Date(Math.floor(nowMs + delay)), { cause: err });
    }
    if (QUOTA_CODES.has(aws.code)) return new QuotaError(text, { cause: err });
    if (aws.code === "VcpuLimitExceeded")
      return new CapacityError(text, "quota-group", { cause: err });
    if (isCapacityError(err)) return new CapacityError(text, "instance-type", { cause: err });
  }
  backoff.reset();
  return err;
}
