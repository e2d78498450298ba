import { createHash } from "node:crypto";
import net from "node:net";
import { Readable } from "node:stream";
import {
  type ExecutorTarget,
  type HostKeyVerdict,
  type Logger,
  silentLogger as silent,
} from "@dispatch-cloud/arvados-types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSshExecutorFactory } from "./index.js";
import { generateSshPrivateKey, rejection, startSshd, type Sshd } from "./testing/index.js";

const SECRET = "s3cret-instance-value";

let sshd: Sshd;
beforeAll(async () => {
  sshd = await startSshd({ instanceSecret: SECRET });
});
afterAll(async () => {
  await sshd?.stop();
});

interface CountingTarget extends ExecutorTarget {
  verifyCalls: number;
}

function target(
  over: Partial<ExecutorTarget> & { verdict?: HostKeyVerdict } = {},
  server: Sshd = sshd,
): CountingTarget {
  const t: CountingTarget = {
    address: `${server.host}:${server.port}`,
    remoteUser: server.user,
    instanceSecret: SECRET,
    verifyCalls: 0,
    verifyHostKey: async () => {
      t.verifyCalls++;
      return over.verdict ?? { kind: "not-implemented" };
    },
    ...over,
  };
  return t;
}

function executor(
  t: ExecutorTarget,
  opts: {
    privateKey?: string;
    keepaliveIntervalMs?: number;
    connectTimeoutMs?: number;
    logger?: Logger;
  } = {},
) {
  return createSshExecutorFactory({
    privateKey: opts.privateKey ?? sshd.privateKey,
    logger: opts.logger ?? silent,
    connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
    ...(opts.keepaliveIntervalMs === undefined
      ? {}
      : { keepaliveIntervalMs: opts.keepaliveIntervalMs, keepaliveCountMax: 2 }),
  })(t);
}

