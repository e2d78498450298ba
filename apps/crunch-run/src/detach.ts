import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { acquireContainerLock, writeProcInfo, type ProcInfo } from "./locks.js";

/** Tell the background copy which descriptors are the "ready" pipe and its container lock. */
export const READY_FD_ENV = "CRUNCH_RUN_READY_FD";
export const LOCK_FD_ENV = "CRUNCH_RUN_LOCK_FD";
const READY_FD = 3;
const LOCK_FD = 4;

/** How long the background copy may take to start before `--detach` gives up on it. */
const READY_TIMEOUT_MS = 60_000;

let lockFd: number | null = null;

/**
 * In the background copy: the descriptor of the container's lock file (inherited from
 * `--detach`, with the exclusive lock on it), or null when this process was not started by
 * `--detach`. It stays open for the process's whole life; whatever it is passed to shares the
 * lock.
 */
export function inheritedLockFd(): number | null {
  return lockFd;
}

/**
 * Called by the background copy once its signal handlers are in place: writes its procinfo
 * into the lock file, so from now on `--list` (SIGUSR2) and `--kill` (SIGTERM) reach it, then
 * tells `--detach` it is ready. Before this, the lock file is empty and both leave it alone
 * (Node's default action for either signal is to exit without a word).
 */
export function announceReady(uuid: string): void {
  const ready = process.env[READY_FD_ENV];
  const lock = process.env[LOCK_FD_ENV];
  delete process.env[READY_FD_ENV];
  delete process.env[LOCK_FD_ENV];
  if (lock !== undefined) {
    lockFd = Number(lock);
    writeProcInfo(lockFd, { UUID: uuid, PID: process.pid });
  }
  if (ready === undefined) return;
  try {
    fs.writeSync(Number(ready), "ready\n");
    fs.closeSync(Number(ready));
  } catch {
    // --detach went away; we are named in the lock file all the same.
  }
}

/**
 * `--detach`: take the container's lock, start a copy of this program in a new session with
 * `--no-detach` and the same arguments, holding the same lock; hand it our stdin (the
 * dispatcher's config, with secrets: never argv); once it is ready (it has recorded its PID in
 * the lock file), return `{"UUID":…,"PID":…}`. The dispatcher's SSH command ends here while the
 * container runs on. If the copy cannot start, the lock goes with it.
 */
export async function detach(options: {
  dir: string;
  uuid: string;
  argv: readonly string[];
  stdin: Buffer;
  /** Aborted when this process is told to stop (SIGTERM/SIGINT) while the copy starts. */
  signal: AbortSignal;
}): Promise<ProcInfo> {
  const fd = acquireContainerLock(options.dir, options.uuid);
  try {
    const logFile = path.join(options.dir, `crunch-run-${options.uuid}.log`);
    const out = fs.openSync(logFile, "a", 0o600);
    const script = process.argv[1];
    if (script === undefined) throw new Error("cannot tell which program to run in the background");
    const child = spawn(process.execPath, [script, "--no-detach", ...options.argv], {
      detached: true,
      stdio: ["pipe", out, out, "pipe", fd],
      env: { ...process.env, [READY_FD_ENV]: String(READY_FD), [LOCK_FD_ENV]: String(LOCK_FD) },
    });
    fs.closeSync(out);
    const ready = child.stdio[READY_FD];
    const pid = await new Promise<number>((resolve, reject) => {
      let said = "";
      const done = () => {
        clearTimeout(timer);
        options.signal.removeEventListener("abort", onAbort);
      };
      const fail = (why: string) => {
        done();
        reject(new Error(`the background runner for ${options.uuid} ${why}; see ${logFile}`));
      };
      // Not ready means it has not read its config yet, let alone touched the container.
      const onAbort = () => {
        child.kill("SIGKILL");
        fail(`was stopped before it was ready (${String(options.signal.reason)})`);
      };
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        fail(`did not start within ${READY_TIMEOUT_MS / 1000} s`);
      }, READY_TIMEOUT_MS);
      if (options.signal.aborted) onAbort();
      else options.signal.addEventListener("abort", onAbort, { once: true });
      child.once("error", (err) => fail(`could not be started: ${err.message}`));
      child.once("exit", (code, signal) =>
        fail(`exited before it was ready (${signal ?? `exit status ${code}`})`),
      );
      ready?.on("data", (d: Buffer) => {
        said += d.toString();
        if (!said.includes("ready\n")) return;
        done();
        resolve(child.pid!);
      });
      // A copy that exits early is reported above, not as a broken pipe.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(options.stdin);
    });
    child.removeAllListeners("exit");
    ready?.destroy();
    child.unref();
    return { UUID: options.uuid, PID: pid };
  } finally {
    // The background copy holds the lock now (or has died and released it with its copy).
    fs.closeSync(fd);
  }
}
