import { describe, expect, test } from "vitest";
import { runCli } from "../program.js";

// Bad flags and arguments of the client commands, caught before any request is made: one line,
// exit status 1. (The child-process tests cover the cases that need a server.)
async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env,
    readStdin: () => Promise.resolve(""),
  });
  return { code, stdout, stderr };
}

// Points nowhere: a case that got as far as a request would fail differently.
const env = { ARVADOS_API_HOST: "http://127.0.0.1:9/", ARVADOS_API_TOKEN: "t" };

describe("client commands refuse bad input in one line", () => {
  test.each([
    [["submit", "--scratch", "lots", "--", "true"], '--scratch "lots": invalid byte size "lots"'],
    [["submit", "--ram", "0", "--", "true"], '--ram "0": must be more than 0 bytes'],
    [["submit", "--vcpus", "1.5", "--", "true"], '--vcpus "1.5": expected a whole number from 1'],
    [
      ["submit", "--priority", "0", "--", "true"],
      '--priority "0": expected a whole number from 1 to 1000',
    ],
    [
      ["submit", "--gpu", "1", "--", "true"],
      "--gpu with CUDA needs --gpu-driver (minimum driver version, e.g. 11.4) and --gpu-target",
    ],
    [
      ["submit", "--gpu", "1", "--gpu-stack", "rocm", "--", "true"],
      "--gpu with ROCm needs --gpu-target",
    ],
    [
      ["submit", "--gpu", "1", "--gpu-stack", "metal", "--", "true"],
      '--gpu-stack "metal": expected cuda or rocm',
    ],
    [["submit", "--gpu-driver", "11.4", "--", "true"], "--gpu-driver needs --gpu N"],
    [["submit", "--wiat", "--", "true"], "unknown option '--wiat' (Did you mean --wait?)"],
    [["container", "list", "--state", "Done"], '--state "Done": expected one of Queued, Locked'],
    [["container", "list", "--limit", "0"], '--limit "0": expected a whole number from 1 to 1000'],
    [["container", "get"], "missing required argument 'uuid'"],
    [
      ["container", "get", "a", "b"],
      "too many arguments for 'get'. Expected 1 argument but got 2.",
    ],
    [
      ["container", "logs", "zzzzz-j7d0g-000000000000000"],
      '"zzzzz-j7d0g-000000000000000" is not a container UUID',
    ],
    [
      ["container", "cancel", "ZZZZZ-dz642-000000000000000"],
      '"ZZZZZ-dz642-000000000000000" is not a container UUID',
    ],
    [
      ["container-api", "--listen", "localhost"],
      '--listen "localhost": expected HOST:PORT, e.g. 127.0.0.1:8000',
    ],
    [
      ["container-api", "--listen", "127.0.0.1:70000"],
      '--listen "127.0.0.1:70000": expected HOST:PORT',
    ],
  ])("%j", async (argv, message) => {
    const r = await run(argv, env);
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: "" });
    expect(r.stderr).toMatch(/^dispatch-cloud: [^\n]+\n$/);
    expect(r.stderr).toContain(`dispatch-cloud: ${message}`);
  });

  test("help is not an error, and says which of config and environment wins", async () => {
    const r = await run(["submit", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: dispatch-cloud submit [options] <CMD...>");
    expect(r.stdout).toContain("A config file given by --config or $ARVADOS_CONFIG wins");
  });
});
