// The cluster-wide dispatch lock against a real PostgreSQL server: Arvados's advisory lock
// 10005 keeps a dispatcher waiting, and not serving, while another session holds it; one of two
// dispatchers runs at a time; losing the database connection stops dispatching until the lock
// is ours again. Dispatchers run in-process over one stub cloud; the lock's time is a manual
// clock, so "one retry period" is exactly that.
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { ManualClock } from "@dispatch-cloud/cloud-driver-api/testing";
import { DISPATCH_LOCK_KEY, RETRY_MS } from "@dispatch-cloud/cluster-lock";
import { startPostgres, type PostgresServer } from "@dispatch-cloud/cluster-lock/testing";
import { seedContainer } from "@dispatch-cloud/container-api/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startDispatcher, type Dispatcher } from "../daemon/index.js";
import {
  CLUSTER,
  freePort,
  loadForTest,
  mgmt,
  sharedStubCloud,
  startApiPeer,
  writeConfig,
  type ApiPeer,
  type TestConfig,
} from "./harness.js";

describe("cluster-wide dispatch lock", () => {
  let peer: ApiPeer;
  let pg: PostgresServer;
  let cfg: TestConfig;
  let urlB = "";
  const cloud = sharedStubCloud();
  const running: Dispatcher[] = [];

  beforeAll(async () => {
    [peer, pg] = await Promise.all([startApiPeer(), startPostgres()]);
    cfg = writeConfig({
      controllerUrl: peer.url,
      token: peer.token,
      port: await freePort(),
      cloudVMs: { DeployRunnerBinary: "" },
      cluster: { PostgreSQL: { Connection: pg.connection } },
    });
    // A second InternalURL on this host, for the second dispatcher.
    urlB = `http://127.0.0.1:${await freePort()}/`;
    const doc = JSON.parse(readFileSync(cfg.path, "utf8")) as {
      Clusters: Record<string, { Services: { DispatchCloud: { InternalURLs: object } } }>;
    };
    doc.Clusters[CLUSTER].Services.DispatchCloud.InternalURLs = { [cfg.url]: {}, [urlB]: {} };
    writeFileSync(cfg.path, JSON.stringify(doc));
  }, 60_000);

  afterAll(async () => {
    for (const d of running) await d.stop();
    await cloud.stop();
    await pg?.stop();
    await peer?.stop();
    cfg?.cleanup();
  });

  async function start(
    internalUrl: string,
    clock: ManualClock,
    lines: string[],
    signal?: AbortSignal,
  ) {
    const { config, logger } = await loadForTest(cfg.path, lines);
    const d = await startDispatcher({
      config,
      logger,
      drivers: cloud.drivers,
      serviceInternalUrl: internalUrl,
      lock: { clock },
      ...(signal === undefined ? {} : { signal }),
    });
    running.push(d);
    return d;
  }

  async function holdLock() {
    const c = await pg.connect();
    await c.query("SELECT pg_advisory_lock($1)", [DISPATCH_LOCK_KEY]);
    return c;
  }

  async function state(uuid: string): Promise<string | undefined> {
    const page = await peer.client.containers.list({
      filters: [["uuid", "in", [uuid]]],
      select: ["uuid", "state"],
    });
    return page.items[0]?.state;
  }

  const refused = (url: string) =>
    fetch(new URL("_health/ping", url)).then(
      () => "answered",
      () => "refused",
    );

  const seed = () =>
    seedContainer(peer.api.store, { priority: 1, runtime_constraints: { vcpus: 1, ram: 1 << 26 } });

  const linesA: string[] = [];
  const clockA = new ManualClock(Date.now());
  let a: Dispatcher | undefined;

  it("waits without serving or dispatching while another session holds 10005; starts one retry period after it is released", async () => {
    const other = await holdLock();
    const uuid = seed();
    const starting = start(cfg.url, clockA, linesA).then((d) => (a = d));
    await clockA.waitForSleepers(1);

    expect(a).toBeUndefined();
    expect(await refused(cfg.url)).toBe("refused");
    expect(linesA.join("\n")).toMatch(
      /"msg":"waiting for lock 10005 held by another process \(database session pid \d+, client 127\.0\.0\.1:\d+\) since \d{4}-/,
    );
    expect(await cloud.set()?.instances({})).toEqual([]);
    expect(await state(uuid)).toBe("Queued");

    await other.end();
    await clockA.advance(RETRY_MS);
    await starting;
    expect(a?.dispatching).toBe(true);
    expect((await mgmt(cfg.url, "_health/ping")).body).toBe('{"health":"OK"}\n');
    await vi.waitFor(async () => expect(await state(uuid)).toBe("Complete"), {
      timeout: 20_000,
      interval: 100,
    });
  }, 60_000);

  const linesB: string[] = [];
  const clockB = new ManualClock(Date.now());
  let b: Dispatcher | undefined;

  it("runs one of two dispatchers: the second names the first and takes over when it stops", async () => {
    const starting = start(urlB, clockB, linesB).then((d) => (b = d));
    await clockB.waitForSleepers(1);
    expect(b).toBeUndefined();
    expect(await refused(urlB)).toBe("refused");
    expect(linesB.join("\n")).toContain(
      `"msg":"waiting for lock 10005 held by pid ${process.pid} on host ${hostname()} since `,
    );

    await a?.stop();
    expect(await refused(cfg.url)).toBe("refused");
    await clockB.advance(RETRY_MS);
    await starting;
    expect(b?.dispatching).toBe(true);
    const uuid = seed();
    await vi.waitFor(async () => expect(await state(uuid)).toBe("Complete"), {
      timeout: 20_000,
      interval: 100,
    });
  }, 60_000);

  it("stops dispatching when its database connection is killed, and resumes once the lock is its again", async () => {
    const d = b!;
    const changed = (want: boolean) =>
      new Promise<void>((resolve) => {
        const off = d.onDispatchingChange(() => {
          if (d.dispatching === want) {
            off();
            resolve();
          }
        });
      });
    const admin = await pg.connect();
    const held = await admin.query<{ pid: number }>(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted",
      [DISPATCH_LOCK_KEY],
    );
    const paused = changed(false);
    await admin.query("SELECT pg_terminate_backend($1)", [held.rows[0]?.pid]);
    await paused;
    expect(linesB.join("\n")).toMatch(/"msg":"lost the cluster lock 10005: /);
    const health = await mgmt(urlB, "_health/ping");
    expect(health.json()).toMatchObject({ health: "ERROR" });
    expect(health.body).toContain("not dispatching: lost the dispatch lock");

    // Another session takes the lock meanwhile: nothing is dispatched here.
    const other = await holdLock();
    const uuid = seed();
    await clockB.advance(RETRY_MS);
    await clockB.waitForSleepers(1);
    expect(d.dispatching).toBe(false);
    expect(await state(uuid)).toBe("Queued");

    const resumed = changed(true);
    await other.end();
    await clockB.advance(RETRY_MS);
    await resumed;
    expect(linesB.join("\n")).toContain('"msg":"resumed dispatching');
    // The new session's metrics replace the old one's; the framework's stay.
    const metrics = (await mgmt(urlB, "metrics")).body;
    expect(metrics).toContain("\narvados_dispatchcloud_containers_running ");
    expect(metrics).toContain("\narvados_max_active_request_age_seconds ");
    await vi.waitFor(async () => expect(await state(uuid)).toBe("Complete"), {
      timeout: 20_000,
      interval: 100,
    });
    await admin.end();
  }, 60_000);

  it("gives up waiting for the lock when asked to stop, having served nothing", async () => {
    const clock = new ManualClock(Date.now());
    const stop = new AbortController();
    const starting = start(urlB, clock, [], stop.signal);
    await clock.waitForSleepers(1);
    stop.abort();
    await expect(starting).rejects.toThrow("stopped while waiting for the dispatch lock");
    expect(b?.dispatching).toBe(true);
  }, 60_000);
});
