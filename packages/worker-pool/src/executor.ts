import type { HostKeyChallengeSession, HostKeyVerdict } from "@dispatch-cloud/cloud-driver-api";

/*
 * The executor port: how the pool runs commands on a VM. The pool declares it; the SSH
 * executor implements it structurally, and driver-stub offers an in-process implementation
 * for fast tests. The pool never imports an implementation.
 */

/** What the executor needs to know about its VM. */
export interface ExecutorTarget {
  /** "host" or "host:port"; without a port, the configured SSHPort is used. */
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
  readonly env?: Readonly<Record<string, string>>;
  /** Streamed to the command's stdin, then closed. */
  readonly stdin?: Buffer | string | NodeJS.ReadableStream;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A finished command. A non-zero exit is a value, not a throw. */
export interface ExecResult {
  /** When killed by a signal: 128 + signal number, with `signal` set. */
  readonly exitCode: number;
  readonly signal?: string;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

export interface Executor {
  /** Rejects only when the command could not be run or finished (connect/auth/host key/timeout/channel). */
  execute(command: string, options?: ExecuteOptions): Promise<ExecResult>;
  /** The VM's address or identity changed: later connections use the new target. */
  setTarget(target: ExecutorTarget): void;
  close(): Promise<void>;
}

export type ExecutorFactory = (target: ExecutorTarget) => Executor;
