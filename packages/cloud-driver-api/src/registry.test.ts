import { describe, expect, it } from "vitest";
import { DriverParametersError, readDriverParameters } from "./parameters.js";
import { UnsupportedDriverError, createDriverRegistry } from "./registry.js";
import type { DriverFactory } from "./types.js";

const factory: DriverFactory = () => Promise.reject(new Error("not started in these tests"));

describe("checkParameters", () => {
  const registry = createDriverRegistry({
    declared: {
      create: factory,
      parameterKeys: ["Region", "Count"],
      parseParameters: (p) => {
        const r = readDriverParameters(p, undefined, ["Region", "Count"]);
        r.integer("Count", { default: 1, min: 1 });
        r.string("Region", { default: "" });
        r.finish();
      },
    },
    bare: factory,
  });

  it("reports keys the driver never reads (case-insensitively) and bad values, without starting it", () => {
    expect(registry.checkParameters("declared", { region: "x", Count: 0, Zone: "z" })).toEqual({
      errors: ["Containers.CloudVMs.DriverParameters.Count: must be at least 1"],
      unknownKeys: ["Containers.CloudVMs.DriverParameters.Zone"],
    });
    expect(registry.lookupDriver("declared")).toBe(factory);
  });

  it("says nothing for a driver registered as a bare factory, and refuses unknown drivers", () => {
    expect(registry.checkParameters("bare", { Anything: 1 })).toEqual({
      errors: [],
      unknownKeys: [],
    });
    expect(() => registry.checkParameters("gce", {})).toThrow(UnsupportedDriverError);
    expect(new DriverParametersError(["a", "b"]).message).toBe("a\nb");
  });
});
