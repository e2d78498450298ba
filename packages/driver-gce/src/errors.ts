import { KindedError } from "@dispatch-cloud/arvados-types";

/** What went wrong in the GCE driver itself, as opposed to a classified Compute API error. */
export type GceDriverErrorKind =
  /** A tag that cannot be stored as GCE instance metadata. */
  | "invalid-tag"
  /** A zone operation (insert, setMetadata) was not done within the driver's bound. */
  | "operation-timeout"
  /** The API answered without what the call must return. */
  | "bad-response";

export class GceDriverError extends KindedError<GceDriverErrorKind> {
  override readonly name = "GceDriverError";
}
