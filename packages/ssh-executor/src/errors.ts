/*
 * The one error family of this package. Every message starts with the target
 * (user@host:port) so an operator reading a log line knows which VM it was about.
 */

const brand = Symbol.for("@dispatch-cloud/ssh-executor/error");

export type SshErrorKind =
  /** TCP connect or SSH handshake failed, or the target has no address. */
  | "connect"
  /** The server refused our key. */
  | "auth"
  /** The driver's host-key check or the instance secret refused the server. */
  | "host-key"
  /** Dial, command or keepalive deadline passed. */
  | "timeout"
  /** A session could not be opened, or the connection died while a command ran. */
  | "channel"
  /** The caller's AbortSignal fired. */
  | "aborted"
  /** The executor was closed. */
  | "closed";

export class SshExecutorError extends Error {
  readonly [brand] = true;
  override readonly name = "SshExecutorError";
  constructor(
    readonly kind: SshErrorKind,
    /** user@host:port, or the raw address when it could not be parsed. */
    readonly target: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`ssh ${target}: ${detail}`, options);
  }

  /** Whether trying again later may succeed (the VM may still be booting or was briefly away). */
  get retryable(): boolean {
    return this.kind === "connect" || this.kind === "timeout" || this.kind === "channel";
  }

  static is(err: unknown, kind?: SshErrorKind): err is SshExecutorError {
    if (typeof err !== "object" || err === null || !(brand in err)) return false;
    return kind === undefined || (err as SshExecutorError).kind === kind;
  }
}
