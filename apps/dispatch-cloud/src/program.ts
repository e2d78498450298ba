import { Command, CommanderError } from "commander";
import { registerConfigCommands } from "./commands/config.js";
import { registerContainerApiCommand } from "./commands/container-api.js";
import { registerContainerCommands } from "./commands/container.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerInstanceCommands } from "./commands/instance.js";
import { registerSubmitCommand } from "./commands/submit.js";
import { describeError, type CliIo, type CommandContext } from "./io.js";

/** Exit status for a command-line usage error, as Go's flag package uses. */
export const USAGE_ERROR = 2;

/**
 * Go tools take long flags with one dash (`-config FILE`); operators' scripts do too. Rewrite
 * `-name` and `-name=value` to commander's `--name` form; single letters stay short flags.
 * Nothing after `--` is a flag (`submit -- ls -la`).
 */
export function goStyleFlags(argv: readonly string[]): string[] {
  const end = argv.indexOf("--");
  return argv.map((a, i) =>
    (end < 0 || i < end) && /^-[a-z][a-z0-9-]+(=.*)?$/i.test(a) ? `-${a}` : a,
  );
}

/** Commands that need none of the daemon (the demo loads it itself). */
const LIGHT_COMMANDS: ReadonlySet<string> = new Set([
  "submit",
  "container",
  "container-api",
  "instance",
  "config-check",
  "config-dump",
  "demo",
]);

type Register = (program: Command, ctx: CommandContext) => void;

function buildProgram(ctx: CommandContext, registerRun?: Register): Command {
  const program = new Command("dispatch-cloud")
    .description("a drop-in replacement for arvados-dispatch-cloud")
    .exitOverride()
    .configureOutput({ writeOut: ctx.io.stdout, writeErr: ctx.io.stderr })
    .showSuggestionAfterError(true);
  // Each family of subcommands registers itself.
  registerRun?.(program, ctx);
  registerInstanceCommands(program, ctx);
  registerConfigCommands(program, ctx);
  registerDemoCommand(program, ctx);
  registerContainerApiCommand(program, ctx);
  registerSubmitCommand(program, ctx);
  registerContainerCommands(program, ctx);
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
  // `run` is left out of this program (it would load the daemon) but is a command all the same.
  return [
    "run",
    ...buildProgram({ io, setExitCode: () => undefined }).commands.map((c) => c.name()),
  ];
}

/** Runs the CLI and returns the exit status. Never throws, never prints a stack trace. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const ctx: CommandContext = { io, setExitCode: (c) => (exitCode = c) };
  const args = goStyleFlags(argv);
  // The daemon loads every cloud SDK, which takes seconds: only `run` (and the full help, or a
  // mistyped command's suggestions) loads it.
  const registerRun = LIGHT_COMMANDS.has(args[0] ?? "")
    ? undefined
    : (await import("./commands/run.js")).registerRunCommand;
  const program = buildProgram(ctx, registerRun);
  try {
    await program.parseAsync(args, { from: "user" });
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
