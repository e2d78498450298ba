import fs from "node:fs";
import path from "node:path";
import { BROKEN_MARKER, PRICES_FILE, lockState, readProcInfo } from "./locks.js";

/**
 * `--list`: one line per container with a live runner, `<uuid> stale` where the runner is gone
 * but its container process is not, and `broken` while the broken-node marker exists.
 * Abandoned lock files are removed. With `prices`, the price history is saved first so running
 * containers can pick it up (they reload it on SIGUSR2, which `--list` sends them).
 */
export function listContainers(dir: string, prices: Buffer | null): string[] {
  if (prices !== null && prices.length > 0) {
    const target = path.join(dir, PRICES_FILE);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(`${target}.tmp`, prices);
    fs.renameSync(`${target}.tmp`, target);
  }
  const lines: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return lines;
    throw err;
  }
  if (names.includes(BROKEN_MARKER)) lines.push("broken");
  for (const name of names.sort()) {
    const m = /^crunch-run-(.+)\.lock$/.exec(name);
    if (m === null) continue;
    const file = path.join(dir, name);
    const info = readProcInfo(file);
    if (info === null) continue;
    switch (lockState(info)) {
      case "running":
        try {
          process.kill(info.PID, "SIGUSR2");
        } catch {
          // Exited between the check and the signal: the next probe will see it gone.
        }
        lines.push(info.UUID);
        break;
      case "stale":
        lines.push(`${info.UUID} stale`);
        break;
      case "abandoned":
        fs.rmSync(file, { force: true });
        break;
    }
  }
  return lines;
}
