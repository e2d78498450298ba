#!/usr/bin/env node
import { text } from "node:stream/consumers";
import { runCli } from "./program.js";

// SIGTERM (systemd stop) and SIGINT (Ctrl-C) ask `run` to stop cleanly; a second one of either
// exits at once.
const stop = new AbortController();
const onSignal = (sig: NodeJS.Signals): void => {
  if (stop.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
  stop.abort(new Error(`received ${sig}`));
};
process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  readStdin: () => text(process.stdin),
  stopSignal: stop.signal,
});
process.off("SIGTERM", onSignal);
process.off("SIGINT", onSignal);
