import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateEd25519KeyPair } from "@dispatch-cloud/cloud-driver-api";
import { beforeAll, describe, expect, test } from "vitest";
import { clusterYaml } from "./testing/cli.js";

// The built CLI in its own process, as bin/cloudtest runs it: real argv, exit status,
// signals, and real SSH to the stub's fake VMs and to the loopback "VM".
const root = path.resolve(import.meta.dirname, "../../..");
const cli = path.join(root, "apps/cloudtest/dist/cli.js");
const dir = mkdtempSync(path.join(tmpdir(), "cloudtest-cli-"));
const keyFile = path.join(dir, "dispatch_key");
writeFileSync(keyFile, generateEd25519KeyPair("cloudtest-cli").privateKey, { mode: 0o600 });

beforeAll(() => {
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-b", "apps/cloudtest"], {
    cwd: root,
    stdio: "pipe",
  });
});

function writeConfig(name: string, cloudVMs: string[], instanceTypes: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, clusterYaml(keyFile, cloudVMs, instanceTypes));
  return file;
}

const stubConfig = writeConfig(
  "stub.yml",
  ["Driver: stub", 'BootProbeCommand: "true"', "ResourceTags: {Owner: ops}"],
  ["small: {ProviderType: s1, VCPUs: 1, RAM: 1GiB, Price: 0.1}"],
);

const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin" };

describe("cloudtest as a child process", () => {
  test("on the stub cloud: exit 0 and a summary where every step passed", () => {
    const r = spawnSync(process.execPath, [cli, "-config", stubConfig], {
      cwd: root,
      encoding: "utf8",
      env,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("cloudtest summary:");
    expect(r.stdout).toMatch(/ {2}PASS {2}boot probe +\d/);
    expect(r.stdout).toMatch(
      /instance: stub-000001, destroyed and no longer listed\nresult: PASSED/,
    );
    expect(r.stdout).not.toContain("FAIL");
    expect(r.stderr).toMatch(/msg="creating instance" .*ArvadosCloudTestPID/);
    expect(r.stderr).toMatch(/level=info msg=exiting\n$/);
  });

  test("`bin/cloudtest && echo OK!` prints OK! only on success", () => {
    const ok = spawnSync(
      "bash",
      ["-c", 'bin/cloudtest -config "$1" >/dev/null 2>&1 && echo OK!', "sh", stubConfig],
      {
        cwd: root,
        encoding: "utf8",
        env,
      },
    );
    expect(ok.stdout).toBe("OK!\n");
    const bad = spawnSync(
      "bash",
      [
        "-c",
        'bin/cloudtest -config "$1" -instance-type nope >/dev/null 2>&1 && echo OK!; echo "status $?"',
        "sh",
        stubConfig,
      ],
      { cwd: root, encoding: "utf8", env },
    );
    expect(bad.stdout).toBe("status 1\n");
  });

  test("a flag error exits 2", () => {
    const r = spawnSync(process.execPath, [cli, "-no-such-flag"], {
      cwd: root,
      encoding: "utf8",
      env,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
  });

  test("SIGINT during the boot probe still destroys the instance", async () => {
    const config = writeConfig(
      "stub-slow.yml",
      ["Driver: stub", 'BootProbeCommand: "false"', "ProbeInterval: 1m", "TimeoutBooting: 10m"],
      ["small: {ProviderType: s1, VCPUs: 1, RAM: 1GiB, Price: 0.1}"],
    );
    const child = spawn(process.execPath, [cli, "-config", config], { cwd: root, env });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (b: Buffer) => {
        stdout += b.toString();
        // The first probe has failed and cloudtest waits ProbeInterval: the operator gives up.
        if (stderr.includes('msg="boot probe failed"')) resolve();
      });
      child.stderr.on("data", () => {
        if (stderr.includes('msg="boot probe failed"')) resolve();
      });
    });
    child.kill("SIGINT");
    expect(await exited).toBe(1);
    expect(stdout).toMatch(/ {2}INTR {2}boot probe .*interrupted \(got SIGINT\)/);
    expect(stdout).toMatch(/ {2}PASS {2}destroy instance /);
    expect(stdout).toContain("instance: stub-000001, destroyed and no longer listed");
    expect(stderr).toContain("got SIGINT: stopping the test and destroying the test instance");
  });
});

describe("the loopback driver over real SSH", () => {
  test("boots the local machine, runs the command over SSH and forgets it", () => {
    const config = writeConfig(
      "loopback.yml",
      ["Driver: loopback", 'BootProbeCommand: "true"'],
      [],
    );
    const r = spawnSync(
      process.execPath,
      [cli, "--config", config, "--command", "echo hello-from-$((6*7)) && id -un"],
      { cwd: root, encoding: "utf8", env },
    );
    expect(r.status).toBe(0);
    // The shell on the "VM" expanded the arithmetic: the command really ran remotely.
    expect(r.stdout).toContain("    stdout: hello-from-42");
    expect(r.stdout).toMatch(/login to the instance with: ssh -p\d+ \S+@127\.0\.0\.1/);
    expect(r.stdout).toMatch(/ {2}PASS {2}boot probe /);
    expect(r.stdout).toContain("instance: localhost, destroyed and no longer listed");
    expect(r.stderr).toContain("InstanceType=localhost");
  });
});
