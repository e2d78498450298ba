/*
 * An in-process SSH server (ssh2's Server) for tests that need to see exactly what the
 * executor sent, or to log in as a user the machine does not have. Accepts any user whose
 * key is `clientPublicKey`; each exec request is answered by `onExec`.
 */
import type { AddressInfo } from "node:net";
import ssh2, { type ServerChannel } from "ssh2";

// ssh2 is CommonJS: under Node's ESM loader its exports come only as the default export.
const { Server, utils } = ssh2;

export interface FakeExec {
  readonly user: string;
  readonly command: string;
  readonly stdin: Promise<Buffer>;
  readonly channel: ServerChannel;
}

export interface FakeSshServerOptions {
  /** Answers one command: write to channel / channel.stderr, then call `exit(code)`. */
  readonly onExec: (exec: FakeExec, exit: (code: number) => void) => void;
  /** The client key to accept (OpenSSH or PEM text); generated when absent. */
  readonly clientPrivateKey?: string;
}

export interface FakeSshServer {
  readonly host: string;
  readonly port: number;
  /** The client key the server accepts (OpenSSH text). */
  readonly privateKey: string;
  readonly hostKeyBlob: Buffer;
  /** Every command received, in order, with the login user. */
  readonly commands: { user: string; command: string }[];
  connections(): number;
  stop(): Promise<void>;
}

/**
 * A fresh ed25519 private key (OpenSSH text) that ssh2 can read back. ssh2's generator writes a
 * public key whose first byte is zero one byte short (about one key in 250), and its own parser
 * then rejects the file, so draw again until the key parses.
 */
export function generateSshPrivateKey(): string {
  for (;;) {
    const key = utils.generateKeyPairSync("ed25519").private;
    if (!(utils.parseKey(key) instanceof Error)) return key;
  }
}

export async function startFakeSshServer(options: FakeSshServerOptions): Promise<FakeSshServer> {
  const hostKey = generateSshPrivateKey();
  const privateKey = options.clientPrivateKey ?? generateSshPrivateKey();
  const parsedClient = utils.parseKey(privateKey);
  const parsedHost = utils.parseKey(hostKey);
  if (parsedClient instanceof Error || parsedHost instanceof Error)
    throw new Error("cannot parse generated keys");
  const clientPub = parsedClient.getPublicSSH();
  const commands: { user: string; command: string }[] = [];
  let connections = 0;
  const live = new Set<{ end(): unknown }>();

  const server = new Server({ hostKeys: [hostKey] }, (conn) => {
    connections++;
    live.add(conn);
    conn.on("close", () => live.delete(conn));
    let user = "";
    conn.on("authentication", (ctx) => {
      if (ctx.method === "publickey" && ctx.key.data.equals(clientPub)) {
        user = ctx.username;
        ctx.accept();
      } else {
        ctx.reject(["publickey"]);
      }
    });
    conn.on("session", (accept) => {
      const session = accept();
      session.on("exec", (acceptExec, _reject, info) => {
        const channel = acceptExec();
        commands.push({ user, command: info.command });
        const chunks: Buffer[] = [];
        const stdin = new Promise<Buffer>((resolve) => {
          channel.on("data", (b: Buffer) => chunks.push(b));
          channel.on("end", () => resolve(Buffer.concat(chunks)));
        });
        options.onExec({ user, command: info.command, stdin, channel }, (code) => {
          channel.exit(code);
          channel.end();
        });
      });
    });
    conn.on("error", () => undefined);
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    host: "127.0.0.1",
    port,
    privateKey,
    hostKeyBlob: parsedHost.getPublicSSH(),
    commands,
    connections: () => connections,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Drop live connections so close() completes.
        for (const c of live) c.end();
      }),
  };
}
