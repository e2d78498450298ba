import { describe, expect, it } from "vitest";
import { UsageError, parseArgs } from "./args.js";

describe("parseArgs", () => {
  it("accepts -flag and --flag alike, as the dispatcher and Go's flag package write them", () => {
    const a = parseArgs([
      "--detach",
      "--stdin-config",
      "--runtime-engine=process",
      "zzzzz-dz642-000000000000001",
    ]);
    const b = parseArgs([
      "-detach",
      "-stdin-config",
      "-runtime-engine",
      "process",
      "zzzzz-dz642-000000000000001",
    ]);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ detach: true, stdinConfig: true, runtimeEngine: "process" });
    expect(a.containerUuid).toBe("zzzzz-dz642-000000000000001");
  });

  it("defaults the runtime engine to docker", () => {
    expect(parseArgs(["zzzzz-dz642-000000000000001"]).runtimeEngine).toBe("docker");
  });

  it("parses --kill with its signal number", () => {
    expect(parseArgs(["--kill", "15", "zzzzz-dz642-000000000000001"]).kill).toBe(15);
    expect(() => parseArgs(["--kill", "TERM", "x"])).toThrow(/not a signal number/);
  });

  it("needs a container UUID except with --list", () => {
    expect(parseArgs(["--list", "--stdin-prices"])).toMatchObject({
      list: true,
      stdinPrices: true,
    });
    expect(() => parseArgs(["--detach"])).toThrow(
      new UsageError("missing required argument: container-uuid (try -help)"),
    );
  });

  it("rejects unknown flags by name", () => {
    expect(() => parseArgs(["--frobnicate", "x"])).toThrow(
      "flag provided but not defined: -frobnicate",
    );
  });
});
