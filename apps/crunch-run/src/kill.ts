import { isAlive, lockPath, readProcInfo } from "./locks.js";

export type KillResult =
  | { readonly exitCode: 0; readonly message: string | null }
  | { readonly exitCode: 1; readonly message: string };

const POLL_MS = 10;
const WAIT_MS = 1000;

/**
 * `--kill N <uuid>`: signal the container's runner and wait up to a second for it to exit.
 * No lock file means nothing runs: success. Exit 1 tells the dispatcher to try again later.
 */
export async function killContainer(
  dir: string,
  uuid: string,
  signal: number,
): Promise<KillResult> {
  const info = readProcInfo(lockPath(dir, uuid));
  if (info === null) return { exitCode: 0, message: null };
  try {
    process.kill(info.PID, signal);
  } catch (err) {
    return { exitCode: 0, message: `${uuid}: pid ${info.PID}: ${(err as Error).message}` };
  }
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!isAlive(info.PID)) {
      return { exitCode: 0, message: `${uuid}: pid ${info.PID}: process exited` };
    }
  }
  return {
    exitCode: 1,
    message: `${uuid}: sent signal ${signal} to pid ${info.PID} but process is still alive`,
  };
}
