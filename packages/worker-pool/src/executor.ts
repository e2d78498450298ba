import type { ExecResult, ExecuteOptions, ExecutorTarget } from "@dispatch-cloud/arvados-types";

/*
 * The executor port: how the pool runs commands on a VM. The pool declares it; the SSH
 * executor implements it structurally, and driver-stub offers an in-process implementation
 * for fast tests. The pool never imports an implementation. The data it carries is
 * arvados-types' (ExecutorTarget, ExecuteOptions, ExecResult).
 */
export interface Executor {
  /** Rejects only when the command could not be run or finished (connect/auth/host key/timeout/channel). */
  execute(command: string, options?: ExecuteOptions): Promise<ExecResult>;
  /** The VM's address or identity changed: later connections use the new target. */
  setTarget(target: ExecutorTarget): void;
  close(): Promise<void>;
}

export type ExecutorFactory = (target: ExecutorTarget) => Executor;
