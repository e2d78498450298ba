// Bundles the runner into one self-contained file, the program the dispatcher copies to each VM
// (DeployRunnerBinary) and runs as `crunch-run~<md5>`.
import { build } from "esbuild";

await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/crunch-run.cjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  conditions: ["source"],
  banner: { js: "#!/usr/bin/env node" },
  legalComments: "none",
  logLevel: "warning",
});
