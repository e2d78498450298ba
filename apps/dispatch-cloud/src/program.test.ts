import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { goStyleFlags, runCli } from "./program.js";

const examples = path.resolve(import.meta.dirname, "../../../examples");

async function run(argv: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: opts.env ?? {},
    readStdin: () => Promise.resolve(opts.stdin ?? ""),
  });
  return { code, stdout, stderr };
}

describe("config-check", () => {
  test("a usable config exits 0 with its warnings on stderr", async () => {
    const r = await run(["config-check", "--config", path.join(examples, "gpu-legacy-cuda.yml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(
      "Clusters.zzzzz.InstanceTypes.g4dn.CUDA: deprecated section read as GPU",
    );
  });

  test("every problem is printed, one per line, and the exit status is 1", async () => {
    const text = readFileSync(path.join(examples, "ec2.yml"), "utf8")
      .replace("RAM: 64GiB", "RAM: 64GeeB")
      .replace(
        "ImageID: ami-01234567890abcdef",
        "ImageID: ami-01234567890abcdef\n        TimeoutIdle: 5",
      );
    const r = await run(["config-check", "--config", "-"], { stdin: text });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([
      'Clusters.zzzzz.Containers.CloudVMs.TimeoutIdle: 5 is not a duration: missing unit in duration "5" (examples: 300ms, 10s, 1m30s, 2h)',
      'Clusters.zzzzz.InstanceTypes.x1md.RAM: "64GeeB" is not a byte size (examples: 64GiB, 128GB)',
    ]);
  });

  test("the config path defaults to $ARVADOS_CONFIG, then /etc/arvados/config.yml", async () => {
    const fromEnv = await run(["config-check"], {
      env: { ARVADOS_CONFIG: "/nonexistent/from-env.yml" },
    });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toMatch(/^\/nonexistent\/from-env\.yml: cannot read the config file/);
    const fallback = await run(["config-check"], { env: { ARVADOS_CONFIG: "" } });
    expect(fallback.stderr).toMatch(/^\/etc\/arvados\/config\.yml: /);
  });

  test("Go-style -config works", async () => {
    expect((await run(["config-check", "-config", path.join(examples, "ec2.yml")])).code).toBe(0);
    expect((await run(["config-check", `-config=${path.join(examples, "ec2.yml")}`])).code).toBe(0);
    expect(goStyleFlags(["-config", "x", "-h", "--config=y", "-"])).toEqual([
      "--config",
      "x",
      "-h",
      "--config=y",
      "-",
    ]);
    // A command after `--` keeps its own flags.
    expect(goStyleFlags(["submit", "-wait", "--", "ls", "-la", "-config"])).toEqual([
      "submit",
      "--wait",
      "--",
      "ls",
      "-la",
      "-config",
    ]);
  });
});

describe("config-dump", () => {
  test("prints the effective config with secrets redacted", async () => {
    const r = await run(["config-dump", "--config", path.join(examples, "ec2.yml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Clusters:\n  zzzzz:\n/);
    expect(r.stdout).toContain("TimeoutBooting: 10m");
    expect(r.stdout).toContain('SecretAccessKey: "[REDACTED]"');
    expect(r.stdout).not.toContain("exampleSecretAccessKeyDoNotUse");
    expect(r.stdout).not.toContain("BEGIN RSA PRIVATE KEY");
  });

  test("a broken config prints problems and nothing on stdout", async () => {
    const r = await run(["config-dump", "--config", "-"], { stdin: "Clusters: {}\n" });
    expect(r).toEqual({ code: 1, stdout: "", stderr: "config does not define any clusters\n" });
  });
});

describe("usage errors exit 2", () => {
  test.each([
    [["bogus"]],
    [["config-check", "--nope"]],
    [[]],
    [["config-check", "extra-arg"]],
    [["config-check", "--config"]],
  ])("%j", async (argv) => {
    const r = await run(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test("--help exits 0", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("config-check");
  });
});
