import { constants as osConstants } from "node:os";
import { Readable, pipeline } from "node:stream";
import {
  raceAbort,
  systemClock,
  type ExecResult,
  type ExecuteOptions,
  type ExecutorTarget,
  type Logger,
  type RunResult,
  type TimerHandle,
  type Timers,
} from "@dispatch-cloud/arvados-types";
import ssh2, { type Client, type ClientChannel } from "ssh2";

// ssh2 is CommonJS: Node's ESM loader gives its exports only as the default export.
const { Client: SshClient, utils } = ssh2;
import {
  buildCommandLine,
  describeTarget,
  instanceSecretCommand,
  parseAddress,
  type HostPort,
} from "./command.js";
import { SshExecutorError, type SshErrorKind } from "./errors.js";

export interface SshExecutorOptions {
  /** The dispatcher's private key (PEM or OpenSSH text). */
  readonly privateKey: string | Buffer;
  /** Containers.CloudVMs.SSHPort: used when the target address has no port. Default "22". */
  readonly port?: string;
  readonly logger: Logger;
  /** TCP connect plus SSH handshake plus host-key check. Default 1 minute, as Arvados's dial timeout. */
  readonly connectTimeoutMs?: number;
  /**
   * SSH-level keepalives, so a VM that stops answering fails its commands instead of hanging
   * them (Arvados sends none and relies on TCP keepalive). Default every 10 s, 3 unanswered
   * ones close the connection.
   */
  readonly keepaliveIntervalMs?: number;
  readonly keepaliveCountMax?: number;
  /** Command and connect timeouts are armed here (default: real time). */
  readonly clock?: Timers;
}

/** Builds one executor per VM; all share the key and settings. */
export function createSshExecutorFactory(
  options: SshExecutorOptions,
): (target: ExecutorTarget) => SshExecutor {
  // A key we cannot use is a configuration error: report it once, now, not at every dial.
  const parsed = utils.parseKey(options.privateKey);
  if (parsed instanceof Error) {
    throw new TypeError(`cannot use the SSH private key (DispatchPrivateKey): ${parsed.message}`);
  }
  return (target) => new SshExecutor(target, options);
}

interface Connection {
  readonly client: Client;
  readonly hp: HostPort;
  readonly user: string;
  readonly name: string;
  alive: boolean;
  /** Set once replaced: ended as soon as its last command finishes. */
  retired: boolean;
  active: number;
  /** Why the connection died, for the commands that were running on it. */
  failure?: SshExecutorError;
}

interface Dial {
  readonly promise: Promise<Connection>;
  readonly client: Client;
}

/**
 * One multiplexed SSH connection to one VM, shared by every command. Dials lazily, collapses
 * concurrent dials into one, redials when the connection dies or the target address changes,
 * and verifies the host key (through the driver or the instance secret) on each new key. It is
 * the worker pool's Executor port, implemented structurally.
 */
export class SshExecutor {
  private target: ExecutorTarget;
  private conn: Connection | undefined;
  private dialing: Dial | undefined;
  private verifiedKey: Buffer | undefined;
  private closed = false;
  private readonly defaultPort: string;
  private readonly connectTimeoutMs: number;
  private readonly clock: Timers;
  private readonly logger: Logger;

  constructor(
    target: ExecutorTarget,
    private readonly options: SshExecutorOptions,
  ) {
    this.target = target;
    this.defaultPort = options.port ?? "22";
    this.connectTimeoutMs = options.connectTimeoutMs ?? 60_000;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
  }

  setTarget(target: ExecutorTarget): void {
    // Never blocks: the next execute notices a changed address and redials.
    this.target = target;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.dialing?.client.end();
    const conn = this.conn;
    this.conn = undefined;
    if (conn) {
      conn.alive = false;
      conn.failure ??= new SshExecutorError("closed", conn.name, "executor closed");
      await endClient(conn.client);
    }
  }

  async execute(command: string, options: ExecuteOptions = {}): Promise<ExecResult> {
    const line = buildCommandLine(command, options.env);
    const { signal, dispose } = this.deadline(options);
    try {
      let conn = await this.connection(signal);
      try {
        return await this.run(conn, line, options.stdin, signal);
      } catch (err) {
        // The connection may have died unnoticed: one more try on a fresh one, as Arvados does.
        if (!SshExecutorError.is(err, "channel") || !isOpenFailure(err)) throw err;
        this.dropConnection(conn);
        conn = await this.connection(signal);
        return await this.run(conn, line, options.stdin, signal);
      }
    } finally {
      dispose();
    }
  }

