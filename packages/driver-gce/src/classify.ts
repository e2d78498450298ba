import {
  CapacityError,
  QuotaError,
  RateLimitError,
  ThrottleBackoff,
  errorMessage,
} from "@dispatch-cloud/cloud-driver-api";

/**
 * One entry of a finished zone operation's `error.errors`: GCE reports what went wrong while
 * creating a VM there (no capacity in the zone, a quota) rather than in the HTTP answer.
 */
export interface OperationErrorEntry {
  readonly code: string;
  readonly message: string;
  /** `errorDetails[].quotaInfo` where GCE gives it. */
  readonly quotaInfo?: QuotaInfo;
}

/** GCE's `quotaInfo` error detail (fields may be null, as the SDK decodes them). */
export interface QuotaInfo {
  readonly metricName?: string | null;
  readonly limitName?: string | null;
  readonly limit?: number | null;
  readonly dimensions?: Readonly<Record<string, string>> | null;
}

/** A zone operation (insert, setMetadata, …) that finished with errors. */
export class GceOperationError extends Error {
  override readonly name = "GceOperationError";
  constructor(
    readonly operation: string,
    readonly errors: readonly OperationErrorEntry[],
    readonly httpStatus: number | undefined,
  ) {
    super(
      errors.length === 0
        ? `operation ${operation} failed`
        : errors.map((e) => `${e.code}: ${e.message}`).join("; "),
    );
  }
}

/**
 * An error answer from the Compute API that is none of the driver-API kinds, with a readable
 * message (the SDK's own message is the raw JSON body).
 */
export class GceApiError extends Error {
  override readonly name = "GceApiError";
  constructor(
    readonly facts: GceErrorFacts,
    options?: { cause?: unknown },
  ) {
    const what = [facts.httpStatus, ...facts.reasons.slice(0, 1)].filter((x) => x !== undefined);
    super(
      `GCE API error${what.length > 0 ? ` (${what.join(" ")})` : ""}: ${facts.message}`,
      options,
    );
  }
}

/** What a GCE error says, wherever it came from (HTTP answer or finished operation). */
export interface GceErrorFacts {
  readonly httpStatus: number | undefined;
  /** Legacy `errors[].reason`, ErrorInfo reasons, and operation error codes. */
  readonly reasons: readonly string[];
  /** The API's status name (`RESOURCE_EXHAUSTED`, …) when given. */
  readonly status: string | undefined;
  readonly message: string;
  readonly retryAfter: string | undefined;
  readonly quota: QuotaFacts | undefined;
}

/** The quota a QUOTA_EXCEEDED error names: `CPUS`, `N2_CPUS`, `INSTANCES`, … and where. */
export interface QuotaFacts {
  readonly metric: string;
  readonly limit: number | undefined;
  /** The region the quota applies in, or "global" for project-wide quotas. */
  readonly scope: string | undefined;
}

const RATE_LIMIT_REASONS = new Set([
  "rateLimitExceeded",
  "userRateLimitExceeded",
  "RATE_LIMIT_EXCEEDED",
  // Too many operations on one resource (e.g. a disk) in a short time.
  "RESOURCE_OPERATION_RATE_EXCEEDED",
]);
const CAPACITY_REASONS = new Set([
  "ZONE_RESOURCE_POOL_EXHAUSTED",
  "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
]);
const QUOTA_REASONS = new Set(["QUOTA_EXCEEDED", "quotaExceeded"]);

/** "Quota 'N2_CPUS' exceeded.  Limit: 24.0 in region us-central1." */
const QUOTA_MESSAGE_RE =
  /Quota '([A-Z0-9_]+)' exceeded\.\s+Limit:\s*([0-9.]+)(?:\s+(?:in region ([a-z0-9-]+)|(globally)))?/;
/** An instance-related resource (machine or disk type) missing from one zone but maybe not others. */
const NOT_IN_ZONE_RE = /does not exist in zone|not (?:available|supported) in (?:the )?zone/i;

/**
 * The facts of an error from the Compute SDK (its REST transport throws the HTTP answer with the
 * JSON body as the message) or of a failed operation; undefined for anything that did not come
 * from the API (network failures, aborts, our own errors), which is never classified.
 */
export function gceErrorFacts(err: unknown): GceErrorFacts | undefined {
  if (err instanceof GceApiError) return err.facts;
  if (err instanceof GceOperationError) {
    const quotaEntry = err.errors.find((e) => QUOTA_REASONS.has(e.code));
    return {
      httpStatus: err.httpStatus,
      reasons: err.errors.map((e) => e.code),
      status: undefined,
      message: err.message,
      retryAfter: undefined,
      quota:
        quotaEntry === undefined ? undefined : quotaFacts(quotaEntry.message, quotaEntry.quotaInfo),
    };
  }
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as Record<string, unknown>;
  const response = e["response"] as { status?: unknown; headers?: unknown } | undefined;
  const httpStatus =
    typeof e["status"] === "number"
      ? e["status"]
      : typeof response?.status === "number"
        ? response.status
        : undefined;
  if (httpStatus === undefined) return undefined;
  const body = parseErrorBody(errorMessage(err));
  const reasons = [
    ...(body?.errors ?? []).map((x) => x.reason).filter((x): x is string => x !== undefined),
    ...(body?.detailReasons ?? []),
  ];
  const message = body?.message ?? errorMessage(err);
  return {
    httpStatus,
    reasons,
    status: body?.status,
    message,
    retryAfter: headerOf(response?.headers, "retry-after"),
    quota: reasons.some((r) => QUOTA_REASONS.has(r)) ? quotaFacts(message, undefined) : undefined,
  };
}

