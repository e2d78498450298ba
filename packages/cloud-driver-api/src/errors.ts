/*
 * The error kinds the dispatcher reacts to. Drivers turn provider errors into these in one
 * classifier; wrappers pass them through. Guards check a Symbol.for brand rather than
 * `instanceof`, so they hold when two copies of this package are loaded.
 */

const brand = Symbol.for("@dispatch-cloud/cloud-driver-api/error-kind");

export type CloudErrorKind = "rate-limit" | "quota" | "capacity" | "not-implemented";

/** Which creates a capacity error should hold back. */
export type CapacityScope = "all" | "instance-type" | "quota-group";

interface Branded {
  readonly [brand]: CloudErrorKind;
}

function kindOf(err: unknown): CloudErrorKind | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  return (err as Partial<Branded>)[brand];
}

/** Every API call is being rejected until `earliestRetry`. */
export class RateLimitError extends Error {
  readonly [brand] = "rate-limit" as const;
  override readonly name = "RateLimitError";
  constructor(
    message: string,
    readonly earliestRetry: Date,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  static is(err: unknown): err is RateLimitError {
    return kindOf(err) === "rate-limit";
  }
}

/** No more VMs can be created until some are destroyed. */
export class QuotaError extends Error {
  readonly [brand] = "quota" as const;
  override readonly name = "QuotaError";
  static is(err: unknown): err is QuotaError {
    return kindOf(err) === "quota";
  }
}

/** The provider has no capacity right now, for everything or for part of it (`scope`). */
export class CapacityError extends Error {
  readonly [brand] = "capacity" as const;
  override readonly name = "CapacityError";
  constructor(
    message: string,
    readonly scope: CapacityScope,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  static is(err: unknown): err is CapacityError {
    return kindOf(err) === "capacity";
  }
}

/** A driver does not support an optional operation. */
export class NotImplementedError extends Error {
  readonly [brand] = "not-implemented" as const;
  override readonly name = "NotImplementedError";
  constructor(message = "not implemented") {
    super(message);
  }
  static is(err: unknown): err is NotImplementedError {
    return kindOf(err) === "not-implemented";
  }
}

/** The message of any thrown value, for logs and error strings. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