describe("against OpenSSH sshd", () => {
  it("returns exit codes, output and signals as values", async () => {
    const ex = executor(target());
    try {
      const ok = await ex.execute("echo out; echo err >&2");
      expect(ok).toMatchObject({ exitCode: 0 });
      expect(ok.stdout.toString()).toBe("out\n");
      expect(ok.stderr.toString()).toBe("err\n");
      expect((await ex.execute("exit 3")).exitCode).toBe(3);
      const killed = await ex.execute("kill -TERM $$");
      expect(killed).toMatchObject({ exitCode: 143, signal: "TERM" });
    } finally {
      await ex.close();
    }
  });

  it("passes env through the command line, exactly", async () => {
    const ex = executor(target());
    try {
      const value = 'it\'s $HOME; `x` "y"';
      const res = await ex.execute('printf %s "$GREETING"', { env: { GREETING: value } });
      expect(res.stdout.toString()).toBe(value);
    } finally {
      await ex.close();
    }
  });

  it("streams 50 MB of stdin intact, from a Buffer and from a stream", async () => {
    const data = Buffer.alloc(50 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const want = createHash("md5").update(data).digest("hex");
    const ex = executor(target());
    try {
      const fromBuffer = await ex.execute("md5sum", { stdin: data });
      expect(fromBuffer.stdout.toString().split(" ")[0]).toBe(want);
      const chunks = Array.from({ length: 50 }, (_, i) =>
        data.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024),
      );
      const fromStream = await ex.execute("md5sum", { stdin: Readable.from(chunks) });
      expect(fromStream.stdout.toString().split(" ")[0]).toBe(want);
    } finally {
      await ex.close();
    }
  });

  it("runs 100 concurrent commands over one connection, dialled once", async () => {
    const before = sshd.acceptedLogins();
    const t = target();
    const ex = executor(t);
    try {
      // All 100 start before any connection exists: the first dials must collapse into one.
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => ex.execute(`echo ${i}`)),
      );
      expect(results.map((r) => r.stdout.toString())).toEqual(
        Array.from({ length: 100 }, (_, i) => `${i}\n`),
      );
      expect(sshd.acceptedLogins() - before).toBe(1);
      expect(t.verifyCalls).toBe(1);
    } finally {
      await ex.close();
    }
  });

  it("reconnects after sshd restarts, without re-verifying the same host key", async () => {
    const t = target();
    const ex = executor(t);
    try {
      expect((await ex.execute("echo a")).stdout.toString()).toBe("a\n");
      const before = sshd.acceptedLogins();
      await sshd.restart();
      expect((await ex.execute("echo b")).stdout.toString()).toBe("b\n");
      expect(sshd.acceptedLogins() - before).toBe(1);
      expect(t.verifyCalls).toBe(1);
    } finally {
      await ex.close();
    }
  });

  it("moves to a new address, letting commands on the old connection finish", async () => {
    const other = await startSshd({
      host: "127.0.0.2",
      instanceSecret: SECRET,
      authorizedKeys: [sshd.publicKey],
    });
    const ex = executor(target());
    try {
      await ex.execute("true");
      const running = ex.execute("sleep 0.3; echo old");
      ex.setTarget(target({}, other));
      const moved = await ex.execute("echo new");
      expect(moved.stdout.toString()).toBe("new\n");
      expect(other.acceptedLogins()).toBe(1);
      expect((await running).stdout.toString()).toBe("old\n");
    } finally {
      await ex.close();
      await other.stop();
    }
  });

  it("accepts a host key the driver verifies, without reading the secret", async () => {
    const t = target({ instanceSecret: "" });
    t.verifyHostKey = async (key) => {
      t.verifyCalls++;
      return key.equals(sshd.hostKeyBlob)
        ? { kind: "verified" }
        : { kind: "mismatch", reason: "unexpected key" };
    };
    const ex = executor(t);
    try {
      expect((await ex.execute("echo ok")).exitCode).toBe(0);
      expect(t.verifyCalls).toBe(1);
    } finally {
      await ex.close();
    }
  });

  it.each([
    [
      "a host key the driver rejects",
      { verdict: { kind: "mismatch", reason: "key differs from console output" } as const },
      /host key mismatch: key differs from console output/,
    ],
    ["a wrong instance secret", { instanceSecret: "other-secret" }, /bad instance secret/],
    ["no secret and no driver check", { instanceSecret: "" }, /not implemented/],
  ])("refuses %s", async (_name, over, message) => {
    const ex = executor(target(over));
    try {
      const err = await rejection(ex.execute("echo should-not-run"));
      expect(err.kind).toBe("host-key");
      expect(err.message).toMatch(message);
      expect(err.message).toContain(`${sshd.user}@${sshd.host}:${sshd.port}`);
      expect(err.message).not.toContain(SECRET);
    } finally {
      await ex.close();
    }
  });

  it("reports a key the server does not know as an authentication error", async () => {
    const wrongKey = generateSshPrivateKey();
    const ex = executor(target(), { privateKey: wrongKey });
    try {
      const err = await rejection(ex.execute("true"));
      expect(err.kind).toBe("auth");
      expect(err.message).toContain(`${sshd.user}@${sshd.host}:${sshd.port}`);
    } finally {
      await ex.close();
    }
  });

  it("reports refused connections and missing addresses as connect errors", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const ex = executor(target({ address: `127.0.0.1:${port}` }));
    const none = executor(target({ address: "" }));
    try {
      const err = await rejection(ex.execute("true"));
      expect(err.kind).toBe("connect");
      expect(err.message).toContain(`127.0.0.1:${port}`);
      const noAddr = await rejection(none.execute("true"));
      expect(noAddr.kind).toBe("connect");
      expect(noAddr.message).toContain("instance has no address");
    } finally {
      await ex.close();
      await none.close();
    }
  });

  it("times out and aborts hung commands, and the connection stays usable", async () => {
    const ex = executor(target());
    try {
      const timedOut = await rejection(ex.execute("sleep 30", { timeoutMs: 200 }));
      expect(timedOut.kind).toBe("timeout");
      expect(timedOut.message).toMatch(/timed out after 200 ms/);

      const ac = new AbortController();
      const pending = ex.execute("sleep 30", { signal: ac.signal });
      ac.abort();
      expect((await rejection(pending)).kind).toBe("aborted");

      expect((await ex.execute("echo still-here")).stdout.toString()).toBe("still-here\n");
    } finally {
      await ex.close();
    }
  });

  it("notices a server that stops answering through keepalives", async () => {
    // A TCP relay we can freeze stands in for a VM that goes silent.
    let frozen = false;
    const relays: net.Socket[] = [];
    const relay = net.createServer((inbound) => {
      const outbound = net.connect(sshd.port, sshd.host);
      relays.push(inbound, outbound);
      inbound.on("data", (b: Buffer) => frozen || outbound.write(b));
      outbound.on("data", (b: Buffer) => frozen || inbound.write(b));
      inbound.on("error", () => outbound.destroy());
      outbound.on("error", () => inbound.destroy());
      inbound.on("close", () => outbound.destroy());
      outbound.on("close", () => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", () => resolve()));
    const port = (relay.address() as net.AddressInfo).port;
    const logged: string[] = [];
    const capture: Logger = {
      ...silent,
      debug: (fields, msg) => logged.push(`${msg} ${String(fields["error"])}`),
      child: () => capture,
    };
    const ex = executor(target({ address: `127.0.0.1:${port}` }), {
      keepaliveIntervalMs: 100,
      connectTimeoutMs: 300,
      logger: capture,
    });
    try {
      await ex.execute("true");
      frozen = true;
      // The command's session cannot open on the silent connection; keepalives kill that
      // connection, the one retry dials through the frozen relay and times out too.
      const err = await rejection(ex.execute("sleep 30"));
      expect(err.kind).toBe("timeout");
      expect(logged.some((l) => /connection closed .*stopped answering keepalives/.test(l))).toBe(
        true,
      );
    } finally {
      await ex.close();
      for (const s of relays) s.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it("refuses use after close", async () => {
    const ex = executor(target());
    await ex.execute("true");
    await ex.close();
    expect((await rejection(ex.execute("true"))).kind).toBe("closed");
  });
});
