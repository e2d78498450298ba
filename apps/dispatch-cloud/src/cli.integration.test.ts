import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";

// The real entry point, built, in its own process: what bin/dispatch-cloud runs.
const root = path.resolve(import.meta.dirname, "../../..");
const cli = path.join(root, "apps/dispatch-cloud/dist/cli.js");

beforeAll(() => {
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-b", "apps/dispatch-cloud"], {
    cwd: root,
    stdio: "pipe",
  });
});

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    input,
    encoding: "utf8",
    env: { PATH: process.env["PATH"] ?? "" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("dispatch-cloud as a child process", () => {
  test("config-check of the EC2 example exits 0", () => {
    const r = run(["config-check", "--config", "examples/ec2.yml"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    // Which crunch-run the VMs will run, and why: one line.
    expect(r.stdout).toMatch(/^crunch-run on the VMs: "crunch-run" already on the image .*\n$/);
  });

  test("a broken file exits 1 naming the key path, without a stack trace", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "dispatch-cloud-cli-"));
    const file = path.join(dir, "config.yml");
    writeFileSync(
      file,
      "Clusters:\n  zzzzz:\n    InstanceTypes:\n      x1md:\n        RAM: 64GeeB\n",
    );
    const r = run(["config-check", "--config", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'Clusters.zzzzz.InstanceTypes.x1md.RAM: "64GeeB" is not a byte size (examples: 64GiB, 128GB)',
    );
    expect(r.stderr).not.toMatch(/\n\s+at |Error:/);
  });

  test("a YAML syntax error names line and column; stdin works", () => {
    const r = run(["config-check", "-config", "-"], "Clusters:\n  zzzzz: [\n");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^<stdin>: line \d+, column \d+: /);
  });

  test("an unknown command is a usage error", () => {
    expect(run(["frobnicate"]).code).toBe(2);
  });
});
