/*
 * Compute Engine error answers as the API gives them, for the fake and for classifier tests.
 * Messages and codes are GCE's own.
 */

/** An HTTP error answer: status and the JSON body. */
export interface HttpErrorAnswer {
  readonly kind: "http";
  readonly status: number;
  readonly body: { readonly error: Record<string, unknown> };
  /** Sent as the Retry-After header when given. */
  readonly retryAfter?: string;
}

/** One `error.errors` entry of a finished operation. */
export interface OperationErrorItem {
  readonly code: string;
  readonly message: string;
  readonly errorDetails?: readonly Record<string, unknown>[];
}

/** A request GCE accepts, whose operation then ends with these errors. */
export interface OperationFailure {
  readonly kind: "operation";
  readonly errors: readonly OperationErrorItem[];
  readonly httpErrorStatusCode: number;
  readonly httpErrorMessage: string;
}

function legacy(
  status: number,
  reason: string,
  message: string,
  domain = "global",
): HttpErrorAnswer {
  return {
    kind: "http",
    status,
    body: { error: { code: status, message, errors: [{ message, domain, reason }] } },
  };
}

export const gceErrors = {
  /** The older per-user rate limit: 403 with reason rateLimitExceeded. */
  rateLimitExceeded: (): HttpErrorAnswer =>
    legacy(403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),

  /** The API's queries-per-minute limit: 429 RESOURCE_EXHAUSTED. */
  tooManyRequests: (retryAfter?: string): HttpErrorAnswer => {
    const message =
      "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com' for consumer 'project_number:123456789012'.";
    return {
      kind: "http",
      status: 429,
      body: {
        error: {
          code: 429,
          message,
          errors: [{ message, domain: "global", reason: "rateLimitExceeded" }],
          status: "RESOURCE_EXHAUSTED",
          details: [
            {
              "@type": "type.googleapis.com/google.rpc.ErrorInfo",
              reason: "RATE_LIMIT_EXCEEDED",
              domain: "googleapis.com",
              metadata: {
                service: "compute.googleapis.com",
                quota_metric: "compute.googleapis.com/default",
                quota_limit: "defaultPerMinutePerProject",
              },
            },
          ],
        },
      },
      ...(retryAfter === undefined ? {} : { retryAfter }),
    };
  },

  /** A resource quota refused at once (`region` undefined: a global quota). */
  quotaExceededHttp: (metric: string, limit: number, region?: string): HttpErrorAnswer =>
    legacy(403, "quotaExceeded", quotaMessage(metric, limit, region), "usageLimits"),

  /** A resource quota reported by the insert operation, with its quotaInfo. */
  quotaExceeded: (metric: string, limit: number, region?: string): OperationFailure => ({
    kind: "operation",
    httpErrorStatusCode: 403,
    httpErrorMessage: "FORBIDDEN",
    errors: [
      {
        code: "QUOTA_EXCEEDED",
        message: quotaMessage(metric, limit, region),
        errorDetails: [
          {
            quotaInfo: {
              metricName: `compute.googleapis.com/${metric.toLowerCase()}`,
              limitName: `${metric.replace(/_/g, "-")}-per-project${region === undefined ? "" : "-region"}`,
              ...(region === undefined ? {} : { dimensions: { region } }),
              limit,
            },
          },
        ],
      },
    ],
  }),

  /** The zone has no capacity for the VM right now. */
  zoneResourcePoolExhausted: (
    project: string,
    zone: string,
    withDetails = false,
  ): OperationFailure => ({
    kind: "operation",
    httpErrorStatusCode: 503,
    httpErrorMessage: "SERVICE UNAVAILABLE",
    errors: [
      withDetails
        ? {
            code: "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            message: `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  '(resource type:compute)'.`,
          }
        : {
            code: "ZONE_RESOURCE_POOL_EXHAUSTED",
            message: `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`,
          },
    ],
  }),

  /** The machine type is not offered in the zone. */
  machineTypeNotInZone: (zone: string, type: string): HttpErrorAnswer =>
    legacy(
      400,
      "invalid",
      `Invalid value for field 'resource.machineType': 'zones/${zone}/machineTypes/${type}'. Machine type with name '${type}' does not exist in zone '${zone}'.`,
    ),

  notFound: (resource: string): HttpErrorAnswer =>
    legacy(404, "notFound", `The resource '${resource}' was not found`),

  alreadyExists: (resource: string): HttpErrorAnswer =>
    legacy(409, "alreadyExists", `The resource '${resource}' already exists`),

  fingerprintMismatch: (): HttpErrorAnswer =>
    legacy(
      412,
      "conditionNotMet",
      "Supplied fingerprint does not match current metadata fingerprint.",
    ),

  invalid: (message: string): HttpErrorAnswer => legacy(400, "invalid", message),

  backendError: (): HttpErrorAnswer =>
    legacy(
      503,
      "backendError",
      "Internal error. Please try again or contact Google Support. (Code: '5C54C97EB5265.AA25590.F4046F68')",
    ),

  unauthenticated: (why: string): HttpErrorAnswer => ({
    kind: "http",
    status: 401,
    body: {
      error: {
        code: 401,
        message: `Request had invalid authentication credentials (${why}). Expected OAuth 2 access token, login cookie or other valid authentication credential.`,
        errors: [
          {
            message: "Invalid Credentials",
            domain: "global",
            reason: "authError",
            location: "Authorization",
            locationType: "header",
          },
        ],
        status: "UNAUTHENTICATED",
      },
    },
  }),
};

function quotaMessage(metric: string, limit: number, region: string | undefined): string {
  return `Quota '${metric}' exceeded.  Limit: ${limit.toFixed(1)} ${region === undefined ? "globally" : `in region ${region}`}.`;
}
