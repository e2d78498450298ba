export {
  FakeArm,
  type ArmResource,
  type ArmResourceKind,
  type FakeArmOptions,
  type Hold,
  type InjectedFailure,
  type ReceivedRequest,
  type RequestMatch,
  type SeedVm,
} from "./fake-arm.js";
export { FakeAad, type FakeAadOptions, type TokenRequest } from "./fake-aad.js";
export { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from "./azurite.js";
export { fakeCredential, recordingLogger, type LogLine } from "./helpers.js";
