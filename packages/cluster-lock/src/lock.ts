import type { Clock, Logger } from "@dispatch-cloud/arvados-types";
import { Client } from "pg";
import { clientConfig, describeServer, type ConnectionSettings } from "./connection.js";

/** Arvados's advisory lock key for "a dispatcher is running" (lib/controller/dblock). */
export const DISPATCH_LOCK_KEY = 10005;
/** How often Arvados retries a held lock; also how often we check a held one is still ours. */
export const RETRY_MS = 5000;

export interface ClusterLockOptions {
  readonly settings: ConnectionSettings;
  readonly logger: Logger;
  readonly clock: Clock;
  /**
   * Our `application_name` on the lock connection (see `lockApplicationName`): another of our
   * dispatchers waiting for the lock reads it to say which process on which host holds it.
   */
  readonly applicationName: string;
  readonly key?: number;
  /** Between attempts while another session holds the lock, and between liveness checks. */
  readonly retryMs?: number;
  /** How long one query may take before the connection counts as dead. */
  readonly queryTimeoutMs?: number;
  /**
   * Told why we wait (the line just logged: who holds the lock, or why the database cannot be
   * reached) each time that changes, e.g. to report a standby dispatcher's status to systemd.
   */
  readonly onWaiting?: (reason: string) => void;
}

/** Who holds the lock, as PostgreSQL sees the holding session. */
export interface LockHolder {
  /** The holder's OS process and host when it is one of ours, else null. */
  readonly process: { readonly pid: number; readonly host: string } | null;
  /** The holding session's server process id. */
  readonly backendPid: number;
  /** Client address:port of the holding session ("local socket" for a Unix socket). */
  readonly client: string;
  /** When the holding session connected (it locks right after connecting). */
  readonly since: Date;
}

const APP = "arvados-dispatch-cloud";

/** `application_name` for our lock connection; PostgreSQL keeps the first 63 bytes. */
export function lockApplicationName(pid: number, host: string): string {
  return `${APP} pid=${pid} host=${host}`.slice(0, 63);
}

function parseApplicationName(name: string): LockHolder["process"] {
  const m = /^arvados-dispatch-cloud pid=(\d+) host=(\S+)$/.exec(name);
  return m === null ? null : { pid: Number(m[1]), host: m[2]! };
}

/** The one line an operator reads while we wait. */
export function describeHolder(h: LockHolder): string {
  const since = h.since.toISOString();
  return h.process !== null
    ? `pid ${h.process.pid} on host ${h.process.host} since ${since}`
    : `another process (database session pid ${h.backendPid}, client ${h.client}) since ${since}`;
}

const HOLDER_SQL = `
  SELECT a.pid, host(a.client_addr) AS addr, a.client_port AS port,
         a.application_name AS app, a.backend_start AS since
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE l.locktype = 'advisory' AND l.granted
     AND l.classid = 0 AND l.objid = $1::bigint::oid AND l.objsubid = 1
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   LIMIT 1`;

interface HolderRow {
  pid: number;
  addr: string | null;
  port: number | null;
  app: string | null;
  since: Date | null;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Arvados's cluster-wide "one dispatcher" lock: a PostgreSQL session-level advisory lock on a
 * dedicated connection, tried every few seconds until it is ours. While held, the connection
 * is checked every retry period and watched for errors: losing it means the server has dropped
 * the lock, and the listeners given to `acquire` are told at once.
 *
 * Differs from Arvados's dispatcher, which never re-checks the lock once it has it; its other
 * lock users (trash sweep, keep-balance) check it as we do.
 */
export class ClusterLock {
  readonly #o: Required<Omit<ClusterLockOptions, "settings" | "logger" | "clock" | "onWaiting">> &
    Pick<ClusterLockOptions, "settings" | "logger" | "clock" | "onWaiting">;
  #client: Client | null = null;
  #watch: AbortController | null = null;
  #lastWaitLine = "";

  constructor(options: ClusterLockOptions) {
    this.#o = {
      key: DISPATCH_LOCK_KEY,
      retryMs: RETRY_MS,
      queryTimeoutMs: 30_000,
      ...options,
    };
  }

  get held(): boolean {
    return this.#client !== null;
  }

