import type { Command } from "commander";
import { defaultDataDir, runnerBundlePath } from "../demo/paths.js";
import type { CommandContext } from "../io.js";

/**
 * `demo`: the whole system on this machine: the embedded container API (SQLite in the data
 * directory), the loopback driver, the bundled crunch-run and the management API on localhost.
 */
export function registerDemoCommand(program: Command, ctx: CommandContext): void {
  program
    .command("demo")
    .description(
      "run a dispatcher with an embedded container API on this machine (loopback driver) and submit `echo Hello, Crunch!`; with --keep-running, run until Ctrl-C instead",
    )
    .option("--data-dir <dir>", "where the config, database and logs live", defaultDataDir())
    .option(
      "--keep-running",
      "start everything and run until SIGINT/SIGTERM, printing how to use it",
    )
    .action(async (opts: { dataDir: string; keepRunning?: boolean }) => {
      const abort = new AbortController();
      const onSignal = (): void => abort.abort(new Error("interrupted"));
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        // Loaded here: it brings the whole daemon, which the other commands do without.
        const { runDemo } = await import("../demo/run.js");
        const code = await runDemo({
          dataDir: opts.dataDir,
          keepRunning: opts.keepRunning === true,
          runnerPath: runnerBundlePath(),
          out: ctx.io.stdout,
          err: ctx.io.stderr,
          signal: abort.signal,
        });
        ctx.setExitCode(code);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
