import {
  type ExecutorTarget,
  type Timers as Clock,
  silentLogger as silent,
} from "@dispatch-cloud/arvados-types";
import { afterEach, describe, expect, it } from "vitest";
import { createSshExecutorFactory } from "./index.js";
import {
  rejection,
  startFakeSshServer,
  type FakeExec,
  type FakeSshServer,
} from "./testing/index.js";

const SECRET = "fake-secret";
const SUDO_CAT = "sudo cat /var/run/arvados-instance-secret";

let server: FakeSshServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** A VM whose non-root user reads the secret through sudo; `hang` commands never finish. */
async function fakeVm(
  onOther?: (exec: FakeExec, exit: (code: number) => void) => void,
  clientPrivateKey?: string,
): Promise<FakeSshServer> {
  server = await startFakeSshServer({
    ...(clientPrivateKey === undefined ? {} : { clientPrivateKey }),
    onExec: (exec, exit) => {
      if (exec.command === SUDO_CAT) {
        exec.channel.write(SECRET);
        exit(0);
      } else if (exec.command.startsWith("cat ")) {
        exec.channel.stderr.write("cat: Permission denied\n");
        exit(1);
      } else if (onOther) {
        onOther(exec, exit);
      } else {
        exec.channel.write(`ran ${exec.command}`);
        exit(0);
      }
    },
  });
  return server;
}

function target(s: FakeSshServer, over: Partial<ExecutorTarget> = {}): ExecutorTarget {
  return {
    address: `${s.host}:${s.port}`,
    remoteUser: "admin",
    instanceSecret: SECRET,
    verifyHostKey: async () => ({ kind: "not-implemented" }),
    ...over,
  };
}

describe("against an in-process ssh2 server", () => {
  it("reads the instance secret through sudo for a non-root user", async () => {
    const s = await fakeVm();
    const ex = createSshExecutorFactory({ privateKey: s.privateKey, logger: silent })(target(s));
    try {
      const res = await ex.execute("hostname");
      expect(res.stdout.toString()).toBe("ran hostname");
      expect(s.commands).toEqual([
        { user: "admin", command: SUDO_CAT },
        { user: "admin", command: "hostname" },
      ]);
    } finally {
      await ex.close();
    }
  });

  it("reports a failing secret read with its exit code", async () => {
    const s = await fakeVm();
    // As root the command has no sudo, and this fake VM denies it.
    const ex = createSshExecutorFactory({ privateKey: s.privateKey, logger: silent })(
      target(s, { remoteUser: "root" }),
    );
    try {
      const err = await rejection(ex.execute("hostname"));
      expect(err.kind).toBe("host-key");
      expect(err.message).toBe(
        `ssh root@127.0.0.1:${s.port}: reading instance secret failed with exit code 1: cat: Permission denied`,
      );
      expect(s.commands.map((c) => c.command)).toEqual(["cat /var/run/arvados-instance-secret"]);
    } finally {
      await ex.close();
    }
  });

  it("times out through the injected clock", async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const s = await fakeVm(() => started()); // never exits
    const timers: { fn: () => void; ms: number }[] = [];
    const clock: Clock = {
      setTimeout: (fn, ms) => timers.push({ fn, ms }),
      clearTimeout: () => undefined,
    };
    const ex = createSshExecutorFactory({ privateKey: s.privateKey, logger: silent, clock })(
      target(s),
    );
    try {
      const pending = ex.execute("hang", { timeoutMs: 3_600_000 });
      await running;
      const timer = timers.find((t) => t.ms === 3_600_000);
      expect(timer).toBeDefined();
      timer?.fn();
      const err = await rejection(pending);
      expect(err.kind).toBe("timeout");
      expect(err.message).toContain("timed out after 3600000 ms");
    } finally {
      await ex.close();
    }
  });

  it("fails a command whose connection drops, and redials for the next", async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const s = await fakeVm((exec, exit) => {
      if (exec.command === "hang") started();
      else {
        exec.channel.write("ok");
        exit(0);
      }
    });
    const ex = createSshExecutorFactory({ privateKey: s.privateKey, logger: silent })(target(s));
    try {
      const pending = ex.execute("hang");
      await running;
      // Drop every server-side connection, as a rebooting VM would.
      const stopped = s.stop();
      const err = await rejection(pending);
      expect(err.kind).toBe("channel");
      expect(err.message).toContain(`admin@127.0.0.1:${s.port}`);
      await stopped;
      server = undefined;
      // The VM comes back on a new port: the address change makes the executor redial.
      const s2 = await fakeVm(undefined, s.privateKey);
      ex.setTarget(target(s2));
      expect((await ex.execute("again")).stdout.toString()).toBe("ran again");
      expect(s2.connections()).toBe(1);
    } finally {
      await ex.close();
    }
  });

  it("refuses a private key it cannot use when the factory is built", () => {
    expect(() => createSshExecutorFactory({ privateKey: "not a key", logger: silent })).toThrow(
      /cannot use the SSH private key/,
    );
  });
});
