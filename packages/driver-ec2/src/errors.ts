import { KindedError } from "@dispatch-cloud/arvados-types";

/** What went wrong in the EC2 driver itself (as opposed to a classified AWS error). */
export type Ec2DriverErrorKind =
  /** Finding or importing the key pair for the dispatcher's public key failed. */
  | "key-pair"
  /** AWS answered without what the call must return (e.g. RunInstances with no instance). */
  | "bad-response";

export class Ec2DriverError extends KindedError<Ec2DriverErrorKind> {
  override readonly name = "Ec2DriverError";
}
