import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { VERSION } from "../daemon/index.js";
import { runArvadosCommand } from "./command.js";

const root = path.resolve(import.meta.dirname, "../../../..");

async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runArvadosCommand(
    argv,
    {
      stdout: (s) => (stdout += s),
      stderr: (s) => (stderr += s),
      env,
      readStdin: () => Promise.resolve(""),
    },
    "/usr/bin/arvados-dispatch-cloud",
  );
  return { code, stdout, stderr };
}

describe("arvados-dispatch-cloud", () => {
  test("-version prints Arvados's format and exits 0", async () => {
    expect(await run(["-version"])).toEqual({
      code: 0,
      stdout: `/usr/bin/arvados-dispatch-cloud ${VERSION} (node ${process.version})\n`,
      stderr: "",
    });
  });

  test("the daemon's version is the package's (the root package.json)", () => {
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
      version: string;
    };
    expect(VERSION).toBe(pkg.version);
  });

  test("a bad flag is one line on stderr and exit 64", async () => {
    expect(await run(["-confg", "x.yml"])).toEqual({
      code: 64,
      stdout: "",
      stderr:
        "error parsing command line arguments: flag provided but not defined: -confg (try -help)\n",
    });
  });

  test("a malformed -pprof address is a usage error, before anything starts", async () => {
    const r = await run(["-pprof", "6060"]);
    expect(r).toEqual({
      code: 64,
      stdout: "",
      stderr: '-pprof "6060": want [host]:port, e.g. localhost:6060 (try -help)\n',
    });
  });

  test("a subcommand name runs that subcommand", async () => {
    const r = await run(["config-check", "-config", path.join(root, "examples/ec2.yml")]);
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("the config defaults to $ARVADOS_CONFIG, and a config error exits 1 without starting", async () => {
    const r = await run([], { ARVADOS_CONFIG: "/nonexistent/config.yml" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error loading config "/nonexistent/config.yml"; not starting');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test("legacy config flags are accepted with a warning", async () => {
    const r = await run([
      "-legacy-keepstore-config",
      "/etc/arvados/keepstore.yml",
      "-config",
      "/nonexistent.yml",
    ]);
    expect(r.stderr).toContain(
      "/usr/bin/arvados-dispatch-cloud: ignoring -legacy-keepstore-config: legacy config files configure other Arvados services\n",
    );
    expect(r.code).toBe(1);
  });
});
