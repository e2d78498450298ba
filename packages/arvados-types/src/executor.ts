// What runs commands on a VM needs to know about it, and what a command run gives back. The
// worker pool declares the Executor port that uses these shapes; ssh-executor and the stub
// driver's in-process executor implement it, and cloud drivers answer the host-key check.

/** A command's outcome on the connection being verified. */
export interface RunResult {
  readonly exitCode: number;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

/** What a driver may use to check a host key over the new, not yet trusted, SSH connection. */
export interface HostKeyChallengeSession {
  /** Run a command with empty stdin on the connection being verified. */
  run(command: string, signal?: AbortSignal): Promise<RunResult>;
}

/**
 * The outcome of a host-key check. `not-implemented` means the driver has no mechanism of its
 * own; the executor then falls back to reading the instance secret over the connection.
 */
export type HostKeyVerdict =
  | { readonly kind: "verified" }
  | { readonly kind: "mismatch"; readonly reason: string }
  | { readonly kind: "not-implemented" };

/** What an executor needs to know about its VM. */
export interface ExecutorTarget {
  /**
   * "host" or "host:port" ("[v6]:port" or a bare IPv6 address); without a port, the configured
   * SSHPort is used.
   */
  readonly address: string;
  readonly remoteUser: string;
  /** The VM's InstanceSecret tag value ("" if none). */
  readonly instanceSecret: string;
  /**
   * The driver's own host-key check. On "not-implemented" the executor falls back to reading
   * the instance secret over the new connection (and refuses when the secret is "").
   */
  verifyHostKey(
    hostKey: Buffer,
    session: HostKeyChallengeSession,
    signal?: AbortSignal,
  ): Promise<HostKeyVerdict>;
}

export interface ExecuteOptions {
  /** Exported by a prefix on the command line; never put secrets here (they go on stdin). */
  readonly env?: Readonly<Record<string, string>>;
  /** Streamed to the command's stdin, then closed. */
  readonly stdin?: Buffer | string | NodeJS.ReadableStream;
  /** Covers the whole call: waiting for a connection and running the command. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A finished command. A non-zero exit is a value, not a throw. */
export interface ExecResult extends RunResult {
  /** When killed by a signal: 128 + the signal number, with `signal` set. */
  readonly exitCode: number;
  readonly signal?: string;
}
