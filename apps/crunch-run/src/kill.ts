import fs from "node:fs";
import os from "node:os";
import { decodeProcInfo, isAlive, lockPath } from "./locks.js";

export type KillResult =
  | { readonly exitCode: 0; readonly message: string | null }
  | { readonly exitCode: 1; readonly message: string };

const POLL_MS = 10;
const WAIT_MS = 1000;

function signalName(n: number): string {
  const found = Object.entries(os.constants.signals).find(([, v]) => v === n);
  return found?.[0] ?? `signal ${n}`;
}

/**
 * `--kill N <uuid>`, as Arvados's crunch-run does it: send signal N to the PID in the
 * container's lock file, then wait up to a second for that process to go. No lock file means
 * nothing runs: success. An empty one (a runner still starting) or one naming another
 * container is an error, so the dispatcher tries again later. Exit 1 also when the process
 * outlives the second.
 */
export async function killContainer(
  dir: string,
  uuid: string,
  signal: number,
): Promise<KillResult> {
  const file = lockPath(dir, uuid);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { exitCode: 0, message: null };
    return { exitCode: 1, message: `open ${file}: ${(err as Error).message}` };
  }
  const decoded = decodeProcInfo(text);
  if (!decoded.ok) return { exitCode: 1, message: `decode ${file}: ${decoded.error}` };
  const { UUID, PID } = decoded.info;
  if (UUID !== uuid || PID === 0) {
    return { exitCode: 1, message: `${file}: bogus procinfo: {UUID:${UUID} PID:${PID}}` };
  }
  try {
    process.kill(PID, signal);
  } catch (err) {
    return { exitCode: 0, message: `${uuid}: pid ${PID}: ${(err as Error).message}` };
  }
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    // Unlike a bare signal 0, this sees an exited but unreaped runner (a zombie) as gone.
    if (!isAlive(PID)) return { exitCode: 0, message: `${uuid}: pid ${PID}: process exited` };
  }
  return {
    exitCode: 1,
    message: `${uuid}: pid ${PID}: sent signal ${signal} (${signalName(signal)}) but process is still alive`,
  };
}
