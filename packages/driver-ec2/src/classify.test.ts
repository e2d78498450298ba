import { CapacityError, QuotaError, RateLimitError } from "@dispatch-cloud/cloud-driver-api";
import { describe, expect, it } from "vitest";
import {
  classifyEc2Error,
  isSubnetSpecificError,
  QUOTA_CODES,
  THROTTLE_CODES,
  ThrottleBackoff,
} from "./classify.js";
import { awsError } from "./testing/fixtures.js";

const NOW = Date.parse("2026-01-01T00:00:00Z");

type Want =
  "rate-limit" | "quota" | "capacity:instance-type" | "capacity:quota-group" | "unchanged";

function kind(err: unknown): Want {
  if (RateLimitError.is(err)) return "rate-limit";
  if (QuotaError.is(err)) return "quota";
  if (CapacityError.is(err)) return `capacity:${err.scope}` as Want;
  return "unchanged";
}

describe("classifyEc2Error", () => {
  // Real codes and messages as AWS returns them.
  const cases: [string, string, Want][] = [
    ["RequestLimitExceeded", "Request limit exceeded.", "rate-limit"],
    ["Throttling", "Rate exceeded", "rate-limit"],
    ["ThrottlingException", "Rate exceeded", "rate-limit"],
    ["ThrottledException", "Rate exceeded", "rate-limit"],
    ["RequestThrottledException", "Rate exceeded", "rate-limit"],
    ["TooManyRequestsException", "Too many requests", "rate-limit"],
    ["ProvisionedThroughputExceededException", "Throughput exceeded", "rate-limit"],
    ["TransactionInProgressException", "Transaction in progress", "rate-limit"],
    ["BandwidthLimitExceeded", "Bandwidth limit exceeded", "rate-limit"],
    ["LimitExceededException", "Limit exceeded", "rate-limit"],
    ["RequestThrottled", "Request throttled", "rate-limit"],
    ["SlowDown", "Please reduce your request rate.", "rate-limit"],
    ["PriorRequestNotComplete", "Prior request not complete", "rate-limit"],
    ["EC2ThrottledException", "Throttled", "rate-limit"],
    [
      "InstanceLimitExceeded",
      "Your quota allows for 0 more running instance(s). You requested at least 1.",
      "quota",
    ],
    [
      "InsufficientAddressCapacity",
      "Not enough available addresses to satisfy your minimum request.",
      "quota",
    ],
    [
      "InsufficientFreeAddressesInSubnet",
      "The specified subnet does not have enough free addresses to satisfy the request.",
      "quota",
    ],
    [
      "InsufficientVolumeCapacity",
      "There is not enough capacity to fulfill your EBS volume provision request.",
      "quota",
    ],
    ["MaxSpotInstanceCountExceeded", "Max spot instance count exceeded", "quota"],
    [
      "VcpuLimitExceeded",
      "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to.",
      "capacity:quota-group",
    ],
    [
      "InsufficientInstanceCapacity",
      "We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1a).",
      "capacity:instance-type",
    ],
    [
      "Unsupported",
      "Your requested instance type (p4d.24xlarge) is not supported in your requested Availability Zone (us-east-1e). Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b.",
      "capacity:instance-type",
    ],
    [
      "Unsupported",
      "The requested instance type (m7a.medium) is not supported in your requested Availability Zone (us-west-2d).",
      "capacity:instance-type",
    ],
    [
      "Unsupported",
      "The instance configuration for this AWS Marketplace product is not supported.",
      "unchanged",
    ],
    ["InvalidSubnetID.NotFound", "The subnet ID 'subnet-0123' does not exist", "unchanged"],
    ["InvalidAMIID.NotFound", "The image id '[ami-0123]' does not exist", "unchanged"],
    ["UnauthorizedOperation", "You are not authorized to perform this operation.", "unchanged"],
    ["AuthFailure", "AWS was not able to validate the provided access credentials", "unchanged"],
  ];

  it("covers every throttle and quota code", () => {
    const listed = new Set(cases.map((c) => c[0]));
    expect([...THROTTLE_CODES, ...QUOTA_CODES].filter((code) => !listed.has(code))).toEqual([]);
  });

  it.each(cases)("%s → %s", (code, message, want) => {
    const err = awsError(code, message);
    const got = classifyEc2Error(err, new ThrottleBackoff(), NOW);
    expect(kind(got)).toBe(want);
    // Unchanged errors are the same object; classified ones keep it as their cause.
    const original = want === "unchanged" ? got : (got as Error).cause;
    expect(original).toBe(err);
    expect((got as Error).message).toBe(want === "unchanged" ? message : `${code}: ${message}`);
  });

  it("backs off 1 s, 2.5 s, 4.75 s, … up to 60 s on consecutive throttles", () => {
    const backoff = new ThrottleBackoff();
    const delays = Array.from({ length: 10 }, () => {
      const err = classifyEc2Error(awsError("RequestLimitExceeded", "x"), backoff, NOW);
      if (!RateLimitError.is(err)) throw new Error("not a rate limit error");
      // Dates hold whole milliseconds.
      expect(err.earliestRetry.getTime()).toBe(NOW + Math.floor(backoff.delayMs));
      return backoff.delayMs;
    });
    expect(delays).toEqual([
      1000, 2500, 4750, 8125, 13187.5, 20781.25, 32171.875, 49257.8125, 60000, 60000,
    ]);
  });

  it("keeps the backoff across quota and capacity errors and resets it on others and on success", () => {
    const backoff = new ThrottleBackoff();
    const throttle = (): number =>
      (
        classifyEc2Error(awsError("Throttling", "x"), backoff, NOW) as RateLimitError
      ).earliestRetry.getTime() - NOW;
    throttle();
    classifyEc2Error(awsError("InstanceLimitExceeded", "x"), backoff, NOW);
    classifyEc2Error(awsError("VcpuLimitExceeded", "x"), backoff, NOW);
    classifyEc2Error(awsError("InsufficientInstanceCapacity", "x"), backoff, NOW);
    expect(throttle()).toBe(2500);
    classifyEc2Error(awsError("InvalidAMIID.NotFound", "x"), backoff, NOW);
    expect(throttle()).toBe(1000);
    classifyEc2Error(undefined, backoff, NOW);
    expect(backoff.delayMs).toBe(0);
    throttle();
    classifyEc2Error(new Error("socket hang up"), backoff, NOW);
    expect(backoff.delayMs).toBe(0);
  });

  it("leaves errors without an AWS code alone", () => {
    const err = new Error("ECONNREFUSED");
    err.name = "Throttling"; // a name alone is not an API error code
    expect(classifyEc2Error(err, new ThrottleBackoff(), NOW)).toBe(err);
  });
});

