import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { bootFakeVm, FakeGce, type BootedVm } from "@dispatch-cloud/driver-gce/testing";
import { startSshd, type Sshd } from "@dispatch-cloud/ssh-executor/testing";
import { afterAll, beforeAll, expect, test } from "vitest";
import { clusterYaml, freePort, runCloudtest } from "./testing/cli.js";

// cloudtest with the real GCE driver (its default registration) against the fake Compute API,
// over two zones, so two runs. The fake gives each VM a loopback address (127.0.2.x); when a
// VM is inserted the test plays its first boot: the VM's startup-script runs with a private
// /run and writes the instance secret, and a real OpenSSH server starts on that address with
// the key from the VM's ssh-keys metadata.

let fake: FakeGce;
const sshds: Sshd[] = [];
const vms: BootedVm[] = [];
const dir = mkdtempSync(path.join(tmpdir(), "cloudtest-gce-"));
const keyFile = path.join(dir, "dispatch_ed25519");
execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
const publicKey = readFileSync(`${keyFile}.pub`, "utf8").trim();

beforeAll(async () => {
  fake = await FakeGce.start({ project: "arvados-test" });
});

afterAll(async () => {
  await Promise.all(sshds.map((s) => s.stop()));
  await Promise.all(vms.map((v) => v.remove()));
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("GCE on the fake: one run per zone, SSH to the booted VM with the secret, delete", async () => {
  const sshPort = await freePort();
  const booted: string[] = [];
  const keys: (string | undefined)[] = [];
  fake.onInsert = async (inst) => {
    const vm = await bootFakeVm(inst);
    vms.push(vm);
    keys.push(vm.sshKey === undefined ? undefined : `${vm.sshKey.user}:${vm.sshKey.publicKey}`);
    booted.push(`${inst.zone.replace(/.*\//, "")} ${vm.address}`);
    sshds.push(
      await startSshd({
        host: vm.address,
        runDir: vm.runDir,
        authorizedKeys: [vm.sshKey!.publicKey],
        extraConfig: [`Port ${sshPort}`],
      }),
    );
  };
  const credentials = JSON.stringify(fake.newServiceAccountKey());
  const yaml = clusterYaml(
    keyFile,
    [
      "Driver: gce",
      "ImageID: arvados-compute-1",
      `SSHPort: "${sshPort}"`,
      'BootProbeCommand: "test -s /var/run/arvados-instance-secret"',
      "ResourceTags: {Owner: ops}",
      // A deleted VM stays listed (STOPPING) until its delete finishes; re-list soon.
      "SyncInterval: 1s",
      "DriverParameters:",
      `  Credentials: ${JSON.stringify(credentials)}`,
      "  Zones: [us-central1-a, us-central1-b]",
      `  Endpoint: ${fake.endpoint}`,
      "  AdminUsername: root",
    ],
    ["e2s2: {ProviderType: e2-standard-2, VCPUs: 2, RAM: 8GiB, Price: 0.067}"],
  );

  const { code, stdout, stderr } = await runCloudtest(["-command", "cat /proc/self/comm"], yaml, {
    pid: 4242,
  });
  expect({ code, stdout, stderr }).toMatchObject({ code: 0 });
  // The dispatcher's key, for AdminUsername, reached each VM through its ssh-keys metadata.
  const keyText = publicKey.split(" ").slice(0, 2).join(" ");
  expect(keys).toEqual([`root:${keyText}`, `root:${keyText}`]);
  expect(booted).toEqual([
    expect.stringMatching(/^us-central1-a 127\.0\.2\.\d+$/),
    expect.stringMatching(/^us-central1-b 127\.0\.2\.\d+$/),
  ]);
  expect(stdout).toContain("=== Zones[0] us-central1-a");
  expect(stdout).toContain("=== Zones[1] us-central1-b");
  expect(stdout.match(/ {2}PASS {2}check tags .*all 4 expected tags are present/g)).toHaveLength(2);
  expect(stdout.match(/ {2}PASS {2}boot probe /g)).toHaveLength(2);
  expect(stdout).toContain("    stdout: cat");
  expect(stdout).toMatch(/instance: us-central1-b\/compute-\S+, destroyed and no longer listed/);
  // Both VMs were deleted, and nothing of the key reached the logs.
  expect(fake.deleted).toHaveLength(2);
  expect(fake.instances()).toEqual([]);
  expect(stderr).not.toContain("PRIVATE KEY");
  expect(sshds.every((s) => s.acceptedLogins() >= 1)).toBe(true);
}, 120_000);
