// The install guide's "confirm working installation" check (dispatcher spec §7) against the
// built daemon as a child process, on the stub cloud, with the container API as the controller.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  MANAGEMENT_TOKEN,
  instances,
  mgmt,
  startStack,
  stopStack,
  submit,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

interface QueueEntJson {
  container: { uuid: string; state: string; priority: number; scheduling_parameters: unknown };
  instance_types: { ProviderType: string; Price: number; Name?: string }[];
  instance_resources: { VCPUs: number; RAM: number };
  scheduling_status: string;
}

describe("install check: echo Hello, Crunch!", () => {
  let peer: ApiPeer, cfg: TestConfig, daemon: Daemon;
  beforeAll(async () => {
    ({ peer, cfg, daemon } = await startStack({
      // Long enough to watch it run through the management API.
      driverParameters: { ContainerRunTime: "1500ms" },
      // Debug lines carry the most fields: the secrets check below covers them too.
      cluster: { SystemLogs: { Format: "json", LogLevel: "debug" } },
    }));
  });
  afterAll(() => stopStack({ daemon, peer, cfg }));

  it("runs the container to Complete, exit 0, showing it in /containers and /instances", async () => {
    const uuid = await submit(peer, ["echo", "Hello, Crunch!"]);
    const base = cfg.url;

    // Locked by the dispatcher (lock_count 1) before any instance exists.
    await vi.waitFor(
      async () => {
        const c = await peer.client.containers.get(uuid);
        expect(["Locked", "Running", "Complete"]).toContain(c.state);
        expect(c.lock_count).toBe(1);
      },
      { timeout: 10_000, interval: 50 },
    );

    // While it runs, both views show it.
    const seen = new Set<string>();
    await vi.waitFor(
      async () => {
        const r = await mgmt(base, "arvados/v1/dispatch/containers");
        expect(r.status).toBe(200);
        const items = (r.json() as { items: QueueEntJson[] | null }).items ?? [];
        const ent = items.find((e) => e.container.uuid === uuid);
        if (ent !== undefined) seen.add(ent.container.state);
        expect(ent?.container.state).toBe("Running");
        expect(ent?.container.priority).toBeGreaterThan(0);
        expect(ent?.instance_types[0]?.ProviderType).toBe("p.small");
        expect(ent?.instance_types[0]?.Price).toBe(0.1);
        expect(ent?.instance_types[0]).not.toHaveProperty("Name");
        expect(ent?.instance_resources.VCPUs).toBe(1);
        expect(ent?.scheduling_status).toBe("");
        const insts = await instances(base);
        expect(insts).toHaveLength(1);
        expect(insts[0]).toMatchObject({
          worker_state: "running",
          idle_behavior: "run",
          arvados_instance_type: "small",
          provider_instance_type: "p.small",
          price: 0.1,
          running_container_uuids: [uuid],
        });
        expect(insts[0]?.instance).not.toBe("");
      },
      { timeout: 15_000, interval: 50 },
    );

    await vi.waitFor(
      async () => {
        const c = await peer.client.containers.get(uuid);
        expect(c.state).toBe("Complete");
        expect(c.exit_code).toBe(0);
      },
      { timeout: 15_000, interval: 100 },
    );

    // The status sequence the log shows, with Arvados's messages and field names.
    const logs = daemon.logs();
    const forCtr = logs.filter((l) => l["ContainerUUID"] === uuid).map((l) => l.msg);
    expect(forCtr).toContain("adding container to queue");
    expect(forCtr).toContain("creating new instance");
    expect(forCtr).toContain("crunch-run process started");
    await vi.waitFor(
      () =>
        expect(
          daemon
            .logs()
            .some(
              (l) => l["ContainerUUID"] === uuid && /dropping( container)? from queue/.test(l.msg),
            ),
        ).toBe(true),
      { timeout: 10_000, interval: 100 },
    );

    // After TimeoutIdle the idle VM is shut down and disappears.
    await vi.waitFor(async () => expect(await instances(base)).toHaveLength(0), {
      timeout: 15_000,
      interval: 100,
    });

    // Metrics are served with the token, with Arvados's names.
    const metrics = await mgmt(base, "metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(
      /arvados_dispatchcloud_driver_operations\{operation="Create",error="0"\} 1/,
    );
    expect(metrics.body).toContain('arvados_version_running{version="0.1.0"} 1');

    // No secret anywhere in the log.
    const raw = daemon.stderr();
    expect(raw).not.toContain(peer.token);
    expect(raw).not.toContain(MANAGEMENT_TOKEN);
    expect(raw).not.toContain(cfg.privateKey.split("\n")[1]);
  });
});
