import { describe, expect, it } from "vitest";
import { formatGoFloat } from "./go-format.js";

describe("formatGoFloat", () => {
  // Expected strings are what Go's fmt.Sprintf("%v", float64(x)) prints.
  it.each([
    [0.02, "0.02"],
    [1, "1"],
    [0.1 + 0.2, "0.30000000000000004"],
    [1.5, "1.5"],
    [123456, "123456"],
    [999999.5, "999999.5"],
    [1e6, "1e+06"],
    [1234567, "1.234567e+06"],
    [1e21, "1e+21"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [0.000012345, "1.2345e-05"],
    [1e-100, "1e-100"],
    [0, "0"],
    [-0.5, "-0.5"],
    [-2e-7, "-2e-07"],
  ])("%s → %s", (value, want) => {
    expect(formatGoFloat(value)).toBe(want);
  });
});
