// The Debian package's entry: `arvados-dispatch-cloud` with the runner the package installs
// and the dashboard's files beside this bundle (/usr/lib/arvados-dispatch-cloud/crunch-run.cjs,
// .../dashboard/).
import { fileURLToPath } from "node:url";
import { runProcess, serviceProgramName } from "./process.js";
import { runArvadosCommand } from "./service/command.js";

await runProcess((io) => runArvadosCommand(process.argv.slice(2), io, serviceProgramName()), {
  runnerBinaryPath: fileURLToPath(new URL("./crunch-run.cjs", import.meta.url)),
  dashboardDir: fileURLToPath(new URL("./dashboard/", import.meta.url)),
});
