#!/usr/bin/env node
import { text } from "node:stream/consumers";
import { runCli } from "./program.js";

// The pinned EC2 SDK warns on every start that its releases after January 2027 will need
// Node 22. We pin the release we run, so the notice tells an operator nothing.
process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";

// SIGTERM (systemd stop) and SIGINT (Ctrl-C) ask `run` to stop cleanly; a second one of either
// exits at once.
const stop = new AbortController();
const onSignal = (sig: NodeJS.Signals): void => {
  if (stop.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
  stop.abort(new Error(`received ${sig}`));
};
process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);

// A reader that goes away (`dispatch-cloud container logs X | head`) just ends the output.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  process.exit(process.exitCode ?? 0);
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  readStdin: () => text(process.stdin),
  stopSignal: stop.signal,
});
process.off("SIGTERM", onSignal);
process.off("SIGINT", onSignal);
