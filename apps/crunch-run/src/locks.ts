import fs from "node:fs";
import path from "node:path";

/*
 * Lock files as crunch-run keeps them: `<dir>/crunch-run-<uuid>.lock` holding
 * `{"UUID":…,"PID":…}`, and the broken-node marker `<dir>/crunch-run-broken`.
 *
 * Node has no flock(2), so where Go's crunch-run asks "is the lock still held" we ask whether
 * the recorded processes are alive: the runner (PID) and, once started, the container's own
 * process group (ChildPID). A runner that is gone while its container process lives on is what
 * the dispatcher calls a stale run lock.
 */

export interface ProcInfo {
  readonly UUID: string;
  readonly PID: number;
  /** The container process (group leader), once started. */
  readonly ChildPID?: number;
}

export const BROKEN_MARKER = "crunch-run-broken";
export const PRICES_FILE = "crunch-run-prices.json";

export function lockPath(dir: string, uuid: string): string {
  return path.join(dir, `crunch-run-${uuid}.lock`);
}

export function isAlive(pid: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/**
 * A detached runner is reparented to init; where init does not reap (some container and VM
 * init programs), an exited runner lingers as a zombie that still answers signal 0.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state follows the parenthesised command name, which may itself contain ")".
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false;
  }
}

export function readProcInfo(file: string): ProcInfo | null {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
  if (text.trim() === "") return null;
  try {
    const info = JSON.parse(text) as Partial<ProcInfo>;
    if (typeof info.UUID !== "string" || typeof info.PID !== "number") return null;
    return info as ProcInfo;
  } catch {
    return null;
  }
}

export function writeProcInfo(file: string, info: ProcInfo): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(info)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export type LockState = "running" | "stale" | "abandoned";

export function lockState(info: ProcInfo): LockState {
  if (isAlive(info.PID)) return "running";
  if (isAlive(info.ChildPID)) return "stale";
  return "abandoned";
}

/**
 * Take the container's lock file for a new runner: fails if a live runner (or its container
 * process) holds it; an abandoned lock file is replaced.
 */
export function acquireLock(dir: string, uuid: string): { fd: number; file: string } {
  fs.mkdirSync(dir, { recursive: true });
  const file = lockPath(dir, uuid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return { fd: fs.openSync(file, "wx", 0o600), file };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // Exists: taken unless its holders are all gone.
      const info = readProcInfo(file);
      if (info !== null && lockState(info) !== "abandoned") {
        throw new Error(`lock ${file}: container ${uuid} is already running (pid ${info.PID})`, {
          cause: err,
        });
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new Error(`lock ${file}: could not take the lock`);
}
