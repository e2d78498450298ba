import type { DriverDefinition, DriverFactory } from "@dispatch-cloud/cloud-driver-api";
import { StubCloud, type StubCloudOptions } from "./cloud.js";
import { STUB_PARAMETER_KEYS, parseStubParameters } from "./params.js";

export {
  StubCloud,
  type HeldOp,
  type StubCall,
  type StubCloudOptions,
  type StubOp,
} from "./cloud.js";
export {
  DEFAULT_STUB_PARAMETERS,
  STUB_FAILURE_KINDS,
  STUB_PARAMETER_KEYS,
  parseStubParameters,
  type StubFailEvery,
  type StubFailureKind,
  type StubHostKeyCheck,
  type StubParameters,
} from "./params.js";
export { nodeApiRequester, type ApiCall, type ApiRequester } from "./api.js";
export type { ExecRequest, FakeVm, SimulatedRun, VmCommand } from "./vm.js";

export interface StubDriverOptions extends Omit<StubCloudOptions, "parameters" | "logger"> {
  /** Called with each cloud the factory builds, so a test harness can reach its controls. */
  readonly onCloud?: (cloud: StubCloud) => void;
}

/**
 * A driver factory for `Driver: stub`: DriverParameters are the stub's knobs (see
 * StubParameters), the clock and API transport come from `options`.
 */
export function createStubDriver(options: StubDriverOptions = {}): DriverFactory {
  const { onCloud, ...rest } = options;
  return (context) => {
    try {
      const parameters = parseStubParameters(context.parameters);
      const cloud = new StubCloud({ ...rest, parameters, logger: context.logger });
      onCloud?.(cloud);
      return Promise.resolve(cloud.instanceSet);
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

/** The stub driver with real time and real HTTP, as the daemon registers it. */
export const stubDriver: DriverFactory = createStubDriver();

/** The stub driver with its DriverParameters keys and check, for the registry. */
export const stubDriverDefinition: DriverDefinition = {
  create: stubDriver,
  parameterKeys: STUB_PARAMETER_KEYS,
  parseParameters: (p) => parseStubParameters(p),
};
