import fs from "node:fs";
import path from "node:path";
import { flock } from "./flock.js";
import {
  BROKEN_MARKER,
  LOCK_PREFIX,
  LOCK_SUFFIX,
  PRICES_FILE,
  decodeProcInfo,
  readFd,
  withDirLock,
} from "./locks.js";

export interface ListResult {
  /** What goes to stdout, one line each. */
  readonly lines: readonly string[];
  /** Problems with single files (reported, then skipped), and the error that stopped the scan. */
  readonly errors: readonly string[];
  readonly exitCode: 0 | 1;
}

/**
 * `--list`, by the rules of Arvados's crunch-run so that its output means the same whichever
 * runner wrote the lock files: walking the lock directory in name order,
 * - `crunch-run-broken` prints `broken`;
 * - an empty lock file is a runner still starting: skipped;
 * - a lock file whose lock can be shared (nobody holds it exclusively) is abandoned: deleted
 *   under the directory lock, not printed;
 * - otherwise SIGUSR2 goes to the recorded PID (a running crunch-run reloads its prices): if it
 *   arrives the UUID is printed, if not the lock is held by something else (a process that
 *   inherited it) and `<uuid> stale` is printed.
 * With `prices`, the price history is saved first (atomically) for the runners to read.
 */
export function listContainers(dir: string, prices: Buffer | null): ListResult {
  const lines: string[] = [];
  const errors: string[] = [];
  if (prices !== null && prices.length > 0) savePrices(dir, prices, errors);
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { lines, errors, exitCode: 0 };
    errors.push(`read ${dir}: ${(err as Error).message}`);
    return { lines, errors, exitCode: 1 };
  }
  for (const name of names) {
    const file = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      continue; // gone since the directory was read
    }
    if (st.isDirectory()) continue;
    if (name === BROKEN_MARKER) {
      lines.push("broken");
      continue;
    }
    if (!name.startsWith(LOCK_PREFIX) || !name.endsWith(LOCK_SUFFIX) || st.size === 0) continue;
    try {
      const line = probeLockFile(dir, file, errors);
      if (line !== null) lines.push(line);
    } catch (err) {
      // Only the directory lock fails this way; the scan cannot go on safely without it.
      errors.push((err as Error).message);
      return { lines, errors, exitCode: 1 };
    }
  }
  return { lines, errors, exitCode: 0 };
}

function probeLockFile(dir: string, file: string, errors: string[]): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return null;
  }
  try {
    const abandoned = withDirLock(dir, () => {
      if (!flock(fd, "shared", false)) return false;
      try {
        fs.unlinkSync(file);
      } catch (err) {
        errors.push(`unlink ${file}: ${(err as Error).message}`);
      }
      return true;
    });
    if (abandoned) return null;
    const decoded = decodeProcInfo(readFd(fd));
    if (!decoded.ok) {
      errors.push(`${file}: ${decoded.error}`);
      return null;
    }
    const { UUID, PID } = decoded.info;
    if (UUID === "" || PID === 0) {
      errors.push(`${file}: bogus procinfo: {UUID:${UUID} PID:${PID}}`);
      return null;
    }
    try {
      process.kill(PID, "SIGUSR2");
    } catch {
      // The runner is gone but its lock is still held: something it started inherited it.
      return `${UUID} stale`;
    }
    return UUID;
  } finally {
    fs.closeSync(fd);
  }
}

function savePrices(dir: string, prices: Buffer, errors: string[]): void {
  const target = path.join(dir, PRICES_FILE);
  const tmp = `${target}~${process.pid}`;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(tmp, prices, { mode: 0o777 });
    fs.renameSync(tmp, target);
  } catch (err) {
    errors.push(`error writing price data to ${target}: ${(err as Error).message}`);
    fs.rmSync(tmp, { force: true });
  }
}
