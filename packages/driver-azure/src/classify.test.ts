import {
  RestError,
  createHttpHeaders,
  createPipelineRequest,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { QuotaError, RateLimitError } from "@dispatch-cloud/cloud-driver-api";
import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY_AFTER_MS, classifyAzureError, parseRetryAfter } from "./classify.js";

const NOW = new Date("2025-03-04T05:06:07.000Z");

function restError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): RestError {
  const request = createPipelineRequest({ url: "https://management.azure.com/x" });
  const response: PipelineResponse = { status, headers: createHttpHeaders(headers), request };
  return new RestError(message, { statusCode: status, code, request, response });
}

type Expect = { kind: "rate-limit"; retryAt: string } | { kind: "quota" } | { kind: "unchanged" };

// Messages as ARM returns them.
const cases: { name: string; err: unknown; expect: Expect }[] = [
  {
    name: "429 with Retry-After seconds",
    err: restError(429, "TooManyRequests", "The request is being throttled.", {
      "retry-after": "17",
    }),
    expect: { kind: "rate-limit", retryAt: "2025-03-04T05:06:24.000Z" },
  },
  {
    name: "429 with Retry-After as an HTTP date",
    err: restError(429, "TooManyRequests", "throttled", {
      "retry-after": "Tue, 04 Mar 2025 05:10:00 GMT",
    }),
    expect: { kind: "rate-limit", retryAt: "2025-03-04T05:10:00.000Z" },
  },
  {
    name: "429 without Retry-After falls back to 20 s (Arvados panics here)",
    err: restError(429, "TooManyRequests", "throttled"),
    expect: { kind: "rate-limit", retryAt: "2025-03-04T05:06:27.000Z" },
  },
  {
    name: "429 with garbage Retry-After falls back to 20 s",
    err: restError(429, "TooManyRequests", "throttled", { "retry-after": "soon-ish" }),
    expect: { kind: "rate-limit", retryAt: "2025-03-04T05:06:27.000Z" },
  },
  {
    name: "any status with Retry-After is a rate limit",
    err: restError(503, "ServerBusy", "busy", { "retry-after": "3" }),
    expect: { kind: "rate-limit", retryAt: "2025-03-04T05:06:10.000Z" },
  },
  {
    name: "core quota exceeded",
    err: restError(
      409,
      "OperationNotAllowed",
      "Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota. Additional details - Deployment Model: Resource Manager, Location: centralus, Current Limit: 10, Current Usage: 8, Additional Required: 4, (Minimum) New Limit Required: 12.",
    ),
    expect: { kind: "quota" },
  },
  {
    name: "QuotaExceeded code",
    err: restError(
      409,
      "QuotaExceeded",
      "Operation results in exceeding quota limits of Core. Maximum allowed: 4, Current in use: 4, Additional requested: 2.",
    ),
    expect: { kind: "quota" },
  },
  {
    name: "public IP / NIC limit",
    err: restError(
      400,
      "NetworkInterfaceCountLimitReached",
      "Cannot create more than 65536 network interfaces for this subscription in this region.",
    ),
    expect: { kind: "quota" },
  },
  {
    name: "quota word only in the error details",
    err: Object.assign(new Error("The long-running operation has failed"), {
      code: "OperationFailed",
      details: {
        error: {
          code: "OperationNotAllowed",
          message: "exceeding approved Total Regional Cores quota",
        },
      },
    }),
    expect: { kind: "quota" },
  },
  {
    name: "a long-running operation that failed on quota (core-lro's error)",
    err: new Error(
      "The long-running operation has failed. OperationNotAllowed. Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota.",
    ),
    expect: { kind: "quota" },
  },
  {
    name: "a long-running operation that failed otherwise",
    err: new Error(
      "The long-running operation has failed. InternalExecutionError. An internal execution error occurred.",
    ),
    expect: { kind: "unchanged" },
  },
  {
    name: "allocation failure is not classified (Azure has no capacity kind)",
    err: restError(
      409,
      "AllocationFailed",
      "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.",
    ),
    expect: { kind: "unchanged" },
  },
  {
    name: "SKU not available",
    err: restError(
      409,
      "SkuNotAvailable",
      "The requested size for resource 'x' is currently not available in location 'centralus'.",
    ),
    expect: { kind: "unchanged" },
  },
  {
    name: "not found",
    err: restError(404, "ResourceNotFound", "The Resource was not found."),
    expect: { kind: "unchanged" },
  },
  {
    name: "transport error without a response",
    err: new RestError("connect ECONNREFUSED 127.0.0.1:1 rate limit"),
    expect: { kind: "unchanged" },
  },
  {
    name: "plain Error mentioning a limit",
    err: new Error("size limit in our own code"),
    expect: { kind: "unchanged" },
  },
  { name: "a thrown string", err: "boom", expect: { kind: "unchanged" } },
];

describe("classifyAzureError", () => {
  it.each(cases)("$name", ({ err, expect: want }) => {
    const got = classifyAzureError(err, NOW);
    const unchanged = got === err || (!(err instanceof Error) && got.message === String(err));
    const seen = RateLimitError.is(got)
      ? { kind: "rate-limit", retryAt: got.earliestRetry.toISOString(), cause: got.cause }
      : QuotaError.is(got)
        ? { kind: "quota", cause: got.cause }
        : { kind: unchanged ? "unchanged" : "changed" };
    const expected = want.kind === "unchanged" ? { kind: "unchanged" } : { ...want, cause: err };
    expect(got).toBeInstanceOf(Error);
    expect(seen).toEqual(expected);
  });

  it("keeps the provider message", () => {
    const got = classifyAzureError(
      restError(409, "QuotaExceeded", "exceeding quota limits of Core"),
      NOW,
    );
    expect(got.message).toContain("exceeding quota limits of Core");
  });
});

describe("parseRetryAfter", () => {
  it("uses seconds, dates, and the 20 s fallback", () => {
    expect(parseRetryAfter("0", NOW).getTime()).toBe(NOW.getTime());
    expect(parseRetryAfter(" 5 ", NOW).getTime()).toBe(NOW.getTime() + 5000);
    expect(parseRetryAfter(undefined, NOW).getTime()).toBe(NOW.getTime() + DEFAULT_RETRY_AFTER_MS);
    expect(parseRetryAfter("", NOW).getTime()).toBe(NOW.getTime() + DEFAULT_RETRY_AFTER_MS);
    expect(parseRetryAfter("-3", NOW).getTime()).toBe(NOW.getTime() + DEFAULT_RETRY_AFTER_MS);
  });
});
