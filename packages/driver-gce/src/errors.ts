/** What went wrong in the GCE driver itself, as opposed to a classified Compute API error. */
export type GceDriverErrorReason =
  /** A tag that cannot be stored as GCE instance metadata. */
  | "invalid-tag"
  /** A zone operation (insert, setMetadata) was not done within the driver's bound. */
  | "operation-timeout"
  /** The API answered without what the call must return. */
  | "bad-response";

export class GceDriverError extends Error {
  override readonly name = "GceDriverError";
  constructor(
    readonly reason: GceDriverErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
