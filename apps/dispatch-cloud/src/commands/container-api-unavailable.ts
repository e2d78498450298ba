import type { Command } from "commander";
import type { CommandContext } from "../io.js";

/**
 * `container-api` in the Debian package, which leaves out the embedded container API (SQLite, a
 * native module built for one Node ABI): the command says where to run it.
 */
export function registerContainerApiCommand(program: Command, ctx: CommandContext): void {
  program
    .command("container-api")
    .description("not in this package: run `bin/dispatch-cloud container-api` in a checkout")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      ctx.io.stderr(
        "the embedded container API is left out of this package: run `bin/dispatch-cloud container-api` in a checkout\n",
      );
      ctx.setExitCode(1);
    });
}
