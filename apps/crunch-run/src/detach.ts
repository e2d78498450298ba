import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { acquireLock, writeProcInfo } from "./locks.js";

/** The environment variable that tells the background copy which fd to say "ready" on. */
export const READY_FD_ENV = "CRUNCH_RUN_READY_FD";
const READY_FD = 3;

/** How long the background copy may take to start before `--detach` gives up on it. */
const READY_TIMEOUT_MS = 60_000;

/**
 * Called by the background copy once its signal handlers are in place: from then on the lock
 * file may name it, because `--list`'s SIGUSR2 and the dispatcher's SIGTERM no longer kill it
 * silently (Node's default action for both is to exit).
 */
export function announceReady(): void {
  const fd = process.env[READY_FD_ENV];
  if (fd === undefined) return;
  delete process.env[READY_FD_ENV];
  try {
    fs.writeSync(Number(fd), "ready\n");
    fs.closeSync(Number(fd));
  } catch {
    // --detach went away; it removes the lock, and the dispatcher's next probe sees no runner.
  }
}

/**
 * `--detach`: take the container's lock file, start a copy of this program in a new session with
 * `--no-detach` and the same arguments, hand it our stdin (the dispatcher's config, with secrets:
 * never argv), wait until it has installed its signal handlers, record its PID, print
 * `{"UUID":…,"PID":…}` and return. The dispatcher's SSH command ends here while the container
 * runs on.
 *
 * The lock names this process (which handles the signals itself) until the copy says it is
 * ready: a `--list` probe sends SIGUSR2 to whatever PID the lock names, and a copy still starting
 * up would die of it without a word, leaving its container Locked or Running with no runner.
 */
export async function detach(options: {
  dir: string;
  uuid: string;
  argv: readonly string[];
  stdin: Buffer;
  /** Aborted when this process is told to stop (SIGTERM/SIGINT) while the copy starts. */
  signal: AbortSignal;
}): Promise<{ UUID: string; PID: number }> {
  const { fd, file } = acquireLock(options.dir, options.uuid);
  fs.closeSync(fd);
  writeProcInfo(file, { UUID: options.uuid, PID: process.pid });
  try {
    const logFile = path.join(options.dir, `crunch-run-${options.uuid}.log`);
    const out = fs.openSync(logFile, "a", 0o600);
    const script = process.argv[1];
    if (script === undefined) throw new Error("cannot tell which program to run in the background");
    const child = spawn(process.execPath, [script, "--no-detach", ...options.argv], {
      detached: true,
      stdio: ["pipe", out, out, "pipe"],
      env: { ...process.env, [READY_FD_ENV]: String(READY_FD) },
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
    writeProcInfo(file, { UUID: options.uuid, PID: pid });
    child.removeAllListeners("exit");
    ready?.destroy();
    child.unref();
    return { UUID: options.uuid, PID: pid };
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err;
  }
}
