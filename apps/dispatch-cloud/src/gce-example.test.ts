import path from "node:path";
import { loadConfig } from "@dispatch-cloud/config";
import { gceQuotaGroup, parseGceParameters, resolveGceConfig } from "@dispatch-cloud/driver-gce";
import { describe, expect, test } from "vitest";
import { defaultDrivers } from "./daemon/dispatcher.js";
import { runCli } from "./program.js";

const example = path.resolve(import.meta.dirname, "../../../examples/gce.yml");

async function run(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: {},
    readStdin: () => Promise.resolve(""),
  });
  return { code, stdout, stderr };
}

describe("examples/gce.yml", () => {
  test("passes config-check without a warning", async () => {
    expect(await run(["config-check", "--config", example])).toEqual({
      code: 0,
      stdout: "",
      stderr: "",
    });
  });

  test("config-dump redacts the service-account key", async () => {
    const r = await run(["config-dump", "--config", example]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Credentials: "[REDACTED]"');
    expect(r.stdout).not.toContain("PRIVATE KEY");
    expect(r.stdout).not.toContain("arvados-dispatcher@");
  });

  test("its DriverParameters are what the daemon's gce driver accepts", async () => {
    const loaded = await loadConfig({ path: example, readStdin: () => Promise.resolve("") });
    if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.text).join("\n"));
    const { cluster } = loaded.config;
    expect(cluster.Containers.CloudVMs.Driver).toBe("gce");
    // The daemon's registry checks them as config-check does: nothing to report.
    const params = cluster.Containers.CloudVMs.DriverParameters;
    expect(defaultDrivers().checkParameters("gce", params)).toEqual({
      errors: [],
      unknownKeys: [],
    });
    expect(
      defaultDrivers().checkParameters("gce", { ...params, Zones: ["uscentral1"], SubnetID: "x" }),
    ).toEqual({
      errors: [
        'Containers.CloudVMs.DriverParameters.Zones[0]: must be a zone name such as us-central1-a, not "uscentral1"',
      ],
      unknownKeys: ["Containers.CloudVMs.DriverParameters.SubnetID"],
    });
    const config = await resolveGceConfig(
      parseGceParameters(cluster.Containers.CloudVMs.DriverParameters),
    );
    expect(config).toMatchObject({
      project: "arvados-prod",
      zones: ["us-central1-a", "us-central1-b"],
      scratchDiskType: "local-ssd",
      credentials: {
        kind: "inline",
        key: { client_email: "arvados-dispatcher@arvados-prod.iam.gserviceaccount.com" },
      },
    });
    // The Spot twins PreemptiblePriceFactor adds draw on their own quota group.
    const twin = cluster.InstanceTypes["n2-standard-8.preemptible"];
    expect(twin === undefined ? undefined : gceQuotaGroup(twin)).toBe("N2_CPUS-spot");
  });
});
