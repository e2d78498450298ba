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
  test("warnings exit 1 as Arvados's -strict default; -strict=false allows them", async () => {
    const file = path.join(examples, "gpu-legacy-cuda.yml");
    const strict = await run(["config-check", "--config", file]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toBe("");
    expect(strict.stderr).toContain(
      "Clusters.zzzzz.InstanceTypes.g4dn.CUDA: deprecated section read as GPU",
    );
    for (const flag of ["-strict=false", "--strict=0", "-strict=F"]) {
      const lax = await run(["config-check", flag, "-config", file]);
      expect(lax.code).toBe(0);
      expect(lax.stderr).toBe(strict.stderr);
    }
    expect((await run(["config-check", "-strict", "-config", file])).code).toBe(1);
    expect((await run(["config-check", "-strict=maybe", "-config", file])).code).toBe(2);
  });

  test("checks what the dispatcher reads: the driver, its parameters, the lock's database", async () => {
    const text = readFileSync(path.join(examples, "ec2.yml"), "utf8");
    const withParams = (params: string) =>
      text.replace("DriverParameters:\n", `DriverParameters:\n          ${params}\n`);
    const unknown = await run(["config-check", "--config", "-"], {
      stdin: withParams("SubnetIDs: subnet-1"),
    });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      "deprecated or unknown config entry: Clusters.zzzzz.Containers.CloudVMs.DriverParameters.SubnetIDs (the ec2 driver does not read it)\n",
    );
    expect(
      (
        await run(["config-check", "-strict=false", "--config", "-"], {
          stdin: withParams("subnetid: subnet-1"),
        })
      ).stderr,
    ).toBe("");
    const bad = await run(["config-check", "-strict=false", "--config", "-"], {
      stdin: withParams("EBSPrice: -1"),
    });
    expect([bad.code, bad.stderr]).toEqual([
      1,
      "Clusters.zzzzz.Containers.CloudVMs.DriverParameters.EBSPrice: must be at least 0\n",
    ]);
    const driver = await run(["config-check", "--config", "-"], {
      stdin: text.replace("Driver: ec2", "Driver: gce-typo"),
    });
    expect([driver.code, driver.stderr]).toEqual([
      1,
      'Clusters.zzzzz.Containers.CloudVMs.Driver: unsupported cloud driver "gce-typo" (this dispatcher has azure, ec2, gce, loopback, stub)\n',
    ]);
    const db = await run(["config-check", "--config", "-"], {
      stdin: text.replace(
        "    Containers:\n",
        "    PostgreSQL:\n      Connection: {host: db, password: hunter2hunter2, sslmode: prefer}\n    Containers:\n",
      ),
    });
    expect(db.code).toBe(1);
    expect(db.stderr).toContain(
      "Clusters.zzzzz.PostgreSQL.Connection.sslmode: unsupported sslmode",
    );
    expect(db.stderr).not.toContain("hunter2");
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
