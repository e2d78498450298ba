import net from "node:net";
import { timingSafeEqual } from "node:crypto";
import type { Logger } from "@dispatch-cloud/arvados-types";
import ssh2 from "ssh2";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";
import type { FakeVm } from "./vm.js";

/** A VM's SSH endpoint: 127.0.0.1 on a port of its own. */
export interface VmSshServer {
  readonly port: number;
  /** Drop every connection (the VM is gone). */
  dropConnections(): void;
  close(): Promise<void>;
}

/**
 * Listen for SSH on 127.0.0.1 for one fake VM. A connection is refused (closed at once) while
 * the VM is booting, ignored while it is silent, and otherwise authenticated as `remoteUser`
 * with the key given to create (plus `extraKeys`); each exec goes to the VM's command handler.
 */
export async function serveVm(
  vm: FakeVm,
  extraKeys: readonly string[],
  logger: Logger,
): Promise<VmSshServer> {
  const allowed = [vm.authorizedKey, ...extraKeys]
    .filter((k): k is string => k !== null)
    .map((k) => ssh2.utils.parseKey(k))
    .filter((k): k is ssh2.ParsedKey => !(k instanceof Error) && !Array.isArray(k));
  const sockets = new Set<net.Socket>();
  const server = new ssh2.Server({ hostKeys: [vm.hostKey.privateKey] }, (client) => {
    client.on("error", (err) =>
      logger.debug({ Instance: vm.id, error: errorMessage(err) }, "stub ssh client error"),
    );
    client.on("authentication", (ctx) => {
      if (ctx.method !== "publickey" || ctx.username !== vm.remoteUser) {
        ctx.reject(["publickey"]);
        return;
      }
      const key = allowed.find(
        (k) =>
          k.type === ctx.key.algo &&
          k.getPublicSSH().length === ctx.key.data.length &&
          timingSafeEqual(k.getPublicSSH(), ctx.key.data),
      );
      if (key === undefined) {
        ctx.reject(["publickey"]);
        return;
      }
      if (ctx.signature !== undefined && ctx.blob !== undefined) {
        if (!key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
          ctx.reject(["publickey"]);
          return;
        }
      }
      ctx.accept();
    });
    client.on("ready", () => {
      client.on("session", (acceptSession) => {
        const session = acceptSession();
        const env: Record<string, string> = {};
        session.on("env", (accept, _reject, info) => {
          env[info.key] = info.val;
          accept?.();
        });
        session.on("pty", (_accept, reject) => reject?.());
        session.on("shell", (_accept, reject) => reject());
        session.once("exec", (accept, _reject, info) => {
          const stream = accept();
          const chunks: Buffer[] = [];
          const ended = new Promise<Buffer>((resolve) => {
            stream.on("data", (c: Buffer) => chunks.push(c));
            stream.on("end", () => resolve(Buffer.concat(chunks)));
            stream.on("close", () => resolve(Buffer.concat(chunks)));
          });
          const abort = new AbortController();
          stream.on("close", () => abort.abort());
          vm.exec(info.command, { env, stdin: () => ended, signal: abort.signal }).then(
            (res) => {
              if (abort.signal.aborted) return;
              if (res.stdout.length > 0) stream.write(res.stdout);
              if (res.stderr.length > 0) stream.stderr.write(res.stderr);
              stream.exit(res.exitCode);
              stream.end();
            },
            (err: unknown) => {
              if (abort.signal.aborted) return;
              stream.stderr.write(`${errorMessage(err)}\n`);
              stream.exit(255);
              stream.end();
            },
          );
        });
      });
    });
  });
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    // Without it every command waits on Nagle and delayed ACKs (tens of ms per round trip).
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (vm.gone || !vm.booted()) {
      socket.destroy();
      return;
    }
    // A silent VM's sshd accepts the TCP connection and then never says a word.
    if (vm.silent()) return;
    server.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (tcp.address() as net.AddressInfo).port;
  return {
    port,
    dropConnections() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}
