import { describe, expect, it } from "vitest";
import { DriverParametersError, parseGoDuration, readDriverParameters } from "./parameters.js";

describe("readDriverParameters", () => {
  it("matches keys case-insensitively, exact match first", () => {
    const r = readDriverParameters({ tenantid: "t", Region: "r", region: "lower" });
    expect(r.string("TenantID")).toBe("t");
    expect(r.string("Region")).toBe("r");
    r.finish();
  });

  it("collects every problem with its key path", () => {
    const r = readDriverParameters({
      Region: 5,
      Count: 1.5,
      On: "yes",
      Wait: "soon",
      Kind: "x",
      List: [1],
    });
    r.string("Region");
    r.integer("Count");
    r.boolean("On");
    r.duration("Wait");
    r.oneOf("Kind", ["a", "b"]);
    r.stringList("List");
    r.string("Missing");
    expect(() => r.finish()).toThrow(DriverParametersError);
    expect(r.problems).toEqual([
      "Containers.CloudVMs.DriverParameters.Region: must be a string, not 5",
      "Containers.CloudVMs.DriverParameters.Count: must be an integer, not 1.5",
      'Containers.CloudVMs.DriverParameters.On: must be true or false, not "yes"',
      'Containers.CloudVMs.DriverParameters.Wait: must be a duration such as "10s" or "1m30s", not "soon"',
      'Containers.CloudVMs.DriverParameters.Kind: must be one of "a", "b", not "x"',
      "Containers.CloudVMs.DriverParameters.List: must be a list of strings, not [1]",
      "Containers.CloudVMs.DriverParameters.Missing: is required",
    ]);
  });

  it("uses defaults for absent keys and checks ranges", () => {
    const r = readDriverParameters({ N: -1 }, "X.Params");
    expect(r.integer("Absent", { default: 7 })).toBe(7);
    expect(r.duration("Boot", { default: 0 })).toBe(0);
    r.integer("N", { min: 0 });
    expect(r.problems).toEqual(["X.Params.N: must be at least 0"]);
  });

  it("parses Go durations", () => {
    expect(parseGoDuration("1m30s")).toBe(90_000);
    expect(parseGoDuration("300ms")).toBe(300);
    expect(parseGoDuration("1.5h")).toBe(5_400_000);
    expect(parseGoDuration("0")).toBe(0);
    expect(parseGoDuration("10")).toBeUndefined();
    expect(parseGoDuration("s")).toBeUndefined();
  });
});

describe("declared keys", () => {
  it("lets a driver read only the keys it declares, so its list stays true", () => {
    const r = readDriverParameters({ region: "x" }, undefined, ["Region"]);
    expect(r.string("Region")).toBe("x");
    expect(() => r.string("Zone", { default: "" })).toThrow(
      "bug: DriverParameters key Zone is read but not declared",
    );
  });
});
