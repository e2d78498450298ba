import { goTime as goTimeNano } from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import { cleanPath } from "./path.js";

describe("cleanPath", () => {
  it.each([
    ["", "/"],
    ["//arvados/v1/dispatch/instances", "/arvados/v1/dispatch/instances"],
    ["/a/./b/../c", "/a/c"],
    ["/a//b/", "/a/b/"],
    ["/../x", "/x"],
  ])("%j → %j", (input, want) => {
    expect(cleanPath(input)).toBe(want);
  });
});

describe("goTimeNano", () => {
  it.each([
    ["2024-05-06T07:08:10.000Z", "2024-05-06T07:08:10Z"],
    ["2024-05-06T07:08:10.120Z", "2024-05-06T07:08:10.12Z"],
    ["2024-05-06T07:08:10.123Z", "2024-05-06T07:08:10.123Z"],
  ])("%s → %s", (iso, want) => {
    expect(goTimeNano(new Date(iso))).toBe(want);
  });
});
