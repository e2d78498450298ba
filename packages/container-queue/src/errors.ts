import { KindedError } from "@dispatch-cloud/arvados-types";

/**
 * Why a queue operation failed:
 * - `no-instance-types`, `unsatisfiable`, `invalid-gpu-stack`: no configured type can run a
 *   container (the message is what the user sees in runtime_status.error);
 * - `bad-mounts`: the container's mounts could not be decoded;
 * - `api`: a controller call failed (cause kept);
 * - `inconsistent-response`: the controller returned rows we did not ask for.
 */
export type QueueErrorKind =
  | "no-instance-types"
  | "unsatisfiable"
  | "invalid-gpu-stack"
  | "bad-mounts"
  | "api"
  | "inconsistent-response";

export class ContainerQueueError extends KindedError<QueueErrorKind> {
  override readonly name = "ContainerQueueError";

  /** Container-level problems the user must fix; polling again will not help. */
  get unsatisfiable(): boolean {
    return (
      this.kind === "no-instance-types" ||
      this.kind === "unsatisfiable" ||
      this.kind === "invalid-gpu-stack"
    );
  }
}
