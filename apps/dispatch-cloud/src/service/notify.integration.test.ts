// systemd readiness against a real datagram listener in its own process (python3, which
// Debian's nodejs depends on), reading the sender's credentials as systemd does: READY=1 must
// come from the daemon's main process, and only once the management API answers.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { DISPATCH_LOCK_KEY } from "@dispatch-cloud/cluster-lock";
import { startPostgres } from "@dispatch-cloud/cluster-lock/testing";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MANAGEMENT_TOKEN, freePort, writeConfig, type TestConfig } from "../e2e/harness.js";

const root = path.resolve(import.meta.dirname, "../../../..");
const receiverScript = path.join(import.meta.dirname, "testdata/notify-receiver.py");
const isRoot = process.getuid?.() === 0;

interface Received {
  message: string;
  pid: number;
  uid: number;
  health: number | string | null;
}

beforeAll(() => {
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-b", "apps/dispatch-cloud"], {
    cwd: root,
    stdio: "pipe",
  });
});

/** Starts the listener and resolves with the first message it receives. */
async function startReceiver(address: string, healthUrl: string) {
  const child = spawn("/usr/bin/python3", [receiverScript, address, healthUrl, MANAGEMENT_TOKEN], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  expect(JSON.parse(String(first.value))).toEqual({ listening: address });
  return {
    child,
    next: async (): Promise<Received> => {
      const r = await iterator.next();
      if (r.done === true) throw new Error("the listener exited");
      return JSON.parse(r.value) as Received;
    },
  };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

describe("READY=1 on $NOTIFY_SOCKET", () => {
  let cfg: TestConfig;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    // The stub cloud and an unreachable controller: enough for the management API to listen.
    cfg = writeConfig({
      controllerUrl: "http://127.0.0.1:9/",
      token: "notifytesttoken0123456789abcdefghij",
      port: await freePort(),
    });
  });

  afterAll(async () => {
    for (const c of children) {
      c.kill("SIGKILL");
      await exited(c);
    }
    cfg?.cleanup();
  });

  /** Starts the daemon with a listener on `address`; `next()` is the listener's next message. */
  async function launch(command: string[], address: string, conf: TestConfig = cfg) {
    const receiver = await startReceiver(address, `${conf.url}_health/ping`);
    children.push(receiver.child);
    const [program = "", ...args] = command;
    const daemon = spawn(program, args, {
      cwd: root,
      env: { PATH: process.env["PATH"] ?? "", NOTIFY_SOCKET: address },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(daemon);
    let stderr = "";
    daemon.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const died = exited(daemon).then((code) => {
      throw new Error(`daemon exited ${String(code)}:\n${stderr}`);
    });
    died.catch(() => undefined);
    return {
      daemon,
      stderr: () => stderr,
      next: () => Promise.race([receiver.next(), died]),
    };
  }

  async function check(command: string[], address: string) {
    const { daemon, stderr, next } = await launch(command, address);
    const got = await next();
    daemon.kill("SIGTERM");
    expect(await exited(daemon)).toBe(0);
    expect(stderr()).not.toContain("error notifying init daemon");
    return { got, pid: daemon.pid };
  }

  test("through the launcher: from the main PID, after the API answers", async () => {
    const address = `@dispatch-cloud-notify-test-${process.pid}-a`;
    const { got, pid } = await check(
      [path.join(root, "bin/arvados-dispatch-cloud"), "-config", cfg.path],
      address,
    );
    expect(got).toEqual({
      message: "READY=1\nSTATUS=dispatching",
      pid,
      uid: process.getuid?.(),
      health: 200,
    });
  });

  test.runIf(isRoot)(
    "through the launcher as an unprivileged user: still from the main PID (NotifyAccess=main)",
    async () => {
      const address = `@dispatch-cloud-notify-test-${process.pid}-b`;
      const { got, pid } = await check(
        [
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          // Let it read the checkout wherever it is (CAP_DAC_READ_SEARCH), still without the
          // CAP_SYS_ADMIN that sending on another process's behalf needs.
          "--inh-caps=+dac_read_search",
          "--ambient-caps=+dac_read_search",
          "--",
          path.join(root, "bin/arvados-dispatch-cloud"),
          "-config",
          cfg.path,
        ],
        address,
      );
      // setpriv exec()s, so the daemon keeps the PID the test started.
      expect(got).toEqual({ message: "READY=1\nSTATUS=dispatching", pid, uid: 65534, health: 200 });
    },
  );

  test.runIf(isRoot)(
    "`dispatch-cloud run` (no launcher): systemd-notify sends for our PID as root",
    async () => {
      const address = `${cfg.dir}/notify.sock`;
      const { got, pid } = await check(
        [path.join(root, "bin/dispatch-cloud"), "run", "--config", cfg.path],
        address,
      );
      expect(got).toEqual({ message: "READY=1\nSTATUS=dispatching", pid, uid: 0, health: 200 });
    },
  );

  test("a standby waiting for the cluster lock is up at once, with why as its status; dispatching once the lock is ours", async () => {
    const pg = await startPostgres();
    const other = await pg.connect();
    const conf = writeConfig({
      controllerUrl: "http://127.0.0.1:9/",
      token: "notifytesttoken0123456789abcdefghij",
      port: await freePort(),
      cluster: { PostgreSQL: { Connection: pg.connection } },
    });
    try {
      await other.query("SELECT pg_advisory_lock($1)", [DISPATCH_LOCK_KEY]);
      const address = `@dispatch-cloud-notify-test-${process.pid}-c`;
      const { daemon, pid, next } = await launch(
        [path.join(root, "bin/arvados-dispatch-cloud"), "-config", conf.path],
        address,
        conf,
      ).then((l) => ({ ...l, pid: l.daemon.pid }));
      const standby = await next();
      expect(standby.pid).toBe(pid);
      expect(standby.message).toMatch(
        /^READY=1\nSTATUS=standby: waiting for lock 10005 held by another process \(database session pid \d+/,
      );
      // Not serving while it waits.
      expect(String(standby.health)).toMatch(/refused/i);

      await other.query("SELECT pg_advisory_unlock($1)", [DISPATCH_LOCK_KEY]);
      const dispatching = await next();
      expect(dispatching).toEqual({
        message: "READY=1\nSTATUS=dispatching",
        pid,
        uid: process.getuid?.(),
        health: 200,
      });
      daemon.kill("SIGTERM");
      expect(await exited(daemon)).toBe(0);
    } finally {
      await other.end();
      await pg.stop();
      conf.cleanup();
    }
  });
});