interface ErrorBody {
  message: string | undefined;
  status: string | undefined;
  errors: { reason?: string; message?: string }[];
  detailReasons: string[];
}

/** The `{"error": {...}}` body of a Google API error answer. */
function parseErrorBody(text: string): ErrorBody | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const error = (json as { error?: unknown } | null)?.error;
  if (typeof error !== "object" || error === null) return undefined;
  const e = error as Record<string, unknown>;
  const errors = Array.isArray(e["errors"])
    ? (e["errors"] as unknown[]).filter(
        (x): x is { reason?: string; message?: string } => typeof x === "object" && x !== null,
      )
    : [];
  const detailReasons = Array.isArray(e["details"])
    ? (e["details"] as { reason?: unknown }[])
        .map((d) => d.reason)
        .filter((r): r is string => typeof r === "string")
    : [];
  return {
    message: typeof e["message"] === "string" ? e["message"] : undefined,
    status: typeof e["status"] === "string" ? e["status"] : undefined,
    errors,
    detailReasons,
  };
}

function quotaFacts(message: string, info: QuotaInfo | undefined): QuotaFacts | undefined {
  const m = QUOTA_MESSAGE_RE.exec(message);
  const metric =
    m?.[1] ??
    info?.metricName
      ?.replace(/^.*\//, "")
      .toUpperCase()
      .replace(/[^A-Z0-9_]/g, "_");
  if (metric === undefined || metric === "") return undefined;
  const limit = m?.[2] !== undefined ? Number(m[2]) : (info?.limit ?? undefined);
  const scope = m?.[3] ?? (m?.[4] !== undefined ? "global" : info?.dimensions?.["region"]);
  return { metric, limit, scope };
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (typeof headers !== "object" || headers === null) return undefined;
  const get = (headers as { get?: unknown }).get;
  if (typeof get !== "function") return undefined;
  const v: unknown = (get as (n: string) => unknown).call(headers, name);
  return typeof v === "string" ? v : undefined;
}

/**
 * A quota that only some instance types draw on: a machine family's regional CPUs (`N2_CPUS`,
 * and `CPUS`, which E2/N1 share), spot CPUs, or a GPU model. Other types can still be created,
 * so it holds only the failing type's quota group. `CPUS_ALL_REGIONS`, `INSTANCES`, disk and
 * address quotas hold everything.
 */
export function isQuotaGroupQuota(metric: string): boolean {
  if (metric === "CPUS_ALL_REGIONS") return false;
  return /^(?:[A-Z0-9]+_)?CPUS$/.test(metric) || metric.endsWith("_GPUS");
}

/** An error another zone might not give: Create then tries the next configured zone. */
export function isZoneSpecificError(err: unknown): boolean {
  const facts = gceErrorFacts(err);
  if (facts === undefined) return false;
  return facts.reasons.some((r) => CAPACITY_REASONS.has(r)) || NOT_IN_ZONE_RE.test(facts.message);
}

/** The zone ran out of capacity for the type (used to prefer such an error when reporting). */
export function isCapacityError(err: unknown): boolean {
  return gceErrorFacts(err)?.reasons.some((r) => CAPACITY_REASONS.has(r)) ?? false;
}

/**
 * Turn an error from the Compute API, or a failed operation, into what the dispatcher reacts
 * to — the one place this driver does so:
 * - HTTP 429, or a rate-limit reason (`rateLimitExceeded`, `RATE_LIMIT_EXCEEDED`, …) →
 *   RateLimitError until `Retry-After` (seconds) or the next step of `backoff`;
 * - `ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS]` → CapacityError for the instance type (Create
 *   has already tried every configured zone);
 * - `QUOTA_EXCEEDED` → CapacityError for the quota group when the quota covers only some types
 *   (see isQuotaGroupQuota), else QuotaError; the quota's name and region are in the message;
 * - any other API error becomes a GceApiError with a readable message; errors that did not come
 *   from the API are returned unchanged. Both, and success (`err` undefined), reset `backoff`.
 */
export function classifyGceError(err: unknown, backoff: ThrottleBackoff, nowMs: number): unknown {
  const facts = err === undefined ? undefined : gceErrorFacts(err);
  if (facts !== undefined) {
    if (facts.httpStatus === 429 || facts.reasons.some((r) => RATE_LIMIT_REASONS.has(r))) {
      const seconds = Number(facts.retryAfter?.trim() ?? "");
      const delay =
        facts.retryAfter !== undefined && Number.isFinite(seconds) && seconds >= 0
          ? seconds * 1000
          : backoff.next();
      return new RateLimitError(
        `GCE API rate limit: ${facts.message}`,
        new Date(Math.floor(nowMs + delay)),
        { cause: err },
      );
    }
    if (facts.reasons.some((r) => CAPACITY_REASONS.has(r))) {
      return new CapacityError(`GCE capacity: ${facts.message}`, "instance-type", { cause: err });
    }
    if (facts.reasons.some((r) => QUOTA_REASONS.has(r))) {
      const q = facts.quota;
      const where =
        q === undefined
          ? ""
          : ` (${q.metric}${q.limit === undefined ? "" : `, limit ${q.limit}`}${q.scope === undefined ? "" : q.scope === "global" ? ", global" : `, region ${q.scope}`})`;
      const text = `GCE quota exceeded${where}: ${facts.message}`;
      if (q !== undefined && isQuotaGroupQuota(q.metric)) {
        return new CapacityError(text, "quota-group", { cause: err });
      }
      return new QuotaError(text, { cause: err });
    }
  }
  backoff.reset();
  if (facts !== undefined && !(err instanceof GceApiError) && !(err instanceof GceOperationError)) {
    return new GceApiError(facts, { cause: err });
  }
  return err;
}
