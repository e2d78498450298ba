import { Command, CommanderError } from "commander";
import { registerConfigCommands } from "./commands/config.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerInstanceCommands } from "./commands/instance.js";
import { registerRunCommand } from "./commands/run.js";
import { describeError, type CliIo, type CommandContext } from "./io.js";

/** Exit status for a command-line usage error, as Go's flag package uses. */
export const USAGE_ERROR = 2;

/**
 * Go tools take long flags with one dash (`-config FILE`); operators' scripts do too. Rewrite
 * `-name` and `-name=value` to commander's `--name` form; single letters stay short flags.
 */
export function goStyleFlags(argv: readonly string[]): string[] {
  return argv.map((a) => (/^-[a-z][a-z0-9-]+(=.*)?$/i.test(a) ? `-${a}` : a));
}

function buildProgram(ctx: CommandContext): Command {
  const program = new Command("dispatch-cloud")
    .description("a drop-in replacement for arvados-dispatch-cloud")
    .exitOverride()
    .configureOutput({ writeOut: ctx.io.stdout, writeErr: ctx.io.stderr })
    .showSuggestionAfterError(true);
  // Each family of subcommands registers itself.
  registerRunCommand(program, ctx);
  registerInstanceCommands(program, ctx);
  registerConfigCommands(program, ctx);
  registerDemoCommand(program, ctx);
  return program;
}

/** The subcommands' names (`run`, `instance`, `config-check`, ...). */
export function commandNames(): string[] {
  const io: CliIo = {
    stdout: () => undefined,
    stderr: () => undefined,
    env: {},
    readStdin: () => Promise.resolve(""),
  };
  return buildProgram({ io, setExitCode: () => undefined }).commands.map((c) => c.name());
}

/** Runs the CLI and returns the exit status. Never throws, never prints a stack trace. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const ctx: CommandContext = { io, setExitCode: (c) => (exitCode = c) };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(goStyleFlags(argv), { from: "user" });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every usage error (unknown command or flag, no command) exits 2.
      return err.exitCode === 0 ? 0 : USAGE_ERROR;
    }
    io.stderr(`dispatch-cloud: ${describeError(err)}\n`);
    return 1;
  }
}
