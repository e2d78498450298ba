// Chaos: a batch of short containers through the daemon (child process) on the stub cloud with
// deterministic faults — failing creates and destroys, a quota limit, broken VMs, and
// the controller answering 503 for a stretch. Everything must end Complete or Cancelled with a
// reason, nothing may run twice, and every VM must be gone at the end.
import { seedContainer } from "@dispatch-cloud/container-api/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  freePort,
  instances,
  mgmt,
  startApiPeer,
  startDaemon,
  waitListening,
  writeConfig,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

const N = 60;

describe("chaos", () => {
  let peer: ApiPeer;
  let cfg: TestConfig;
  let daemon: Daemon;

  beforeAll(async () => {
    peer = await startApiPeer();
    cfg = writeConfig({
      controllerUrl: peer.url,
      token: peer.token,
      port: await freePort(),
      driverParameters: {
        ContainerRunTime: "200ms",
        FailCreateEvery: 5,
        FailDestroyEvery: 3,
        BrokenEvery: 4,
        BrokenAfter: "300ms",
        // Silent VMs are left out: the pool gives up on one only after its fixed 60 s
        // probe-command timeout, which would make this test minutes long.
        SharedHostKey: true,
      },
      // No runner upload: the stub's crunch-run is "on the image".
      cloudVMs: {
        DeployRunnerBinary: "",
        TimeoutProbe: "2s",
        TimeoutBooting: "5s",
        MaxConcurrentInstanceCreateOps: 0,
        // At most 8 VMs at once: the pool's own quota.
        MaxInstances: 8,
      },
    });
    daemon = startDaemon(cfg.path);
    await waitListening(daemon);
  });

  afterAll(async () => {
    await daemon?.stop();
    await peer?.stop();
    cfg?.cleanup();
  });

  it("finishes every container once, with reasons for cancels, and leaves no VM", async () => {
    const uuids: string[] = [];
    for (let i = 0; i < N; i++) {
      uuids.push(
        seedContainer(peer.api.store, {
          priority: 1 + (i % 7),
          runtime_constraints: { vcpus: 1, ram: 64 << 20 },
        }),
      );
    }

    const final = new Map<string, { state: string; runtime_status: unknown }>();
    const refresh = async (): Promise<string[]> => {
      for (let i = 0; i < uuids.length; i += 50) {
        const page = await peer.client.containers.list({
          filters: [["uuid", "in", uuids.slice(i, i + 50)]],
          select: ["uuid", "state", "runtime_status"],
          limit: 50,
        });
        for (const c of page.items) final.set(c.uuid, c);
      }
      return uuids.filter((u) => !["Complete", "Cancelled"].includes(final.get(u)?.state ?? ""));
    };
    // Two thirds through, the controller fails polls and locks for a stretch. (After a 503
    // the scheduler runs one container at a time for a minute, as Arvados does, so the stretch
    // comes late to keep the test short.)
    await vi.waitFor(async () => expect((await refresh()).length).toBeLessThan(N / 3), {
      timeout: 90_000,
      interval: 250,
    });
    peer.api.faults.add({
      method: "GET",
      pathIncludes: "/arvados/v1/containers",
      status: 503,
      times: 6,
    });
    peer.api.faults.add({ method: "POST", pathIncludes: "/lock", status: 503, times: 4 });
    await vi.waitFor(
      async () => {
        expect(await refresh()).toEqual([]);
      },
      // A silent VM costs the pool's fixed 60 s probe-command timeout before it is given up.
      { timeout: 150_000, interval: 500 },
    );

    // Every cancel has a reason: in runtime_status (the API's MaxDispatchAttempts) or in the
    // dispatcher's log.
    const logs = daemon.logs();
    for (const u of uuids) {
      const c = final.get(u);
      if (c?.state !== "Cancelled") continue;
      const rs = (c.runtime_status ?? {}) as { error?: string };
      const logged = logs.some((l) => l["ContainerUUID"] === u && /cancel/i.test(l.msg));
      expect(rs.error !== undefined || logged, `reason for cancelling ${u}`).toBe(true);
    }
    const complete = uuids.filter((u) => final.get(u)?.state === "Complete").length;
    expect(complete).toBeGreaterThan(N / 2);

    // Nothing ran twice: each container was set Running by crunch-run at most once.
    const runningPuts = new Map<string, number>();
    for (const u of peer.updates) {
      if (u.state === "Running") runningPuts.set(u.uuid, (runningPuts.get(u.uuid) ?? 0) + 1);
    }
    const twice = [...runningPuts].filter(([, n]) => n > 1);
    expect(twice).toEqual([]);

    // The faults really happened.
    expect(
      logs.some((l) => /error updating queue|503/.test(`${l.msg} ${String(l["error"])}`)),
    ).toBe(true);
    const metrics = (await mgmt(cfg.url, "metrics")).body;
    expect(metrics).toMatch(/driver_operations\{operation="Create",error="1"\} [1-9]/);

    // Once the queue is empty every VM is destroyed (failed destroys are retried).
    await vi.waitFor(async () => expect(await instances(cfg.url)).toEqual([]), {
      timeout: 60_000,
      interval: 250,
    });
    await vi.waitFor(
      async () => {
        const m = (await mgmt(cfg.url, "metrics")).body;
        expect(m).toMatch(/driver_operations\{operation="Destroy",error="1"\} [1-9]/);
      },
      { timeout: 10_000, interval: 250 },
    );
    expect(daemon.child.exitCode).toBeNull();
  }, 240_000);
});
