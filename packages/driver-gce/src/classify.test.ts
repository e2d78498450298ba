import {
  CapacityError,
  QuotaError,
  RateLimitError,
  ThrottleBackoff,
} from "@dispatch-cloud/cloud-driver-api";
import { describe, expect, it } from "vitest";
import {
  GceApiError,
  classifyGceError,
  gceErrorFacts,
  isQuotaGroupQuota,
  isZoneSpecificError,
} from "./classify.js";
import { gceErrors, operationError, sdkHttpError } from "./testing/index.js";

const NOW = Date.parse("2030-01-01T00:00:00Z");

type Want =
  | { kind: "rate-limit"; afterMs: number }
  | { kind: "capacity"; scope: CapacityError["scope"] }
  | { kind: "quota" }
  | { kind: "api"; status: number };

function kindOf(err: unknown): Want | { kind: "unchanged" } {
  if (RateLimitError.is(err))
    return { kind: "rate-limit", afterMs: err.earliestRetry.getTime() - NOW };
  if (CapacityError.is(err)) return { kind: "capacity", scope: err.scope };
  if (QuotaError.is(err)) return { kind: "quota" };
  if (err instanceof GceApiError) return { kind: "api", status: err.facts.httpStatus ?? 0 };
  return { kind: "unchanged" };
}

// Real GCE answers (see testing/errors.ts): what each becomes, and whether another zone might
// not give it.
const table: [string, unknown, Want, boolean][] = [
  [
    "403 rateLimitExceeded",
    sdkHttpError(gceErrors.rateLimitExceeded()),
    { kind: "rate-limit", afterMs: 1000 },
    false,
  ],
  [
    "429 RESOURCE_EXHAUSTED (queries per minute)",
    sdkHttpError(gceErrors.tooManyRequests()),
    { kind: "rate-limit", afterMs: 1000 },
    false,
  ],
  [
    "429 with Retry-After: 30",
    sdkHttpError(gceErrors.tooManyRequests("30")),
    { kind: "rate-limit", afterMs: 30_000 },
    false,
  ],
  [
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    operationError(gceErrors.zoneResourcePoolExhausted("p", "us-central1-a")),
    { kind: "capacity", scope: "instance-type" },
    true,
  ],
  [
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    operationError(gceErrors.zoneResourcePoolExhausted("p", "us-central1-a", true)),
    { kind: "capacity", scope: "instance-type" },
    true,
  ],
  [
    "QUOTA_EXCEEDED CPUS (regional, E2/N1)",
    operationError(gceErrors.quotaExceeded("CPUS", 24, "us-central1")),
    { kind: "capacity", scope: "quota-group" },
    false,
  ],
  [
    "QUOTA_EXCEEDED C3_CPUS",
    operationError(gceErrors.quotaExceeded("C3_CPUS", 8, "europe-west4")),
    { kind: "capacity", scope: "quota-group" },
    false,
  ],
  [
    "QUOTA_EXCEEDED PREEMPTIBLE_NVIDIA_T4_GPUS",
    operationError(gceErrors.quotaExceeded("PREEMPTIBLE_NVIDIA_T4_GPUS", 1, "us-central1")),
    { kind: "capacity", scope: "quota-group" },
    false,
  ],
  [
    "QUOTA_EXCEEDED CPUS_ALL_REGIONS (global)",
    operationError(gceErrors.quotaExceeded("CPUS_ALL_REGIONS", 32)),
    { kind: "quota" },
    false,
  ],
  [
    "QUOTA_EXCEEDED INSTANCES",
    operationError(gceErrors.quotaExceeded("INSTANCES", 24, "us-central1")),
    { kind: "quota" },
    false,
  ],
  [
    "QUOTA_EXCEEDED DISKS_TOTAL_GB",
    operationError(gceErrors.quotaExceeded("DISKS_TOTAL_GB", 4096, "us-central1")),
    { kind: "quota" },
    false,
  ],
  [
    "403 quotaExceeded CPUS (synchronous)",
    sdkHttpError(gceErrors.quotaExceededHttp("CPUS", 24, "us-central1")),
    { kind: "capacity", scope: "quota-group" },
    false,
  ],
  [
    "403 quotaExceeded IN_USE_ADDRESSES",
    sdkHttpError(gceErrors.quotaExceededHttp("IN_USE_ADDRESSES", 8, "us-central1")),
    { kind: "quota" },
    false,
  ],
  [
    "400 machine type not in zone",
    sdkHttpError(gceErrors.machineTypeNotInZone("us-central1-f", "a2-highgpu-1g")),
    { kind: "api", status: 400 },
    true,
  ],
  [
    "404 notFound",
    sdkHttpError(gceErrors.notFound("projects/p/zones/z/instances/i")),
    { kind: "api", status: 404 },
    false,
  ],
  [
    "412 conditionNotMet",
    sdkHttpError(gceErrors.fingerprintMismatch()),
    { kind: "api", status: 412 },
    false,
  ],
  ["503 backendError", sdkHttpError(gceErrors.backendError()), { kind: "api", status: 503 }, false],
  [
    "401 UNAUTHENTICATED",
    sdkHttpError(gceErrors.unauthenticated("no bearer token")),
    { kind: "api", status: 401 },
    false,
  ],
];

