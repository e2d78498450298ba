// The admin CLI (instance list/hold/drain/run/kill) against the daemon, bad management requests,
// and the daemon's start-up refusals: all with the built CLI as child processes.
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  MANAGEMENT_TOKEN,
  configFor,
  instances,
  mgmt,
  runCli,
  startApiPeer,
  startDaemon,
  startStack,
  stopStack,
  submit,
  waitListening,
  type ApiPeer,
  type Daemon,
  type TestConfig,
} from "./harness.js";

async function cli(args: string[], env: Record<string, string> = {}) {
  return runCli(args, env).output;
}

describe("admin CLI and management API", () => {
  let peer: ApiPeer, cfg: TestConfig, daemon: Daemon;
  beforeAll(async () => {
    ({ peer, cfg, daemon } = await startStack({
      // Long enough for the CLI (a node process each) to see it running, on a busy machine too.
      driverParameters: { ContainerRunTime: "15s", NoSuchKnob: 1 },
      env: { ARVADOS_API_TOKEN: "ignored-by-the-daemon" },
    }));
  });
  afterAll(() => stopStack({ daemon, peer, cfg }));

  it("warns about ignored client environment variables", () => {
    expect(
      daemon.logs().some((l) => l.level === "warning" && l.msg.includes("ARVADOS_API_TOKEN")),
    ).toBe(true);
    expect(daemon.stderr()).not.toContain("ignored-by-the-daemon");
  });

  it("warns at start about a DriverParameters key the driver never reads", () => {
    expect(daemon.logs().map((l) => l.msg)).toContain(
      "deprecated or unknown config entry: Clusters.zzzzz.Containers.CloudVMs.DriverParameters.NoSuchKnob (the stub driver does not read it)",
    );
  });

  it("lists, holds, drains, runs and kills instances", async () => {
    const base = cfg.url;
    const uuid = await submit(peer, ["echo", "Hello, Crunch!"]);
    let id = "";
    await vi.waitFor(
      async () => {
        const [inst] = await instances(base);
        expect(inst?.worker_state).toBe("running");
        id = inst?.instance ?? "";
      },
      { timeout: 20_000, interval: 50 },
    );

    const list = await cli(["instance", "list", "-header", "-config", cfg.path]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "instance\taddress\tstate\tidle-behavior\tconfig-type\tprovider-type\tprice\trunning-containers",
    );
    expect(lines[1]?.split("\t")).toEqual([
      id,
      expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      "running",
      "run",
      "small",
      "p.small",
      "0.100000",
      uuid,
    ]);

    // hold: the VM stays after its container is done, well past TimeoutIdle (1s).
    const hold = await cli(["instance", "hold", "--config", cfg.path, id]);
    expect(hold.code).toBe(0);
    expect(hold.stderr).toBe(`${id}: 200 OK (${new URL(base).host})\n`);
    await vi.waitFor(
      async () => {
        const [inst] = await instances(base);
        expect(inst?.idle_behavior).toBe("hold");
        expect(inst?.worker_state).toBe("idle");
        expect(Date.now() - Date.parse(inst?.last_busy ?? "")).toBeGreaterThan(2500);
      },
      { timeout: 40_000, interval: 100 },
    );
    expect((await peer.client.containers.get(uuid)).state).toBe("Complete");

    // run: back to normal, so the idle VM is shut down after TimeoutIdle.
    const run = await cli(["instance", "run", "--config", cfg.path, id]);
    expect(run.code).toBe(0);
    await vi.waitFor(async () => expect(await instances(base)).toEqual([]), {
      timeout: 20_000,
      interval: 100,
    });

    // drain: a VM running a container takes no new one and goes once it is idle.
    const second = await submit(peer, ["sleep", "1"]);
    let id2 = "";
    await vi.waitFor(
      async () => {
        const [inst] = await instances(base);
        expect(inst?.running_container_uuids).toEqual([second]);
        id2 = inst?.instance ?? "";
      },
      { timeout: 20_000, interval: 50 },
    );
    expect((await cli(["instance", "drain", "--config", cfg.path, id2])).code).toBe(0);
    await vi.waitFor(
      async () => {
        expect((await peer.client.containers.get(second)).state).toBe("Complete");
        expect((await instances(base)).map((i) => i.instance)).not.toContain(id2);
      },
      { timeout: 40_000, interval: 100 },
    );

    // kill: the VM goes now, with the reason in the log.
    const third = await submit(peer, ["sleep", "100"]);
    let id3 = "";
    await vi.waitFor(
      async () => {
        const [inst] = await instances(base);
        expect(inst?.running_container_uuids).toEqual([third]);
        id3 = inst?.instance ?? "";
      },
      { timeout: 20_000, interval: 50 },
    );
    const kill = await cli([
      "instance",
      "kill",
      "-reason",
      "testing kill",
      "--config",
      cfg.path,
      id3,
    ]);
    expect(kill.code).toBe(0);
    await vi.waitFor(
      () =>
        expect(
          daemon.logs().some((l) => JSON.stringify(l).includes("via management API: testing kill")),
        ).toBe(true),
      { timeout: 10_000, interval: 100 },
    );
    await vi.waitFor(
      async () => expect((await instances(base)).map((i) => i.instance)).not.toContain(id3),
      { timeout: 20_000, interval: 100 },
    );

    // Unknown ids: 404 and exit 1; no ids: usage error, exit 2.
    const missing = await cli(["instance", "hold", "--config", cfg.path, "no-such-instance"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`no-such-instance: 404 Not Found (${new URL(base).host})\n`);
    const none = await cli(["instance", "drain", "--config", cfg.path]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe("usage error: no instance IDs provided\n");
  }, 120_000);

  it("answers bad requests and tokens with the right codes and keeps running", async () => {
    const base = cfg.url;
    const get = (p: string, headers: Record<string, string> = {}) =>
      fetch(new URL(p, base), { headers, redirect: "manual" });
    expect((await get("arvados/v1/dispatch/instances")).status).toBe(401);
    expect(
      (await get("arvados/v1/dispatch/instances", { Authorization: "Bearer wrong" })).status,
    ).toBe(403);
    expect((await get(`arvados/v1/dispatch/instances?api_token=${MANAGEMENT_TOKEN}`)).status).toBe(
      200,
    );
    expect((await get("metrics", { Authorization: "Bearer wrong" })).status).toBe(403);
    expect((await mgmt(base, "arvados/v1/dispatch/nothing")).status).toBe(404);
    expect((await mgmt(base, "arvados/v1/dispatch/instances/hold", { method: "GET" })).status).toBe(
      405,
    );
    const noId = await mgmt(base, "arvados/v1/dispatch/instances/hold", { method: "POST" });
    expect(noId.status).toBe(400);
    expect(noId.json()).toEqual({ errors: ["instance_id parameter not provided"] });
    const noCtr = await mgmt(
      base,
      "arvados/v1/dispatch/container?container_uuid=zzzzz-dz642-000000000000000",
    );
    expect(noCtr.status).toBe(404);
    const killNone = await mgmt(base, "arvados/v1/dispatch/containers/kill", { method: "POST" });
    expect(killNone.status).toBe(400);
    const garbage = await mgmt(base, "arvados/v1/dispatch/instances/kill", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "%%%=&&instance_id=%zz",
    });
    expect([400, 404]).toContain(garbage.status);
    const huge = await mgmt(base, "arvados/v1/dispatch/instances/kill", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `instance_id=${"x".repeat(2 << 20)}`,
    });
    expect(huge.status).toBeGreaterThanOrEqual(400);
    // The admin CLI's doubled slash is accepted (redirected to the clean path).
    const dbl = await get("/arvados//v1/dispatch/instances", {
      Authorization: `Bearer ${MANAGEMENT_TOKEN}`,
    });
    expect([200, 301]).toContain(dbl.status);
    const ping = await fetch(new URL("_health/ping", base), {
      headers: { Authorization: `Bearer ${MANAGEMENT_TOKEN}` },
    });
    expect(await ping.json()).toEqual({ health: "OK" });
    expect(daemon.child.exitCode).toBeNull();
  });
});