  /** Combines the caller's signal and the per-command timeout into one signal. */
  private deadline(options: ExecuteOptions): { signal: AbortSignal; dispose: () => void } {
    const ac = new AbortController();
    const onAbort = () => ac.abort(options.signal?.reason ?? "aborted");
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let timer: TimerHandle | undefined;
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      timer = this.clock.setTimeout(() => ac.abort(new TimeoutMarker(ms)), ms);
    }
    return {
      signal: ac.signal,
      dispose: () => {
        options.signal?.removeEventListener("abort", onAbort);
        if (timer !== undefined) this.clock.clearTimeout(timer);
      },
    };
  }

  private targetName(): string {
    const hp = parseAddress(this.target.address, this.defaultPort);
    return typeof hp === "string"
      ? `${this.target.remoteUser}@${this.target.address || "(no address)"}`
      : describeTarget(this.target.remoteUser, hp);
  }

  private abortError(signal: AbortSignal, name: string): SshExecutorError {
    const reason: unknown = signal.reason;
    if (reason instanceof TimeoutMarker) {
      return new SshExecutorError("timeout", name, `command timed out after ${reason.ms} ms`);
    }
    return new SshExecutorError("aborted", name, "command aborted", { cause: reason });
  }

  /** The live connection for the current target, dialling (once, shared) if there is none. */
  private async connection(signal: AbortSignal): Promise<Connection> {
    for (;;) {
      if (this.closed) throw new SshExecutorError("closed", this.targetName(), "executor closed");
      if (signal.aborted) throw this.abortError(signal, this.targetName());
      const hp = parseAddress(this.target.address, this.defaultPort);
      if (typeof hp === "string") throw new SshExecutorError("connect", this.targetName(), hp);
      const cur = this.conn;
      if (cur?.alive && sameHost(cur.hp, hp) && cur.user === this.target.remoteUser) return cur;
      if (!this.dialing) this.startDial(this.target, hp);
      const dial = this.dialing;
      if (!dial) continue;
      // Every caller waiting on a dial shares its outcome, error included: a VM that refuses
      // connections is dialled once per round of commands, not once per command.
      const conn = await raceAbort(dial.promise, signal, () =>
        this.abortError(signal, this.targetName()),
      );
      if (conn.alive) return conn;
    }
  }

  private startDial(target: ExecutorTarget, hp: HostPort): void {
    const client = new SshClient();
    const promise = this.dial(client, target, hp).then(
      (conn) => {
        if (this.dialing?.client === client) this.dialing = undefined;
        if (this.closed) {
          conn.alive = false;
          client.end();
          throw new SshExecutorError("closed", conn.name, "executor closed");
        }
        const old = this.conn;
        this.conn = conn;
        if (old && old !== conn) this.retire(old);
        return conn;
      },
      (err: unknown) => {
        if (this.dialing?.client === client) this.dialing = undefined;
        throw err;
      },
    );
    // Waiters attach their own handlers; this keeps an unobserved failure from being unhandled.
    promise.catch(() => undefined);
    this.dialing = { promise, client };
  }

  private async dial(client: Client, target: ExecutorTarget, hp: HostPort): Promise<Connection> {
    const name = describeTarget(target.remoteUser, hp);
    const log = this.logger.child({ Address: name });
    let hostKey: Buffer | undefined;
    const ac = new AbortController();
    const timer = this.clock.setTimeout(() => ac.abort(), this.connectTimeoutMs);
    const conn: Connection = {
      client,
      hp,
      user: target.remoteUser,
      name,
      alive: false,
      retired: false,
      active: 0,
    };
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          client.destroy();
          reject(
            new SshExecutorError(
              "timeout",
              name,
              `connect timed out after ${this.connectTimeoutMs} ms`,
            ),
          );
        };
        ac.signal.addEventListener("abort", onAbort, { once: true });
        client.once("ready", () => {
          ac.signal.removeEventListener("abort", onAbort);
          resolve();
        });
        client.on("error", (err: Error & { level?: string }) => {
          const e = classifyClientError(err, name);
          if (!conn.alive) {
            reject(e);
          } else {
            conn.failure ??= e;
          }
        });
        client.on("close", () => {
          if (conn.alive) log.debug({ error: conn.failure?.message }, "ssh connection closed");
          conn.alive = false;
          conn.failure ??= new SshExecutorError("channel", name, "connection closed");
          if (this.conn === conn) this.conn = undefined;
          reject(new SshExecutorError("connect", name, "connection closed during handshake"));
        });
        client.connect({
          host: hp.host,
          port: hp.port,
          username: target.remoteUser,
          privateKey: this.options.privateKey,
          // Accept any key here and check it once the connection is up, since the check may
          // need to run a command on this very connection (the instance secret).
          hostVerifier: (key: Buffer) => {
            hostKey = Buffer.from(key);
            return true;
          },
          readyTimeout: this.connectTimeoutMs,
          keepaliveInterval: this.options.keepaliveIntervalMs ?? 10_000,
          keepaliveCountMax: this.options.keepaliveCountMax ?? 3,
        });
        // Each command is several small round trips; Nagle plus delayed ACKs would add ~40 ms to each.
        client.setNoDelay(true);
      });
      conn.alive = true;
      if (!hostKey) throw new SshExecutorError("host-key", name, "server presented no host key");
      if (!this.verifiedKey?.equals(hostKey)) {
        await this.verifyHostKey(conn, target, hostKey, ac.signal);
        this.verifiedKey = hostKey;
      }
      log.debug({}, "ssh connected");
      return conn;
    } catch (err) {
      conn.alive = false;
      // Unlike Arvados, a refused connection is closed rather than left open.
      client.end();
      if (ac.signal.aborted && !SshExecutorError.is(err, "timeout")) {
        throw new SshExecutorError(
          "timeout",
          name,
          `connect timed out after ${this.connectTimeoutMs} ms`,
          {
            cause: err,
          },
        );
      }
      throw err;
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  private async verifyHostKey(
    conn: Connection,
    target: ExecutorTarget,
    hostKey: Buffer,
    signal: AbortSignal,
  ): Promise<void> {
    const session = {
      run: async (command: string, sig?: AbortSignal): Promise<RunResult> =>
        this.run(conn, command, undefined, sig ? AbortSignal.any([sig, signal]) : signal),
    };
    let verdict;
    try {
      verdict = await target.verifyHostKey(hostKey, session, signal);
    } catch (err) {
      if (SshExecutorError.is(err)) throw err;
      throw new SshExecutorError(
        "host-key",
        conn.name,
        `host key check failed: ${errorText(err)}`,
        { cause: err },
      );
    }
    if (verdict.kind === "verified") return;
    if (verdict.kind === "mismatch") {
      throw new SshExecutorError("host-key", conn.name, `host key mismatch: ${verdict.reason}`);
    }
    if (target.instanceSecret === "") {
      throw new SshExecutorError(
        "host-key",
        conn.name,
        "cannot verify host key: not implemented by the driver, and the instance has no secret tag",
      );
    }
    const res = await this.run(conn, instanceSecretCommand(target.remoteUser), undefined, signal);
    if (res.exitCode !== 0) {
      const stderr = res.stderr.toString("utf8").trim().slice(0, 200);
      throw new SshExecutorError(
        "host-key",
        conn.name,
        `reading instance secret failed with exit code ${res.exitCode}${stderr ? `: ${stderr}` : ""}`,
      );
    }
    if (res.stdout.toString("utf8") !== target.instanceSecret) {
      throw new SshExecutorError("host-key", conn.name, "bad instance secret");
    }
  }

  private dropConnection(conn: Connection): void {
    if (!conn.alive) return;
    conn.alive = false;
    if (this.conn === conn) this.conn = undefined;
    this.retire(conn);
  }

  /** Ends a replaced connection once the commands still running on it are done. */
  private retire(conn: Connection): void {
    conn.retired = true;
    conn.alive = false;
    if (conn.active === 0) conn.client.end();
  }

  private run(
    conn: Connection,
    line: string,
    stdin: ExecuteOptions["stdin"],
    signal: AbortSignal,
  ): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      if (signal.aborted) {
        reject(this.abortError(signal, conn.name));
        return;
      }
      conn.active++;
      let settled = false;
      let channel: ClientChannel | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        conn.active--;
        if (conn.retired && conn.active === 0) conn.client.end();
        fn();
      };
      const onAbort = () => {
        if (channel) {
          // Ask the server to kill the command; then drop the channel regardless.
          try {
            channel.signal("KILL");
          } catch {
            // the channel may already be gone
          }
          channel.close();
        }
        finish(() => reject(this.abortError(signal, conn.name)));
      };
      signal.addEventListener("abort", onAbort, { once: true });

      try {
        conn.client.exec(line, (err, ch) => {
          if (err) {
            finish(() =>
              reject(
                new SshExecutorError("channel", conn.name, `cannot open session: ${err.message}`, {
                  cause: new OpenFailure(err),
                }),
              ),
            );
            return;
          }
          channel = ch;
          if (settled) {
            ch.close();
            return;
          }
          const out: Buffer[] = [];
          const errOut: Buffer[] = [];
          let exitCode: number | undefined;
          let exitSignal: string | undefined;
          ch.on("data", (b: Buffer) => out.push(b));
          ch.stderr.on("data", (b: Buffer) => errOut.push(b));
          ch.on("exit", (code: number | null, sig?: string) => {
            if (typeof code === "number") exitCode = code;
            else if (sig) {
              const name = sig.replace(/^SIG/, "");
              exitSignal = name;
              const num = (osConstants.signals as Record<string, number | undefined>)[`SIG${name}`];
              exitCode = 128 + (num ?? 0);
            }
          });
          ch.on("close", () => {
            if (exitCode === undefined) {
              const why = conn.failure;
              finish(() =>
                reject(
                  why && why.kind !== "channel"
                    ? new SshExecutorError(
                        why.kind,
                        conn.name,
                        `connection lost while a command ran: ${why.message}`,
                        {
                          cause: why,
                        },
                      )
                    : new SshExecutorError(
                        "channel",
                        conn.name,
                        "connection lost before the command finished",
                      ),
                ),
              );
              return;
            }
            const result: ExecResult = {
              exitCode,
              stdout: Buffer.concat(out),
              stderr: Buffer.concat(errOut),
              ...(exitSignal === undefined ? {} : { signal: exitSignal }),
            };
            finish(() => resolve(result));
          });
          writeStdin(ch, stdin);
        });
      } catch (err) {
        // ssh2 throws synchronously when the connection is no longer usable.
        finish(() =>
          reject(
            new SshExecutorError("channel", conn.name, `cannot open session: ${errorText(err)}`, {
              cause: new OpenFailure(err),
            }),
          ),
        );
      }
    });
  }
}

