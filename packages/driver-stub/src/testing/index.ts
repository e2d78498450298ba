import { StubCloud, type StubCloudOptions } from "../cloud.js";

export { InProcessExecutor, inProcessExecutorFactory } from "../executor.js";
export {
  StubCloud,
  type HeldOp,
  type StubCall,
  type StubCloudOptions,
  type StubOp,
} from "../cloud.js";
export type { ExecRequest, FakeVm, SimulatedRun, VmCommand } from "../vm.js";
export { shellQuote, shellSplit } from "../shell.js";

/** A fresh simulated cloud for one test. Remember `await cloud.stop()` afterwards. */
export function createStubCloud(options: StubCloudOptions = {}): StubCloud {
  return new StubCloud(options);
}
