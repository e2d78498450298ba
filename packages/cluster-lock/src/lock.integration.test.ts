import {
  ManualClock,
  recordingLogger,
  type LogEntry,
} from "@dispatch-cloud/cloud-driver-api/testing";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkConnection, type ConnectionSettings } from "./connection.js";
import { ClusterLock, DISPATCH_LOCK_KEY, RETRY_MS, lockApplicationName } from "./lock.js";
import { startPostgres, type PostgresServer } from "./testing/index.js";

let server: PostgresServer;
let settings: ConnectionSettings;
beforeAll(async () => {
  server = await startPostgres();
  const checked = checkConnection(server.connection, "PostgreSQL.Connection");
  if (checked.settings === null) throw new Error(checked.errors.join("\n"));
  settings = checked.settings;
}, 60_000);
afterAll(async () => server?.stop());

function newLock(clock: ManualClock, log: LogEntry[], pid: number): ClusterLock {
  return new ClusterLock({
    settings,
    clock,
    logger: recordingLogger(log),
    applicationName: lockApplicationName(pid, "host-a"),
  });
}

/** A session of "another process" (e.g. Arvados's Go dispatcher) holding the lock. */
async function holdAsAnother(): Promise<pg.Client> {
  const c = await server.connect();
  const r = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
    DISPATCH_LOCK_KEY,
  ]);
  expect(r.rows[0]?.ok).toBe(true);
  return c;
}

async function lockHolders(): Promise<number[]> {
  const c = await server.connect();
  try {
    const r = await c.query<{ pid: number }>(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted",
      [DISPATCH_LOCK_KEY],
    );
    return r.rows.map((row) => row.pid);
  } finally {
    await c.end();
  }
}

describe("ClusterLock against PostgreSQL", () => {
  it("waits while another session holds 10005, says who, and takes it one retry period after release", async () => {
    const other = await holdAsAnother();
    const otherPid = (await other.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]
      ?.pid;
    const clock = new ManualClock(1_000_000);
    const log: LogEntry[] = [];
    const lock = newLock(clock, log, 4242);
    let got: boolean | undefined;
    const acquiring = lock.acquire(() => undefined).then((r) => (got = r));

    await clock.waitForSleepers(1);
    expect(got).toBeUndefined();
    expect(lock.held).toBe(false);
    const waiting = log.filter((l) => l.msg.startsWith("waiting for lock"));
    expect(waiting).toHaveLength(1);
    expect(waiting[0]?.msg).toMatch(
      new RegExp(
        `^waiting for lock 10005 held by another process \\(database session pid ${otherPid}, client 127\\.0\\.0\\.1:\\d+\\) since \\d{4}-`,
      ),
    );
    expect(waiting[0]?.fields["DBClient"]).toMatch(/^127\.0\.0\.1:\d+$/);

    // Still held: the next attempt waits again and logs nothing new for the same holder.
    await clock.advance(RETRY_MS);
    await clock.waitForSleepers(1);
    expect(got).toBeUndefined();
    expect(log.filter((l) => l.msg.startsWith("waiting for lock"))).toHaveLength(1);

    await other.end();
    await clock.advance(RETRY_MS);
    await acquiring;
    expect(got).toBe(true);
    expect(lock.held).toBe(true);
    expect(await lockHolders()).toHaveLength(1);
    await lock.release();
    expect(await lockHolders()).toEqual([]);
  });

  it("two of ours: the second names the first's pid and host, and takes over after release", async () => {
    const clock = new ManualClock(0);
    const log: LogEntry[] = [];
    const first = newLock(clock, log, 1111);
    expect(await first.acquire(() => undefined)).toBe(true);
    const second = newLock(clock, log, 2222);
    const abort = new AbortController();
    let got: boolean | undefined;
    const acquiring = second.acquire(() => undefined, abort.signal).then((r) => (got = r));
    await clock.waitForSleepers(2); // the first's liveness check and the second's retry
    expect(got).toBeUndefined();
    expect(log.map((l) => l.msg)).toContainEqual(
      expect.stringMatching(/^waiting for lock 10005 held by pid 1111 on host host-a since /),
    );

    await first.release();
    await clock.advance(RETRY_MS);
    await acquiring;
    expect(got).toBe(true);
    await second.release();
  });

  it("losing the connection loses the lock at once; acquire gets it back", async () => {
    const clock = new ManualClock(0);
    const log: LogEntry[] = [];
    const lock = newLock(clock, log, 3333);
    const lost: string[] = [];
    let onGone = (): void => undefined;
    const gone = new Promise<void>((resolve) => (onGone = resolve));
    const onLost = (reason: string): void => {
      lost.push(reason);
      onGone();
    };
    expect(await lock.acquire(onLost)).toBe(true);
    const [backend] = await lockHolders();

    const admin = await server.connect();
    await admin.query("SELECT pg_terminate_backend($1)", [backend]);
    await gone;
    expect(lock.held).toBe(false);
    expect(lost).toHaveLength(1);
    expect(log.map((l) => l.msg)).toContainEqual(
      expect.stringMatching(/^lost the cluster lock 10005: /),
    );

    expect(await lock.acquire(onLost)).toBe(true);
    expect(await lockHolders()).toHaveLength(1);
    await lock.release();
    await admin.end();
    expect(lost).toHaveLength(1);
  });

  it("gives up waiting when aborted", async () => {
    const other = await holdAsAnother();
    const clock = new ManualClock(0);
    const lock = newLock(clock, [], 1);
    const abort = new AbortController();
    const acquiring = lock.acquire(() => undefined, abort.signal);
    await clock.waitForSleepers(1);
    abort.abort();
    expect(await acquiring).toBe(false);
    await other.end();
  });

  it("keeps trying, and says why once, when it cannot connect (here: a missing CA file)", async () => {
    const clock = new ManualClock(0);
    const log: LogEntry[] = [];
    const lock = new ClusterLock({
      settings: { ...settings, sslMode: "verify-full", sslRootCert: "/nonexistent/ca.pem" },
      clock,
      logger: recordingLogger(log),
      applicationName: "t",
    });
    const abort = new AbortController();
    const acquiring = lock.acquire(() => undefined, abort.signal);
    await clock.waitForSleepers(1);
    await clock.advance(RETRY_MS);
    await clock.waitForSleepers(1);
    expect(log.map((l) => l.msg)).toEqual([
      expect.stringMatching(
        /^cannot take the cluster lock 10005 on 127\.0\.0\.1:\d+: ENOENT: .*\/nonexistent\/ca\.pem/,
      ),
    ]);
    abort.abort();
    expect(await acquiring).toBe(false);
  });
});
