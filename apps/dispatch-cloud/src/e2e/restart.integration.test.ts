// Restart: a dispatcher stops while containers run and a new one takes over the same cloud. The
// stub cloud lives in the dispatcher's process (its fake VMs would die with a SIGKILLed child),
// so this runs two dispatchers in-process, one after the other, over one shared stub cloud.
import { seedContainer } from "@dispatch-cloud/container-api/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startDispatcher, type Dispatcher } from "../daemon/index.js";
import {
  loadForTest,
  sharedStubCloud,
  startPeerWithConfig,
  stopStack,
  type ApiPeer,
  type TestConfig,
} from "./harness.js";

const N = 12;

describe("restart", () => {
  let peer: ApiPeer;
  let cfg: TestConfig;
  const cloud = sharedStubCloud();
  const lines: string[] = [];

  beforeAll(async () => {
    ({ peer, cfg } = await startPeerWithConfig({
      driverParameters: { ContainerRunTime: "6s", SharedHostKey: true },
      cloudVMs: { DeployRunnerBinary: "", MaxInstances: N, MaxConcurrentInstanceCreateOps: 0 },
    }));
  });
  afterAll(async () => {
    await cloud.stop();
    await stopStack({ peer, cfg });
  });

  async function start(): Promise<Dispatcher> {
    const { config, logger } = await loadForTest(cfg.path, lines);
    return startDispatcher({ config, logger, drivers: cloud.drivers });
  }

  it("adopts running VMs and containers: all complete, none started twice, no VM leaked", async () => {
    const first = await start();
    const uuids = Array.from({ length: N }, () =>
      seedContainer(peer.api.store, {
        priority: 1,
        runtime_constraints: { vcpus: 1, ram: 64 << 20 },
      }),
    );
    /** The containers' records, in the controller's order. */
    const records = async () =>
      (
        await peer.client.containers.list({
          filters: [["uuid", "in", uuids]],
          select: ["uuid", "state"],
          limit: N,
        })
      ).items;
    await vi.waitFor(
      async () => {
        expect((await records()).filter((c) => c.state === "Running")).toHaveLength(N);
      },
      { timeout: 30_000, interval: 100 },
    );
    const vmsBefore = first.pool
      .instances()
      .map((i) => i.instance)
      .sort();
    expect(vmsBefore).toHaveLength(N);
    await first.stop();

    const second = await start();
    try {
      // The new dispatcher adopts every VM and finds every container on them.
      await vi.waitFor(
        () => {
          const views = second.pool.instances();
          expect(views.map((i) => i.instance).sort()).toEqual(vmsBefore);
        },
        { timeout: 10_000, interval: 50 },
      );
      await vi.waitFor(
        async () => {
          expect((await records()).map((c) => c.state)).toEqual(Array(N).fill("Complete"));
        },
        { timeout: 30_000, interval: 100 },
      );
      // Nobody started a container again.
      const running = new Map<string, number>();
      for (const u of peer.updates) {
        if (u.state === "Running") running.set(u.uuid, (running.get(u.uuid) ?? 0) + 1);
      }
      expect([...running.values()]).toEqual(Array(N).fill(1));
      const starts = lines.filter((l) => l.includes('"msg":"crunch-run process started"'));
      expect(starts).toHaveLength(N);
      // And every VM goes once idle.
      await vi.waitFor(async () => expect(await cloud.set()?.instances({})).toEqual([]), {
        timeout: 20_000,
        interval: 100,
      });
    } finally {
      await second.stop();
    }
  }, 90_000);
});
