#!/usr/bin/env node
// `arvados-dispatch-cloud`: the service as Arvados's systemd unit runs it (see service/command.ts).
// Started by bin/arvados-dispatch-cloud, which passes its own name as argv[0] (Node's argv0)
// and, under systemd, the notification socket.
import { runProcess, serviceProgramName } from "./process.js";
import { runArvadosCommand } from "./service/command.js";

await runProcess((io) => runArvadosCommand(process.argv.slice(2), io, serviceProgramName()));
