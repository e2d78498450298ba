import { DRIVER_PARAMETERS_PATH, DriverParametersError } from "./parameters.js";
import type { DriverFactory } from "./types.js";

/** `Containers.CloudVMs.Driver` named a driver the app does not have. */
export class UnsupportedDriverError extends Error {
  override readonly name = "UnsupportedDriverError";
  constructor(readonly driver: string) {
    super(`unsupported cloud driver ${JSON.stringify(driver)}`);
  }
}

/**
 * A driver and what a config check needs to know about it without starting it: the
 * DriverParameters keys it reads, and a check of their values that touches no cloud.
 */
export interface DriverDefinition {
  readonly create: DriverFactory;
  /** Every key the driver reads (matched case-insensitively, as Arvados's drivers do). */
  readonly parameterKeys: readonly string[];
  /**
   * Decodes DriverParameters as the driver would; throws a DriverParametersError listing every
   * bad value (each problem starts with its key path).
   */
  readonly parseParameters: (parameters: Readonly<Record<string, unknown>>) => unknown;
}

/** What `checkParameters` found: bad values are errors, keys the driver never reads warnings. */
export interface ParameterReport {
  /** `Containers.CloudVMs.DriverParameters.<Key>: <problem>` */
  readonly errors: readonly string[];
  /** Full key paths (`Containers.CloudVMs.DriverParameters.<Key>`) the driver does not read. */
  readonly unknownKeys: readonly string[];
}

/** The drivers an app offers, by their `Containers.CloudVMs.Driver` name. */
export interface DriverRegistry {
  /** The factory for `name`; throws UnsupportedDriverError (`unsupported cloud driver "NAME"`). */
  lookupDriver(name: string): DriverFactory;
  has(name: string): boolean;
  /** Registered names, sorted. */
  names(): string[];
  /**
   * Checks DriverParameters for driver `name` without starting it; throws UnsupportedDriverError
   * for an unknown name. A driver registered as a bare factory declares nothing, so nothing is
   * reported for it.
   */
  checkParameters(name: string, parameters: Readonly<Record<string, unknown>>): ParameterReport;
}

function isDefinition(d: DriverFactory | DriverDefinition): d is DriverDefinition {
  return typeof d !== "function";
}

/**
 * A registry over the given drivers (factories, or definitions that also say which parameters
 * they read). Apps build it (`{ ec2, azure, loopback, stub }`); this package never imports a
 * driver. Names match exactly, as in Arvados.
 */
export function createDriverRegistry(
  drivers: Readonly<Record<string, DriverFactory | DriverDefinition>>,
): DriverRegistry {
  const map = new Map(Object.entries(drivers));
  const get = (name: string): DriverFactory | DriverDefinition => {
    const d = map.get(name);
    if (d === undefined) throw new UnsupportedDriverError(name);
    return d;
  };
  return {
    lookupDriver(name) {
      const d = get(name);
      return isDefinition(d) ? d.create : d;
    },
    has: (name) => map.has(name),
    names: () => [...map.keys()].sort(),
    checkParameters(name, parameters) {
      const d = get(name);
      if (!isDefinition(d)) return { errors: [], unknownKeys: [] };
      const known = new Set(d.parameterKeys.map((k) => k.toLowerCase()));
      const unknownKeys = Object.keys(parameters)
        .filter((k) => !known.has(k.toLowerCase()))
        .map((k) => `${DRIVER_PARAMETERS_PATH}.${k}`);
      try {
        d.parseParameters(parameters);
        return { errors: [], unknownKeys };
      } catch (err) {
        if (err instanceof DriverParametersError) return { errors: err.problems, unknownKeys };
        throw err;
      }
    },
  };
}
