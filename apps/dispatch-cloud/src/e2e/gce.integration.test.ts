// The daemon (child process, built CLI) with `Driver: gce` against the fake Compute API: it
// creates a VM, whose first boot the test plays (the VM's startup-script runs with a private
// /run and writes the instance secret; an OpenSSH server starts on the VM's 127.0.x.y address
// with the key from its ssh-keys metadata), proves the host by the secret, deploys the bundled
// crunch-run there and runs a container to Complete; hold and drain go through the VM's
// metadata; the idle VM is deleted.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import {
  bootFakeVm,
  FakeGce,
  type BootedVm,
  type FakeInstance,
} from "@dispatch-cloud/driver-gce/testing";
import { startSshd, type Sshd } from "@dispatch-cloud/ssh-executor/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { logLines } from "../demo/containers.js";
import { runnerBundlePath } from "../demo/paths.js";
import {
  configFor,
  freePort,
  instances,
  mgmt,
  startApiPeer,
  startDaemon,
  stopStack,
  submit,
  waitListening,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

const ZONE = "us-central1-a";

describe("the daemon on GCE (fake Compute API, sshd as the VM)", () => {
  let peer: ApiPeer;
  let fake: FakeGce;
  let cfg: TestConfig;
  let daemon: Daemon;
  const sshds: Sshd[] = [];
  const vms: BootedVm[] = [];

  beforeAll(async () => {
    peer = await startApiPeer();
    fake = await FakeGce.start({ project: "arvados-e2e", addressPrefix: "127.0.4" });
    const sshPort = await freePort();
    fake.onInsert = async (inst) => {
      const vm = await bootFakeVm(inst);
      vms.push(vm);
      sshds.push(
        await startSshd({
          host: vm.address,
          runDir: vm.runDir,
          authorizedKeys: vm.sshKey === undefined ? [] : [vm.sshKey.publicKey],
          extraConfig: [`Port ${sshPort}`],
        }),
      );
    };
    cfg = await configFor(peer, {
      containers: { RuntimeEngine: "process" },
      cloudVMs: {
        Driver: "gce",
        ImageID: "arvados-compute-1",
        SSHPort: String(sshPort),
        BootProbeCommand: "test -s /var/run/arvados-instance-secret",
        DeployRunnerBinary: runnerBundlePath(),
        ResourceTags: { Owner: "ops" },
        TimeoutBooting: "30s",
        TimeoutProbe: "20s",
        DriverParameters: {
          Credentials: JSON.stringify(fake.newServiceAccountKey()),
          Zone: ZONE,
          Endpoint: fake.endpoint,
          AdminUsername: "root",
          Labels: { cluster: "zzzzz" },
        },
      },
      instanceTypes: {
        e2s2: {
          ProviderType: "e2-standard-2",
          VCPUs: 2,
          RAM: "2GiB",
          IncludedScratch: "10GB",
          Price: 0.067,
        },
      },
    });
    daemon = startDaemon(cfg.path);
    // A busy machine may take a while to start a Node daemon.
    await waitListening(daemon, 60_000);
  });

  afterAll(async () => {
    // DISPATCH_E2E_KEEP=DIR keeps the daemon's log there.
    const keep = process.env["DISPATCH_E2E_KEEP"];
    if (keep !== undefined && daemon !== undefined) {
      writeFileSync(path.join(keep, "daemon-gce.log"), daemon.stderr());
    }
    if (daemon !== undefined && daemon.child.exitCode === null) await daemon.stop();
    await Promise.all(sshds.map((s) => s.stop()));
    await Promise.all(vms.map((v) => v.remove()));
    await fake?.close();
    await stopStack({ peer, cfg });
  });

  let vm: FakeInstance;

  it("creates a tagged VM and runs a container on it to Complete", async () => {
    const uuid = await submit(peer, ["sh", "-c", "echo hello from gce"], {
      // What the bundled runner can run: an image by name (not from Keep), a tmp output.
      container_image: "arvados/jobs",
      runtime_constraints: { vcpus: 1, ram: 64 << 20 },
      mounts: { "/out": { kind: "tmp", capacity: 1 << 20 } },
      output_path: "/out",
      cwd: "/out",
    });
    await vi.waitFor(
      async () => {
        const c = await peer.client.containers.get(uuid);
        expect(c).toMatchObject({ state: "Complete", exit_code: 0 });
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(await logLines(peer.client, uuid, "stdout")).toEqual(["hello from gce"]);

    const created = fake.instances(ZONE);
    expect(created).toHaveLength(1);
    vm = created[0]!;
    // The instance set is the MD5 of the SystemRootToken; its label is that value.
    const setId = createHash("md5").update(peer.token).digest("hex");
    expect(vm.labels).toEqual({ cluster: "zzzzz", arvados_instance_set: setId });
    const meta = Object.fromEntries(vm.metadata.items.map((i) => [i.key, i.value]));
    expect(meta).toMatchObject({
      ArvadosInstanceSetID: setId,
      ArvadosInstanceType: "e2s2",
      ArvadosIdleBehavior: "run",
      ArvadosInstanceSecret: expect.stringMatching(/^[0-9a-f]{40}$/),
      Owner: "ops",
      "ssh-keys": expect.stringMatching(/^root:ssh-ed25519 /),
    });
    expect(meta["startup-script"]).toBe(
      `#!/bin/sh\numask 0177 && echo -n "${meta["ArvadosInstanceSecret"]}" >/var/run/arvados-instance-secret\n\n`,
    );
    // The host was proven by the secret over the connection sshd accepted.
    expect(sshds.map((s) => s.acceptedLogins() >= 1)).toEqual([true]);
    const metrics = await mgmt(cfg.url, "metrics");
    expect(metrics.body).toContain(
      `arvados_dispatchcloud_gce_instance_starts_total{zone="${ZONE}",success="1"} 1`,
    );
  }, 90_000);

  it("holds the idle VM through its metadata, then drains it: GCE deletes it", async () => {
    const id = `${ZONE}/${vm.name}`;
    const set = async (behavior: "hold" | "drain") =>
      (
        await mgmt(
          cfg.url,
          `arvados/v1/dispatch/instances/${behavior}?instance_id=${encodeURIComponent(id)}`,
          { method: "POST" },
        )
      ).status;
    expect(await set("hold")).toBe(200);
    await vi.waitFor(
      () => {
        const items = fake.instance(ZONE, vm.name)?.metadata.items ?? [];
        expect(items.find((i) => i.key === "ArvadosIdleBehavior")?.value).toBe("hold");
        // Tag saves keep what GCE acts on.
        expect(items.map((i) => i.key)).toEqual(
          expect.arrayContaining(["startup-script", "ssh-keys"]),
        );
      },
      { timeout: 20_000, interval: 200 },
    );
    // Held, the idle VM outlives TimeoutIdle (1s).
    expect((await instances(cfg.url)).map((i) => i.instance)).toEqual([id]);

    expect(await set("drain")).toBe(200);
    await vi.waitFor(
      async () => {
        expect(fake.deleted).toEqual([id]);
        expect(await instances(cfg.url)).toEqual([]);
      },
      { timeout: 30_000, interval: 200 },
    );
    expect(await daemon.stop()).toBe(0);
    expect(daemon.stderr()).not.toContain("PRIVATE KEY");
  }, 60_000);
});
