import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "@dispatch-cloud/config";
import { afterEach, describe, expect, test } from "vitest";
import { ensureDemoConfig, randomToken } from "./config.js";
import { demoFiles } from "./paths.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function files() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "demo-config-"));
  dirs.push(d);
  return demoFiles(path.join(d, "data"));
}

describe("the generated demo config", () => {
  test("loads without problems and says loopback, process engine, short intervals", async () => {
    const f = files();
    expect(await ensureDemoConfig(f, "/opt/crunch-run.cjs")).toEqual({ created: true });
    const result = await loadConfig({ path: f.config });
    if (!result.ok) throw new Error(result.errors.map((e) => e.text).join("\n"));
    expect(result.warnings).toEqual([]);
    const { cluster, clusterId, dispatchKey } = result.config;
    expect(clusterId).toBe("zzzzz");
    expect(cluster.SystemRootToken).toMatch(/^[a-zA-Z0-9]{32,}$/);
    expect(cluster.ManagementToken).toMatch(/^[a-zA-Z0-9]{32,}$/);
    expect(cluster.ManagementToken).not.toBe(cluster.SystemRootToken);
    expect(cluster.InstanceTypes).toEqual({});
    expect(cluster.Containers.RuntimeEngine).toBe("process");
    expect(dispatchKey?.authorizedKey).toMatch(/^ssh-ed25519 /);
    const vms = cluster.Containers.CloudVMs;
    expect({
      Enable: vms.Enable,
      Driver: vms.Driver,
      DeployRunnerBinary: vms.DeployRunnerBinary,
      PollInterval: vms.PollInterval,
      ProbeInterval: vms.ProbeInterval,
      TimeoutIdle: vms.TimeoutIdle,
      MaxInstances: vms.MaxInstances,
    }).toEqual({
      Enable: true,
      Driver: "loopback",
      DeployRunnerBinary: "/opt/crunch-run.cjs",
      PollInterval: 1000,
      ProbeInterval: 1000,
      TimeoutIdle: 10_000,
      MaxInstances: 1,
    });
    const controller = new URL(cluster.Services["Controller"]?.ExternalURL ?? "");
    const management = new URL(
      Object.keys(cluster.Services["DispatchCloud"]?.InternalURLs ?? {})[0] ?? "",
    );
    expect(controller.hostname).toBe("127.0.0.1");
    expect(management.hostname).toBe("127.0.0.1");
    expect(controller.port).not.toBe(management.port);
    // Secrets are for the owner only.
    expect(fs.statSync(f.config).mode & 0o077).toBe(0);
    expect(fs.statSync(f.dispatchKey).mode & 0o077).toBe(0);
  });

  test("a second run finds the same config and changes nothing", async () => {
    const f = files();
    await ensureDemoConfig(f, "/opt/crunch-run.cjs");
    const first = fs.readFileSync(f.config, "utf8");
    const key = fs.readFileSync(f.dispatchKey, "utf8");
    expect(await ensureDemoConfig(f, "/elsewhere/crunch-run.cjs")).toEqual({ created: false });
    expect(fs.readFileSync(f.config, "utf8")).toBe(first);
    expect(fs.readFileSync(f.dispatchKey, "utf8")).toBe(key);
  });

  test("tokens are random letters and digits", () => {
    const a = randomToken();
    expect(a).toMatch(/^[a-zA-Z0-9]{50}$/);
    expect(randomToken()).not.toBe(a);
  });
});
