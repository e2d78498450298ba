/*
 * The executor port, declared here so this package stays a leaf: the worker pool declares the
 * same shapes and this package satisfies them structurally.
 */

/** The small logging surface every library takes. */
export interface Logger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Timers, injectable so tests of timeouts need not wait. */
export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

/** A command runner on the connection being verified, handed to the driver's host-key check. */
export interface VerifySession {
  run(command: string, signal?: AbortSignal): Promise<RunResult>;
}

export type HostKeyVerdict =
  | { readonly kind: "verified" }
  | { readonly kind: "mismatch"; readonly reason: string }
  | { readonly kind: "not-implemented" };

/** What the executor needs to know about its VM. */
export interface ExecutorTarget {
  /** "host" or "host:port" ("[v6]:port" or a bare IPv6 address); without a port, the configured SSHPort is used. */
  readonly address: string;
  readonly remoteUser: string;
  /** The VM's InstanceSecret tag value ("" if none). */
  readonly instanceSecret: string;
  /** The driver's own host-key check. */
  verifyHostKey(
    hostKey: Buffer,
    session: VerifySession,
    signal?: AbortSignal,
  ): Promise<HostKeyVerdict>;
}

export interface ExecuteOptions {
  /** Exported by a prefix on the command line (see buildCommandLine); never put secrets here. */
  readonly env?: Readonly<Record<string, string>>;
  /** Streamed to the command's stdin, then closed. */
  readonly stdin?: Buffer | string | NodeJS.ReadableStream;
  /** Covers the whole call: waiting for a connection and running the command. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A finished command. A non-zero exit is a value, not a throw. */
export interface ExecResult {
  /** When killed by a signal: 128 + the signal number, with `signal` set. */
  readonly exitCode: number;
  readonly signal?: string;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

export interface Executor {
  /** Rejects (with SshExecutorError) only when the command could not be run to its end. */
  execute(command: string, options?: ExecuteOptions): Promise<ExecResult>;
  /** The VM's address or identity changed: later commands use the new target (reconnecting). */
  setTarget(target: ExecutorTarget): void;
  close(): Promise<void>;
}

export type ExecutorFactory = (target: ExecutorTarget) => Executor;
