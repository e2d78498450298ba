import net from "node:net";

/**
 * One dispatcher per InstanceSetID per host. Arvados takes the PostgreSQL advisory lock 10005,
 * which needs the database connection we do not have; instead we listen on a Linux abstract
 * unix socket named after the InstanceSetID. The kernel releases it when the process dies, even
 * by SIGKILL, so a crashed dispatcher never leaves a stale lock behind. Unlike Arvados's lock it
 * is per host, not cluster-wide, and a second dispatcher exits at once instead of waiting.
 */
export interface InstanceLock {
  release(): Promise<void>;
}

export type LockResult =
  | { readonly ok: true; readonly lock: InstanceLock }
  | { readonly ok: false; readonly error: string };

export function lockName(instanceSetId: string): string {
  return `arvados-dispatch-cloud-${instanceSetId}`;
}

/** Asks the holder who it is: it answers every connection with its PID. */
function holderPid(path: string): Promise<number | null> {
  return new Promise((resolve) => {
    const sock = net.connect({ path });
    let data = "";
    const done = (pid: number | null): void => {
      sock.destroy();
      resolve(pid);
    };
    sock.setTimeout(1000, () => done(null));
    sock.on("data", (d: Buffer) => (data += d.toString()));
    sock.on("end", () => {
      const m = /^pid (\d+)/.exec(data);
      done(m?.[1] === undefined ? null : Number(m[1]));
    });
    sock.on("error", () => done(null));
  });
}

export async function acquireInstanceLock(instanceSetId: string): Promise<LockResult> {
  const name = lockName(instanceSetId);
  const path = `\0${name}`;
  const server = net.createServer((sock) => {
    sock.on("error", () => sock.destroy());
    sock.end(`pid ${process.pid}\n`);
  });
  const bound = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ path }, () => resolve(null));
  });
  if (bound !== null) {
    if (bound.code !== "EADDRINUSE") {
      return { ok: false, error: `cannot take the dispatcher lock ${name}: ${bound.message}` };
    }
    const pid = await holderPid(path);
    const who = pid === null ? "another process" : `process ${pid}`;
    return {
      ok: false,
      error: `another dispatcher (${who}) already runs for InstanceSetID ${instanceSetId} on this host (lock ${name} is held)`,
    };
  }
  // The lock must not keep the process alive on its own.
  server.unref();
  return {
    ok: true,
    lock: {
      release: () => new Promise<void>((resolve) => server.close(() => resolve())),
    },
  };
}