  /**
   * Tries until the lock is ours (true) or `signal` aborts (false). `onLost` is called once if
   * the lock is lost after that; call `acquire` again to get it back.
   */
  async acquire(onLost: (reason: string) => void, signal?: AbortSignal): Promise<boolean> {
    const { logger, clock, key, retryMs } = this.#o;
    const server = describeServer(this.#o.settings);
    for (;;) {
      if (signal?.aborted) return false;
      try {
        if (await this.#attempt(onLost, signal)) {
          this.#lastWaitLine = "";
          logger.info({ ID: key, Server: server }, `acquired the cluster lock ${key}`);
          return true;
        }
      } catch (err) {
        if (signal?.aborted) return false;
        const line = `cannot take the cluster lock ${key} on ${server}: ${errorText(err)}`;
        if (line !== this.#lastWaitLine) {
          this.#lastWaitLine = line;
          logger.warn({ ID: key, Server: server, error: errorText(err) }, line);
          this.#o.onWaiting?.(line);
        }
      }
      try {
        await clock.sleep(retryMs, signal);
      } catch {
        return false;
      }
    }
  }

  /** One try on a new connection: true if the lock is now ours; throws on a connection error. */
  async #attempt(onLost: (reason: string) => void, signal?: AbortSignal): Promise<boolean> {
    const client = new Client({
      ...(await clientConfig(this.#o.settings, this.#o.applicationName)),
      query_timeout: this.#o.queryTimeoutMs,
    });
    // An idle client reports a broken connection as an error event; never let it go unheard.
    client.on("error", () => undefined);
    const onAbort = (): void => void client.end().catch(() => undefined);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await client.connect();
      const r = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock($1) AS locked",
        [this.#o.key],
      );
      if (r.rows[0]?.locked === true) {
        this.#hold(client, onLost);
        return true;
      }
      this.#logHolder(await this.#holder(client));
      await client.end();
      return false;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Logs who holds the lock, once per holder (as Arvados does). */
  #logHolder(holder: LockHolder | null): void {
    const key = this.#o.key;
    const line =
      holder === null
        ? `waiting for lock ${key} held by another process`
        : `waiting for lock ${key} held by ${describeHolder(holder)}`;
    if (line === this.#lastWaitLine) return;
    this.#lastWaitLine = line;
    this.#o.logger.info(
      {
        ID: key,
        ...(holder === null
          ? {}
          : {
              DBClient: holder.client,
              HolderPID: holder.process?.pid ?? holder.backendPid,
              HolderHost: holder.process?.host ?? holder.client,
              Since: holder.since.toISOString(),
            }),
      },
      line,
    );
    this.#o.onWaiting?.(line);
  }

  /** Gives the lock back and closes its connection. Safe to call when not held. */
  async release(): Promise<void> {
    const client = this.#client;
    this.#stopWatching();
    if (client === null) return;
    try {
      await client.query("SELECT pg_advisory_unlock($1)", [this.#o.key]);
      this.#o.logger.info({ ID: this.#o.key }, `released the cluster lock ${this.#o.key}`);
    } catch (err) {
      // Closing the session below releases it anyway.
      this.#o.logger.info({ ID: this.#o.key, error: errorText(err) }, "error releasing the lock");
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async #holder(client: Client): Promise<LockHolder | null> {
    try {
      const r = await client.query<HolderRow>(HOLDER_SQL, [this.#o.key]);
      const row = r.rows[0];
      if (row === undefined) return null;
      return {
        process: parseApplicationName(row.app ?? ""),
        backendPid: row.pid,
        client: row.addr === null ? "local socket" : `${row.addr}:${row.port ?? 0}`,
        since: row.since ?? new Date(0),
      };
    } catch (err) {
      this.#o.logger.info({ error: errorText(err) }, "error getting other client info");
      return null;
    }
  }

  #hold(client: Client, onLost: (reason: string) => void): void {
    this.#client = client;
    const watch = new AbortController();
    this.#watch = watch;
    const lost = (reason: string): void => {
      if (watch.signal.aborted) return;
      this.#stopWatching();
      void client.end().catch(() => undefined);
      this.#o.logger.warn(
        { ID: this.#o.key, error: reason },
        `lost the cluster lock ${this.#o.key}: ${reason}`,
      );
      onLost(reason);
    };
    client.on("error", (err: Error) => lost(err.message));
    client.on("end", () => lost("the database connection closed"));
    void this.#check(client, watch.signal, lost);
  }

  /** Asks the server every retry period whether our session is alive (dblock's Check). */
  async #check(client: Client, signal: AbortSignal, lost: (r: string) => void): Promise<void> {
    for (;;) {
      try {
        await this.#o.clock.sleep(this.#o.retryMs, signal);
      } catch {
        return;
      }
      try {
        await client.query("SELECT 1");
        this.#o.logger.debug({ ID: this.#o.key }, "lock connection still alive");
      } catch (err) {
        lost(`database connection check failed: ${errorText(err)}`);
        return;
      }
    }
  }

  #stopWatching(): void {
    this.#watch?.abort();
    this.#watch = null;
    this.#client = null;
  }
}