describe("classifyGceError", () => {
  it.each(table)("%s", (_name, err, want, zoneSpecific) => {
    const got = classifyGceError(err, new ThrottleBackoff(), NOW);
    expect(kindOf(got)).toEqual(want);
    expect((got as Error).cause).toBe(err);
    expect(isZoneSpecificError(err)).toBe(zoneSpecific);
  });

  it("names the quota and where it applies", () => {
    const regional = classifyGceError(
      operationError(gceErrors.quotaExceeded("N2_CPUS", 8, "europe-west4")),
      new ThrottleBackoff(),
      NOW,
    );
    expect((regional as Error).message).toBe(
      "GCE quota exceeded (N2_CPUS, limit 8, region europe-west4): QUOTA_EXCEEDED: Quota 'N2_CPUS' exceeded.  Limit: 8.0 in region europe-west4.",
    );
    const global = classifyGceError(
      operationError(gceErrors.quotaExceeded("CPUS_ALL_REGIONS", 32)),
      new ThrottleBackoff(),
      NOW,
    );
    expect((global as Error).message).toContain("(CPUS_ALL_REGIONS, limit 32, global)");
  });

  it("takes the quota from quotaInfo when the message does not name it", () => {
    const err = operationError({
      kind: "operation",
      httpErrorStatusCode: 403,
      httpErrorMessage: "FORBIDDEN",
      errors: [
        {
          code: "QUOTA_EXCEEDED",
          message: "Quota exceeded.",
          errorDetails: [
            {
              quotaInfo: {
                metricName: "compute.googleapis.com/n2d_cpus",
                limitName: "N2D-CPUS-per-project-region",
                dimensions: { region: "us-east4" },
                limit: 16,
              },
            },
          ],
        },
      ],
    });
    expect(gceErrorFacts(err)?.quota).toEqual({ metric: "N2D_CPUS", limit: 16, scope: "us-east4" });
    expect(CapacityError.is(classifyGceError(err, new ThrottleBackoff(), NOW))).toBe(true);
  });

  it("backs off 1 s, 2.5 s, … on consecutive throttles and resets on anything else", () => {
    const backoff = new ThrottleBackoff();
    const throttled = () =>
      (
        classifyGceError(
          sdkHttpError(gceErrors.rateLimitExceeded()),
          backoff,
          NOW,
        ) as RateLimitError
      ).earliestRetry.getTime() - NOW;
    expect([throttled(), throttled(), throttled()]).toEqual([1000, 2500, 4750]);
    // Quota and capacity leave the backoff alone; other errors and success reset it.
    classifyGceError(operationError(gceErrors.quotaExceeded("INSTANCES", 1, "r")), backoff, NOW);
    expect(backoff.delayMs).toBe(4750);
    classifyGceError(sdkHttpError(gceErrors.backendError()), backoff, NOW);
    expect(backoff.delayMs).toBe(0);
    throttled();
    classifyGceError(undefined, backoff, NOW);
    expect(backoff.delayMs).toBe(0);
  });

  it("leaves errors that did not come from the API alone", () => {
    const network = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
    });
    const abort = new DOMException("This operation was aborted", "AbortError");
    for (const err of [network, abort, new Error("no answer from the Compute API within 60s")]) {
      expect(classifyGceError(err, new ThrottleBackoff(), NOW)).toBe(err);
      expect(gceErrorFacts(err)).toBeUndefined();
    }
  });
});

describe("isQuotaGroupQuota", () => {
  it.each([
    ["CPUS", true],
    ["N2_CPUS", true],
    ["PREEMPTIBLE_CPUS", true],
    ["NVIDIA_A100_80GB_GPUS", true],
    ["CPUS_ALL_REGIONS", false],
    ["INSTANCES", false],
    ["SSD_TOTAL_GB", false],
    ["GPUS_ALL_REGIONS", false],
  ])("%s → %s", (metric, want) => {
    expect(isQuotaGroupQuota(metric)).toBe(want);
  });
});
