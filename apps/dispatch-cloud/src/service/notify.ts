import { execFile } from "node:child_process";
import { writeSync } from "node:fs";
import { describeError } from "../io.js";

/**
 * The environment variable through which the `arvados-dispatch-cloud` launcher hands over a
 * datagram socket already connected to `$NOTIFY_SOCKET`. Node cannot open unix datagram
 * sockets, but it can write(2) to an inherited one; the launcher exec()s Node, so the message
 * leaves from the service's main process, as systemd's default `NotifyAccess=main` requires,
 * whatever user the service runs as.
 */
export const NOTIFY_FD_ENV = "ARVADOS_DISPATCH_CLOUD_NOTIFY_FD";

export type NotifyOutcome =
  | { readonly sent: false; readonly reason: "no-socket" }
  | { readonly sent: true; readonly via: "inherited-socket" | "systemd-notify" }
  | { readonly sent: false; readonly reason: "failed"; readonly error: string };

export interface NotifyOptions {
  /** Gives up on the systemd-notify fallback after this long. */
  readonly timeoutMs?: number;
  /** The systemd-notify program (tests point it elsewhere). */
  readonly systemdNotify?: string;
}

/**
 * Tells systemd that the service is up (`READY=1`, as Arvados's services send once they
 * listen) and, with `status`, what it is doing (`STATUS=…`, shown by `systemctl status`).
 * Sending again is harmless: systemd takes the first READY=1 and the latest STATUS. Nothing to
 * do without `$NOTIFY_SOCKET` (not started by systemd as Type=notify).
 *
 * Through the launcher's inherited socket when there is one (kept open for later status
 * updates). Otherwise (the daemon started as `node …/cli.js run`) through `systemd-notify
 * --ready`: systemd 252 sends it with our PID as sender when it may (as root, with
 * CAP_SYS_ADMIN), else with its own, which only `NotifyAccess=all` accepts; it waits for systemd
 * to take the message, so it is not lost when systemd-notify exits first.
 */
export async function notifyReady(
  env: Readonly<Record<string, string | undefined>>,
  status?: string,
  options: NotifyOptions = {},
): Promise<NotifyOutcome> {
  const socket = env["NOTIFY_SOCKET"];
  if (socket === undefined || socket === "") return { sent: false, reason: "no-socket" };
  // A status is one line of the message: no newline may end it early.
  const oneLine = status?.replace(/\s+/g, " ");
  const fdText = env[NOTIFY_FD_ENV];
  if (fdText !== undefined && /^\d+$/.test(fdText)) {
    const fd = Number(fdText);
    try {
      writeSync(fd, oneLine === undefined ? "READY=1" : `READY=1\nSTATUS=${oneLine}`);
      return { sent: true, via: "inherited-socket" };
    } catch (err) {
      return {
        sent: false,
        reason: "failed",
        error: `${NOTIFY_FD_ENV}=${fd}: ${describeError(err)}`,
      };
    }
  }
  const program = options.systemdNotify ?? "systemd-notify";
  const args = oneLine === undefined ? ["--ready"] : ["--ready", `--status=${oneLine}`];
  return new Promise((resolve) => {
    execFile(
      program,
      args,
      { env: { ...env }, timeout: options.timeoutMs ?? 10_000 },
      (err, _stdout, stderr) => {
        if (err === null) resolve({ sent: true, via: "systemd-notify" });
        else {
          const detail = stderr.trim().split("\n")[0] ?? "";
          resolve({
            sent: false,
            reason: "failed",
            error: `${program} ${args.join(" ")}: ${detail === "" ? describeError(err) : detail}`,
          });
        }
      },
    );
  });
}
