import { spawnSync } from "node:child_process";

/*
 * flock(2) for Node, which has no binding for it, through util-linux's flock(1) run on a file
 * descriptor we own: `flock -x 3` with our descriptor as the child's fd 3 locks the open file
 * description the two processes share, and the lock stays with that description (so with us)
 * after flock(1) exits, exactly as if we had called flock(2) ourselves. util-linux is essential
 * on Debian and Ubuntu, so every compute image has flock(1).
 *
 * Why not the alternatives (measured on a 2-core VM, see docs/operations.md):
 * - flock(1) as the runner's parent (`flock -xn FILE node runner`) holds the lock in a process
 *   that is not the one named in the lock file, cannot hold crunch-run's directory lock across
 *   "create the file, lock it", and keeps one more process alive per container;
 * - a native module would be the fastest (a syscall instead of a ~5 ms process start), but the
 *   runner is one JavaScript file copied to VMs of any architecture; a compiled addon is not.
 * A lock taken this way costs one short process per operation, a few per `--detach` or
 * `--list`, which only run a few times a minute.
 */

export type FlockMode = "exclusive" | "shared";

/** Exit status flock(1) gives for "held by someone else" (-E), distinct from its other errors. */
const CONFLICT = 75;
const CHILD_FD = 3;

export class FlockError extends Error {
  override readonly name = "FlockError";
}

function run(fd: number, args: string[]): number {
  const r = spawnSync("flock", [...args, String(CHILD_FD)], {
    stdio: ["ignore", "ignore", "pipe", fd],
    encoding: "utf8",
  });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    throw new FlockError(
      code === "ENOENT"
        ? "flock(1) is not installed (it comes with util-linux; crunch-run needs it for its lock files)"
        : `cannot run flock(1): ${r.error.message}`,
    );
  }
  if (r.status === 0 || r.status === CONFLICT) return r.status;
  throw new FlockError(
    `flock(1) failed (${r.signal ?? `exit status ${r.status}`}): ${(r.stderr ?? "").trim()}`,
  );
}

/**
 * Takes a lock on the open file description behind `fd`, waiting for it unless `wait` is
 * false. Returns false when `wait` is false and someone else holds a conflicting lock. The lock
 * lasts until every descriptor sharing that description is closed (this process's and any
 * child's that inherited it) or it is released with `unlock`.
 */
export function flock(fd: number, mode: FlockMode, wait: boolean): boolean {
  const args = ["-E", String(CONFLICT), mode === "exclusive" ? "-x" : "-s"];
  if (!wait) args.push("-n");
  return run(fd, args) === 0;
}
