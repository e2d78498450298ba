export { ManualClock } from "./manual-clock.js";
export { FakeInstanceSet, testInstanceType, type FakeCall } from "./fake-set.js";
export {
  runConformanceSuite,
  type ConformanceFixture,
  type ConformanceOptions,
  type InjectableErrorKind,
} from "./conformance.js";
export { recordingLogger, type LogEntry } from "./recording-logger.js";
export { cleanupAfterEach } from "./cleanups.js";
