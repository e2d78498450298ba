#!/usr/bin/env node
// `dispatch-cloud`: the admin CLI (run, instance, config-check, config-dump, demo).
import { runProcess } from "./process.js";
import { runCli } from "./program.js";

await runProcess((io) => runCli(process.argv.slice(2), io));