describe("isSubnetSpecificError", () => {
  it.each([
    ["InvalidSubnetID.NotFound", "The subnet ID 'subnet-0123' does not exist", true],
    ["InvalidSubnetId.NotFound", "no such subnet", true],
    [
      "InsufficientFreeAddressesInSubnet",
      "The specified subnet does not have enough free addresses",
      true,
    ],
    ["InsufficientInstanceCapacity", "We currently do not have sufficient capacity", true],
    ["InsufficientVolumeCapacity", "not enough EBS capacity", true],
    [
      "Unsupported",
      "Your requested instance type is not supported in your requested Availability Zone",
      true,
    ],
    [
      "InvalidParameterValue",
      "Not enough free addresses in subnet subnet-abc to satisfy the request.",
      true,
    ],
    ["Client.InvalidParameterValue", "Not enough free addresses in subnet subnet-abc", true],
    ["ClientInvalidParameterValue", "Not enough free addresses in subnet subnet-abc", true],
    ["InvalidParameterValue", "There aren't sufficient free Ipv4 addresses or prefixes", true],
    ["InvalidParameterValue", "line one\nThere aren't sufficient free ipv6 addresses", true],
    // " subnet " with spaces around it is what marks an InvalidParameter error as subnet-specific.
    [
      "InvalidParameterCombination",
      "Network interfaces and an instance-level subnet ID may not be specified on the same request",
      true,
    ],
    [
      "InvalidParameterCombination",
      "The parameter groupName cannot be used with the parameter subnet",
      false,
    ],
    ["InvalidParameterValue", "Value (foo) for parameter subnetId is invalid", false],
    ["InstanceLimitExceeded", "Your quota allows for 0 more running instance(s).", false],
    ["VcpuLimitExceeded", "You have requested more vCPU capacity", false],
    ["RequestLimitExceeded", "Request limit exceeded.", false],
  ])("%s %j → %s", (code, message, want) => {
    expect(isSubnetSpecificError(awsError(code, message))).toBe(want);
  });

  it("is false for non-AWS errors", () => {
    expect(isSubnetSpecificError(new Error("no such subnet "))).toBe(false);
  });
});
