import { KindedError } from "@dispatch-cloud/arvados-types";

/**
 * The driver's own error family. Cloud-side failures are turned into the driver-API kinds
 * (rate limit, quota) by `classifyAzureError`; bad DriverParameters are the API's
 * DriverParametersError; these are the remaining failures of our configuration.
 */

export type AzureDriverErrorKind =
  /** A combination of settings that only shows when a VM is created (image mode, blob). */
  | "invalid-configuration"
  /** The instance type asks for something this driver cannot do (AddedScratch). */
  | "unsupported";

export class AzureDriverError extends KindedError<AzureDriverErrorKind> {
  override readonly name = "AzureDriverError";
}
