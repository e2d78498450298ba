#!/usr/bin/env node
import { text } from "node:stream/consumers";
import { runCli } from "./program.js";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  readStdin: () => text(process.stdin),
});
