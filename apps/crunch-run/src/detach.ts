import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { acquireLock, writeProcInfo } from "./locks.js";

/**
 * `--detach`: take the container's lock file, start a copy of this program in a new session with
 * `--no-detach` and the same arguments, hand it our stdin (the dispatcher's config, with secrets:
 * never argv), record its PID, print `{"UUID":…,"PID":…}` and return. The dispatcher's SSH
 * command ends here while the container runs on.
 */
export async function detach(options: {
  dir: string;
  uuid: string;
  argv: readonly string[];
  stdin: Buffer;
}): Promise<{ UUID: string; PID: number }> {
  const { fd, file } = acquireLock(options.dir, options.uuid);
  fs.closeSync(fd);
  // Hold the lock under our own PID until the background copy's PID is known.
  writeProcInfo(file, { UUID: options.uuid, PID: process.pid });
  const logFile = path.join(options.dir, `crunch-run-${options.uuid}.log`);
  const out = fs.openSync(logFile, "a", 0o600);
  const script = process.argv[1];
  if (script === undefined) throw new Error("cannot tell which program to run in the background");
  const child = spawn(process.execPath, [script, "--no-detach", ...options.argv], {
    detached: true,
    stdio: ["pipe", out, out],
  });
  fs.closeSync(out);
  const pid = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("spawn", () => resolve(child.pid!));
  });
  writeProcInfo(file, { UUID: options.uuid, PID: pid });
  child.stdin?.end(options.stdin);
  child.unref();
  return { UUID: options.uuid, PID: pid };
}
