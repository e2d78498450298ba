import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/*
 * Arvados's Go crunch-run's side of the lock-file protocol, as a separate process that takes
 * flock(2) itself (go_lock_peer.py, through Python's fcntl): what a Go crunch-run or a Go
 * dispatcher's `--list` does to the same lock directory.
 */

const script = fileURLToPath(new URL("./go_lock_peer.py", import.meta.url));
/** Debian's interpreter (the tests' peers already need it); not whatever python3 is first on PATH. */
const PYTHON = "/usr/bin/python3";

export interface GoHolder {
  readonly process: ChildProcess;
  /** Resolves with the next line the holder prints ("usr2" when it receives SIGUSR2). */
  nextLine(): Promise<string>;
}

/**
 * A Go-style runner holding the container's lock, recording `pid` (default: its own) in it.
 * Resolves once it holds the lock; rejects if the lock was busy.
 */
export async function goHolder(dir: string, uuid: string, pid?: number): Promise<GoHolder> {
  const args = [script, "hold", dir, uuid, ...(pid === undefined ? [] : [String(pid)])];
  const child = spawn(PYTHON, args, { stdio: ["ignore", "pipe", "inherit"] });
  const waiting: ((line: string) => void)[] = [];
  const lines: string[] = [];
  let buf = "";
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const nextLine = () =>
    new Promise<string>((resolve) => {
      const l = lines.shift();
      if (l !== undefined) resolve(l);
      else waiting.push(resolve);
    });
  const first = await nextLine();
  if (first !== "locked") throw new Error(`the Go-style holder said ${JSON.stringify(first)}`);
  return { process: child, nextLine };
}

/** A Go `--list`'s shared, non-blocking try on one lock file. */
export function goTryShared(file: string): "free" | "held" {
  return execFileSync(PYTHON, [script, "try-shared", file], { encoding: "utf8" }).trim() as
    "free" | "held";
}

/** What Go's `crunch-run --list` prints for this lock directory. */
export function goList(dir: string): string {
  return execFileSync(PYTHON, [script, "list", dir], { encoding: "utf8" });
}
