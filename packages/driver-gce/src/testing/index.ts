export {
  FakeGce,
  type CallMatch,
  type FakeCall,
  type FakeGceOptions,
  type FakeInstance,
  type InjectedFailure,
  type RequestHold,
} from "./fake-gce.js";
export {
  COMPUTE_AUDIENCE,
  TrustedKeys,
  newServiceAccountKey,
  type ServiceAccountKeyFile,
} from "./auth.js";
export {
  gceErrors,
  type HttpErrorAnswer,
  type OperationErrorItem,
  type OperationFailure,
} from "./errors.js";
export { parseFilter } from "./filter.js";
export { bootFakeVm, type BootedVm } from "./vm.js";
export { gceCreateRequest, gceInstanceType, startGceHarness, type GceHarness } from "./harness.js";
export { operationError, sdkHttpError } from "./sdk-errors.js";
