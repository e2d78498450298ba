import { QuotaError, RateLimitError, errorMessage } from "@dispatch-cloud/cloud-driver-api";

/** How long to back off after a 429 that does not say how long. */
export const DEFAULT_RETRY_AFTER_MS = 20_000;

const QUOTA_PATTERN = /exceed|quota|limit/i;

interface ErrorFacts {
  readonly status: number | undefined;
  readonly retryAfter: string | undefined;
  readonly code: string | undefined;
  readonly message: string;
}

/**
 * Turns an error from the Azure SDK into the driver-API kinds, the one place this driver does
 * so:
 * - HTTP 429, or any response carrying `Retry-After` → RateLimitError until the time the header
 *   gives (an HTTP date, or seconds from `now`), or `now` + 20 s when absent or unparseable.
 *   (Arvados panics on a 429 without the header; we back off instead.)
 * - an Azure error code or message matching exceed/quota/limit → QuotaError.
 * - anything else is returned unchanged.
 * Only errors that came back from the service (an HTTP status, an Azure error code, or a
 * long-running operation that failed) are classified; transport and programming errors pass
 * through.
 */
export function classifyAzureError(err: unknown, now: Date): Error {
  const original = err instanceof Error ? err : new Error(errorMessage(err));
  const facts = factsOf(err);
  if (facts === undefined) return original;
  if (facts.status === 429 || facts.retryAfter !== undefined) {
    const until = parseRetryAfter(facts.retryAfter, now);
    return new RateLimitError(`Azure API rate limit: ${facts.message}`, until, { cause: err });
  }
  if (QUOTA_PATTERN.test(facts.code ?? "") || QUOTA_PATTERN.test(facts.message)) {
    return new QuotaError(`Azure quota: ${facts.message}`, { cause: err });
  }
  return original;
}

/** `Retry-After` as an HTTP date or as delay-seconds; the 20 s fallback otherwise. */
export function parseRetryAfter(value: string | undefined, now: Date): Date {
  const text = value?.trim() ?? "";
  if (/^\d+$/.test(text)) return new Date(now.getTime() + Number(text) * 1000);
  if (text !== "" && /[a-z]/i.test(text)) {
    const at = Date.parse(text);
    if (!Number.isNaN(at)) return new Date(at);
  }
  return new Date(now.getTime() + DEFAULT_RETRY_AFTER_MS);
}

function factsOf(err: unknown): ErrorFacts | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as Record<string, unknown>;
  const status = numberOr(e["statusCode"]) ?? numberOr(e["status"]);
  const response = e["response"] as { headers?: unknown; status?: unknown } | undefined;
  const retryAfter = headerOf(response?.headers, "retry-after");
  const details = e["details"] as Record<string, unknown> | undefined;
  const inner = (details?.["error"] as Record<string, unknown> | undefined) ?? details;
  const code =
    stringOr(e["code"]) ??
    stringOr(inner?.["code"]) ??
    stringOr((e["error"] as Record<string, unknown> | undefined)?.["code"]);
  const message = [errorMessage(err), stringOr(inner?.["message"])]
    .filter((m): m is string => m !== undefined && m !== "")
    .filter((m, i, all) => all.indexOf(m) === i)
    .join(": ");
  // core-lro reports an operation that ended `Failed` as a plain Error whose message carries
  // the ARM error code and message, with no status: still the service's answer.
  const lroFailure = errorMessage(err).startsWith("The long-running operation has failed");
  const fromService =
    lroFailure ||
    status !== undefined ||
    retryAfter !== undefined ||
    (code !== undefined && code !== "");
  if (!fromService) return undefined;
  return { status: status ?? numberOr(response?.status), retryAfter, code, message };
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (typeof headers !== "object" || headers === null) return undefined;
  const h = headers as { get?: unknown } & Record<string, unknown>;
  if (typeof h.get === "function") {
    const v: unknown = (h.get as (n: string) => unknown).call(headers, name);
    return typeof v === "string" ? v : undefined;
  }
  for (const [k, v] of Object.entries(h)) {
    if (k.toLowerCase() === name && typeof v === "string") return v;
  }
  return undefined;
}

function numberOr(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function stringOr(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
