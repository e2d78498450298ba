// Chaos: a batch of short containers through the daemon (child process) on the stub cloud with
// deterministic faults — failing creates (each one an instance-type capacity error, so the type
// it was for is at capacity for a minute and the scheduler must use the next one), failing
// destroys, a quota limit, broken VMs, silent VMs, and the controller answering 503 for a
// stretch. Everything must end Complete or Cancelled with a
// reason, nothing may run twice, and every VM must be gone at the end.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { seedContainer } from "@dispatch-cloud/container-api/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  SMALL_TYPE,
  instances,
  mgmt,
  startStack,
  stopStack,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

const N = 200;

describe("chaos", () => {
  let peer: ApiPeer, cfg: TestConfig, daemon: Daemon;
  beforeAll(async () => {
    ({ peer, cfg, daemon } = await startStack({
      driverParameters: {
        ContainerRunTime: "200ms",
        // The stub has no "this type is always at capacity" knob: every failed create says
        // its instance type is at capacity, which holds that type for the pool's minute.
        FailCreateEvery: 10,
        FailCreateKind: "capacity-instance-type",
        FailDestroyEvery: 3,
        BrokenEvery: 4,
        BrokenAfter: "300ms",
        // Silent VMs stop answering mid-run; the pool bounds each probe command by
        // TimeoutProbe, so it gives up on them in seconds.
        SilentEvery: 3,
        SilentAfter: "500ms",
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
      // Every container fits every type, all within MaximumPriceFactor (1.5) of the cheapest; the
      // cheapest not at capacity is used.
      instanceTypes: {
        small: SMALL_TYPE,
        medium: {
          ProviderType: "q.medium",
          VCPUs: 2,
          RAM: "4GiB",
          IncludedScratch: "100GB",
          Price: 0.12,
        },
        large: {
          ProviderType: "r.large",
          VCPUs: 4,
          RAM: "8GiB",
          IncludedScratch: "100GB",
          Price: 0.14,
        },
      },
    }));
  });

  afterAll(async () => {
    const keep = process.env["DISPATCH_E2E_KEEP"];
    if (keep !== undefined && daemon !== undefined) {
      writeFileSync(path.join(keep, "chaos-daemon.log"), daemon.stderr());
    }
    await stopStack({ daemon, peer, cfg });
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
    // Read the controller's records directly, not over HTTP: the injected 503s below are for the
    // dispatcher, and must not be used up (or failed) by the test's own reads.
    const admin = peer.api.store.authenticate(peer.token);
    if (admin === null) throw new Error("the system root token does not authenticate");
    const refresh = (): Promise<string[]> => {
      for (const u of uuids) {
        const c = peer.api.store.getContainer(admin, u, ["uuid", "state", "runtime_status"]);
        final.set(u, { state: String(c["state"]), runtime_status: c["runtime_status"] });
      }
      return Promise.resolve(
        uuids.filter((u) => !["Complete", "Cancelled"].includes(final.get(u)?.state ?? "")),
      );
    };
    // Nine tenths through, the controller fails polls and locks for a stretch. (After a 503
    // the scheduler runs one container at a time for a minute, as Arvados does, so the stretch
    // comes late to keep the test short.)
    await vi.waitFor(async () => expect((await refresh()).length).toBeLessThan(N / 10), {
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
      // After the 503s the last containers run nearly one at a time (tens of seconds; more on a
      // busy machine).
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
    const count = (msg: string): number => logs.filter((l) => l.msg.startsWith(msg)).length;
    // Several VMs went silent (every 3rd the stub created) and several broke (every 4th); the
    // pool gave up on them (probes timed out, broken reported), and below they are all gone.
    // How many VMs the run needs depends on how fast it reuses them, so the counts are floors.
    const created = logs
      .filter((l) => l.msg === "stub cloud created instance")
      .map((l) => Number(/(\d+)$/.exec(String(l["Instance"]))?.[1]));
    expect(
      created.filter((n) => n % 3 === 0).length,
      `silent VMs among ${created.length} created`,
    ).toBeGreaterThanOrEqual(3);
    const timedOut = new Set(
      logs
        .filter((l) => l.msg === "probe failed" && /timed out/.test(String(l["error"])))
        .map((l) => l["Instance"]),
    );
    expect(timedOut.size, "silent VMs given up on").toBeGreaterThanOrEqual(2);
    expect(count("probe reported broken instance"), "broken VMs").toBeGreaterThanOrEqual(2);
    // A type at capacity made the scheduler create a dearer one.
    expect(count("capacity error -- pausing instance create calls")).toBeGreaterThanOrEqual(1);
    const createdTypes = new Set(
      logs.filter((l) => l.msg === "creating new instance").map((l) => l["InstanceType"]),
    );
    expect(createdTypes.has("medium")).toBe(true);
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
  }, 330_000);
});
