#!/usr/bin/env node
// `dispatch-cloud`: the admin CLI (run, instance, config-check, config-dump, demo) and the
// cluster client (submit, container, container-api).
import { runProcess } from "./process.js";
import { runCli } from "./program.js";

// A reader that goes away (`dispatch-cloud container logs X | head`) just ends the output.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  process.exit(process.exitCode ?? 0);
});

await runProcess((io) => runCli(process.argv.slice(2), io));
