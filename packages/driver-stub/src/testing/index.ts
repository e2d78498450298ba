import { StubCloud, type StubCloudOptions } from "../cloud.js";

// Everything the driver exports, plus what only tests need.
export * from "../index.js";
export { InProcessExecutor, inProcessExecutorFactory } from "../executor.js";
export { shellQuote, shellSplit } from "../shell.js";

/** A fresh simulated cloud for one test. Remember `await cloud.stop()` afterwards. */
export function createStubCloud(options: StubCloudOptions = {}): StubCloud {
  return new StubCloud(options);
}