function writeStdin(ch: ClientChannel, stdin: ExecuteOptions["stdin"]): void {
  if (stdin === undefined) {
    ch.end();
  } else if (typeof stdin === "string" || Buffer.isBuffer(stdin)) {
    ch.end(stdin);
  } else {
    const src = stdin instanceof Readable ? stdin : Readable.from(stdin as AsyncIterable<Buffer>);
    // A failing source or a channel that closes early ends the copy; the command's outcome
    // (exit status or connection loss) is what the caller gets.
    pipeline(src, ch, () => undefined);
  }
}

/** Marks a session-open failure, the one case where a fresh connection is worth a retry. */
class OpenFailure extends Error {
  constructor(cause: unknown) {
    super("session open failed", { cause });
  }
}

function isOpenFailure(err: SshExecutorError): boolean {
  return err.cause instanceof OpenFailure;
}

class TimeoutMarker {
  constructor(readonly ms: number) {}
}

function sameHost(a: HostPort, b: HostPort): boolean {
  return a.host === b.host && a.port === b.port;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps ssh2's error levels onto our kinds. */
export function classifyClientError(
  err: Error & { level?: string; code?: string },
  name: string,
): SshExecutorError {
  let kind: SshErrorKind;
  let what: string;
  switch (err.level) {
    case "client-authentication":
      kind = "auth";
      what = "authentication refused (is the dispatcher's public key authorized on the VM?)";
      break;
    case "client-timeout":
      kind = "timeout";
      what =
        err.message === "Keepalive timeout"
          ? "server stopped answering keepalives"
          : "handshake timed out";
      break;
    default:
      kind = "connect";
      what = "cannot connect";
  }
  return new SshExecutorError(kind, name, `${what}: ${err.message}`, { cause: err });
}

function endClient(client: Client): Promise<void> {
  return new Promise((resolve) => {
    client.once("close", () => resolve());
    client.end();
  });
}
