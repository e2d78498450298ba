import type { Command } from "commander";
import type { CommandContext } from "../io.js";

/**
 * `demo` in the Debian package, which leaves out the embedded container API (SQLite, a native
 * module built for one Node ABI) that only the demo uses: the command says where to run it.
 */
export function registerDemoCommand(program: Command, ctx: CommandContext): void {
  program
    .command("demo")
    .description("not in this package: run `npm run demo` in a checkout")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      ctx.io.stderr(
        "the demo needs the embedded container API, which this package leaves out: run `npm run demo` in a checkout\n",
      );
      ctx.setExitCode(1);
    });
}
