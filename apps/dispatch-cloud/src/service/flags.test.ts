import { describe, expect, test } from "vitest";
import { EX_USAGE, parseServiceArgs, serviceUsage } from "./flags.js";

const DEFAULT = "/etc/arvados/config.yml";
const parse = (...args: string[]) => parseServiceArgs(args, "arvados-dispatch-cloud", DEFAULT);

describe("the service's flags, as Go's flag package reads them", () => {
  test.each([
    [[], { config: DEFAULT, ignored: [] }],
    [["-config", "/x.yml"], { config: "/x.yml", ignored: [] }],
    [["--config=/x.yml"], { config: "/x.yml", ignored: [] }],
    [["-config", "-"], { config: "-", ignored: [] }],
    [
      ["-pprof", "localhost:6060", "-config=/x.yml"],
      { config: "/x.yml", pprof: "localhost:6060", ignored: [] },
    ],
    [["-version=false"], { config: DEFAULT, ignored: [] }],
    [
      ["-skip-legacy", "-legacy-ws-config", "/etc/arvados/ws/ws.yml"],
      { config: DEFAULT, ignored: ["-legacy-ws-config"] },
    ],
    [["--"], { config: DEFAULT, ignored: [] }],
  ])("%j runs the service", (args, flags) => {
    expect(parse(...args)).toEqual({ kind: "run", flags });
  });

  test.each([["-version"], ["--version"], ["-version=true"], ["-config", "x", "-version"]])(
    "%s prints the version",
    (...args) => {
      expect(parse(...args)).toEqual({ kind: "version" });
    },
  );

  test.each([["-help"], ["-h"], ["--help"]])("%s prints the usage", (flag) => {
    expect(parse(flag)).toEqual({
      kind: "help",
      usage: expect.stringMatching(
        /^Usage: arvados-dispatch-cloud \[options\]\n {2}-config file\n/,
      ),
    });
    expect(serviceUsage("arvados-dispatch-cloud", DEFAULT)).toContain(`(default "${DEFAULT}")`);
  });

  test.each([
    [
      ["-bogus"],
      "error parsing command line arguments: flag provided but not defined: -bogus (try -help)",
    ],
    [
      ["-config"],
      "error parsing command line arguments: flag needs an argument: -config (try -help)",
    ],
    [
      ["-version=maybe"],
      'error parsing command line arguments: invalid boolean value "maybe" for -version: parse error (try -help)',
    ],
    [["---config"], "error parsing command line arguments: bad flag syntax: ---config (try -help)"],
    [["run", "x"], "unrecognized command line arguments: [run x] (try -help)"],
    [["-config", "/x.yml", "extra"], "unrecognized command line arguments: [extra] (try -help)"],
    [["--", "-config"], "unrecognized command line arguments: [-config] (try -help)"],
  ])("%j is a usage error", (args, message) => {
    expect(parse(...args)).toEqual({ kind: "usage-error", message });
  });

  test("usage errors exit 64 (EX_USAGE), which Arvados's unit does not restart", () => {
    expect(EX_USAGE).toBe(64);
  });
});
