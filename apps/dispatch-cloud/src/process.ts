import path from "node:path";
import { text } from "node:stream/consumers";
import type { CliIo } from "./io.js";

/**
 * The process around a command: streams, environment, and the signals that stop `run`.
 * Every entry point (the checkout's CLIs, the package's bundle) goes through here, so they
 * behave alike; only this module and the entry files touch `process`.
 */
export async function runProcess(
  command: (io: CliIo) => Promise<number>,
  extra: Pick<CliIo, "runnerBinaryPath" | "dashboardDir"> = {},
): Promise<void> {
  // The pinned EC2 SDK warns on every start that its releases after January 2027 will need
  // Node 22. We pin the release we run, so the notice tells an operator nothing.
  process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

  // SIGTERM (systemd stop) and SIGINT (Ctrl-C) ask `run` to stop cleanly; a second one of
  // either exits at once.
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
    stop.abort(new Error(`received ${sig}`));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  process.exitCode = await command({
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    readStdin: () => text(process.stdin),
    stopSignal: stop.signal,
    ...extra,
  });
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
}

/**
 * The name `arvados-dispatch-cloud` was started by, as Go's os.Args[0] (its launcher passes it
 * as Node's argv0); when started as `node file.js`, the plain name.
 */
export function serviceProgramName(): string {
  return path.basename(process.argv0).startsWith("arvados-dispatch-cloud")
    ? process.argv0
    : "arvados-dispatch-cloud";
}
