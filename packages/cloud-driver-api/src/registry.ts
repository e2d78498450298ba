import type { DriverFactory } from "./types.js";

/** `Containers.CloudVMs.Driver` named a driver the app does not have. */
export class UnsupportedDriverError extends Error {
  override readonly name = "UnsupportedDriverError";
  constructor(readonly driver: string) {
    super(`unsupported cloud driver ${JSON.stringify(driver)}`);
  }
}

/** The drivers an app offers, by their `Containers.CloudVMs.Driver` name. */
export interface DriverRegistry {
  /** The factory for `name`; throws UnsupportedDriverError (`unsupported cloud driver "NAME"`). */
  lookupDriver(name: string): DriverFactory;
  has(name: string): boolean;
  /** Registered names, sorted. */
  names(): string[];
}

/**
 * A registry over the given factories. Apps build it (`{ ec2, azure, loopback, stub }`); this
 * package never imports a driver. Names match exactly, as in Arvados.
 */
export function createDriverRegistry(
  drivers: Readonly<Record<string, DriverFactory>>,
): DriverRegistry {
  const map = new Map(Object.entries(drivers));
  return {
    lookupDriver(name) {
      const f = map.get(name);
      if (f === undefined) throw new UnsupportedDriverError(name);
      return f;
    },
    has: (name) => map.has(name),
    names: () => [...map.keys()].sort(),
  };
}