describe("daemon start-up", () => {
  let peer: ApiPeer;
  beforeAll(async () => {
    peer = await startApiPeer();
  });
  afterAll(async () => {
    await peer?.stop();
  });

  it("refuses a second dispatcher for the same InstanceSetID, and stops cleanly on SIGTERM even with a half-sent request open", async () => {
    const a = await configFor(peer);
    const b = await configFor(peer);
    const first = startDaemon(a.path);
    try {
      await waitListening(first);
      const second = await cli(["run", "--config", b.path]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(
        `another dispatcher (process ${first.child.pid}) already runs for InstanceSetID`,
      );
      expect(second.stderr).not.toMatch(/\n\s+at /);
      // A client that never finishes its request headers must not hold up the stop.
      const url = new URL(a.url);
      const half = net.connect(Number(url.port), url.hostname);
      half.on("error", () => undefined);
      await new Promise<void>((r) => half.once("connect", () => r()));
      half.write("GET /_health/ping HTTP/1.1\r\nHost: x\r\n");
      const t0 = Date.now();
      expect(await first.stop()).toBe(0);
      // Without closing such connections the stop waits for Node's 60 s headers timeout.
      expect(Date.now() - t0).toBeLessThan(10_000);
      half.destroy();
    } finally {
      expect(await first.stop()).toBe(0);
      a.cleanup();
      b.cleanup();
    }
    expect(first.logs().map((l) => l.msg)).toContain("stopped");
  });

  it("exits 1 when no InternalURL fits this host, and on a bad config", async () => {
    const cfg = await configFor(peer, {
      cluster: {
        Services: {
          Controller: { ExternalURL: peer.url },
          DispatchCloud: { InternalURLs: { "http://192.0.2.1:9006/": {} } },
        },
      },
    });
    try {
      const r = await cli(["run", "-config", cfg.path]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'configuration does not enable the \\"arvados-dispatch-cloud\\" service on this host',
      );
      const env = await cli(["run", "-config", cfg.path], {
        ARVADOS_SERVICE_INTERNAL_URL: "http://127.0.0.1:1/",
      });
      expect(env.code).toBe(1);
      const missing = await cli(["run", "--config", `${cfg.dir}/nonexistent.yml`]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("nonexistent.yml");
      expect(missing.stderr).not.toMatch(/\n\s+at /);
    } finally {
      cfg.cleanup();
    }
  });
});
