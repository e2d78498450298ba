/*
 * A real PostgreSQL server for tests: Debian's `postgresql` package, run as the `postgres`
 * user with its own data and socket directory in a temp dir and a free port on 127.0.0.1.
 * `scripts/setup.sh --test-peers` installs the package.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "@dispatch-cloud/arvados-types/testing";
import { Client } from "pg";

export interface PostgresServer {
  readonly port: number;
  /** `PostgreSQL.Connection` keywords that reach it (TLS off: the test server has none). */
  readonly connection: Readonly<Record<string, string>>;
  /** A new client connected to it (the caller ends it). */
  connect(): Promise<Client>;
  stop(): Promise<void>;
}

function binDir(): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(path.join(base, v, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) {
    throw new Error(
      "PostgreSQL is not installed (run scripts/setup.sh --test-peers to install Debian's postgresql)",
    );
  }
  return path.join(base, versions[0], "bin");
}

/** Starts a throwaway server; resolves once it accepts connections. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(path.join(tmpdir(), "dispatch-pg-"));
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  chownSync(dir, uid, gid);
  const data = path.join(dir, "data");
  // initdb and postgres refuse to run as root; the postgres user owns the cluster.
  execFileSync(
    path.join(bin, "initdb"),
    ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
    { stdio: "pipe", uid, gid, cwd: dir },
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    path.join(bin, "postgres"),
    [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
    ],
    { stdio: ["ignore", "ignore", "pipe"], uid, gid, cwd: dir },
  );
  let log = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (d: Buffer) => {
      log += d.toString();
      if (log.includes("database system is ready to accept connections")) resolve();
    });
    child.once("exit", (code) =>
      reject(new Error(`postgres exited (${code}) before it was ready:\n${log}`)),
    );
  });
  const connection = {
    host: "127.0.0.1",
    port: String(port),
    user: "postgres",
    dbname: "postgres",
    sslmode: "disable",
  };
  return {
    port,
    connection,
    async connect() {
      const c = new Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
      // The server's stop ends every session; a test's client need not be around to hear it.
      c.on("error", () => undefined);
      await c.connect();
      return c;
    },
    async stop() {
      // SIGINT: PostgreSQL's fast shutdown (disconnects clients, no waiting for them).
      child.kill("SIGINT");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
