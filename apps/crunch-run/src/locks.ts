import fs from "node:fs";
import path from "node:path";
import { flock } from "./flock.js";

/*
 * crunch-run's files in its lock directory (/var/lock), kept exactly as Arvados's Go crunch-run
 * keeps them, so that either dispatcher sees the other's runners:
 * - `crunch-run-<uuid>.lock`: the runner holds an exclusive flock(2) on it for its whole life
 *   (processes it starts may inherit the lock); it holds `{"UUID":…,"PID":…}` and a newline,
 *   or nothing while the runner starts;
 * - `crunch-run-all.lock`: held exclusively while a container's lock file is created and locked,
 *   or judged abandoned and deleted, so the two never race;
 * - `crunch-run-broken`: the node cannot run containers;
 * - `crunch-run-prices.json`: the instance's price history, saved by `--list --stdin-prices`.
 */

export interface ProcInfo {
  readonly UUID: string;
  readonly PID: number;
}

export const LOCK_PREFIX = "crunch-run-";
export const LOCK_SUFFIX = ".lock";
export const BROKEN_MARKER = "crunch-run-broken";
export const PRICES_FILE = "crunch-run-prices.json";
const DIR_LOCK = `${LOCK_PREFIX}all${LOCK_SUFFIX}`;

export function lockPath(dir: string, uuid: string): string {
  return path.join(dir, `${LOCK_PREFIX}${uuid}${LOCK_SUFFIX}`);
}

/** What the lock file holds: one JSON line, as Go's json.Encoder writes it. */
export function encodeProcInfo(info: ProcInfo): string {
  return `${JSON.stringify({ UUID: info.UUID, PID: info.PID })}\n`;
}

/** Replaces the lock file's content in place (a rename would leave the lock on the old file). */
export function writeProcInfo(fd: number, info: ProcInfo): void {
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, encodeProcInfo(info), 0);
}

/**
 * Decodes a lock file's content as Go decodes it into `{UUID string; PID int}`: absent fields
 * are zero, fields of the wrong type are an error, other fields are ignored.
 */
export function decodeProcInfo(
  text: string,
): { ok: true; info: ProcInfo } | { ok: false; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: text.trim() === "" ? "EOF" : (err as Error).message };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { ok: false, error: "not a JSON object" };
  }
  const { UUID = "", PID = 0 } = v as Record<string, unknown>;
  if (typeof UUID !== "string") return { ok: false, error: "UUID is not a string" };
  if (typeof PID !== "number" || !Number.isInteger(PID)) {
    return { ok: false, error: "PID is not an integer" };
  }
  return { ok: true, info: { UUID, PID } };
}

/** Reads what an open lock file holds, from the start. */
export function readFd(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(4096);
  for (let pos = 0; ;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
    pos += n;
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Runs `f` holding the directory lock, which orders lock-file creation and clean-up. */
export function withDirLock<T>(dir: string, f: () => T): T {
  const file = path.join(dir, DIR_LOCK);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_RDWR, 0o700);
  } catch (err) {
    throw new Error(`open ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    flock(fd, "exclusive", true);
    return f();
  } finally {
    // Our descriptor was the lock's last holder (flock(1) has exited): closing releases it.
    fs.closeSync(fd);
  }
}

export class LockHeldError extends Error {
  override readonly name = "LockHeldError";
}

/**
 * Takes the container's lock for a new runner: creates the lock file if needed and locks it
 * exclusively without waiting, under the directory lock so that `--list` cannot judge the new
 * file abandoned and delete it between the two steps. Fails with LockHeldError while another
 * runner (or a process that inherited its lock) holds it. The content is emptied: the runner
 * writes its procinfo once it can take the signals `--list` and `--kill` send.
 */
export function acquireContainerLock(dir: string, uuid: string): number {
  fs.mkdirSync(dir, { recursive: true });
  const file = lockPath(dir, uuid);
  const fd = withDirLock(dir, () => {
    let lockFd: number;
    try {
      lockFd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_RDWR, 0o700);
    } catch (err) {
      throw new Error(`open ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      if (!flock(lockFd, "exclusive", false)) {
        throw new LockHeldError(`lock ${file}: resource temporarily unavailable`);
      }
    } catch (err) {
      fs.closeSync(lockFd);
      throw err;
    }
    return lockFd;
  });
  fs.ftruncateSync(fd, 0);
  return fd;
}

/** True if the process exists (a zombie counts as gone: it can no longer do anything). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state follows the parenthesised command name, which may itself contain ")".
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}
