import { ArvadosApiError } from "@dispatch-cloud/arvados-client";
import type { Command } from "commander";
import type { CommandContext } from "../io.js";
import { ClientError, explainApiError, resolveTarget, TARGET_HELP, type Target } from "./target.js";

/** Exit status when Ctrl-C (or SIGTERM) ends a wait or a follow: the shell's for an interrupted command. */
export const INTERRUPTED = 130;

export const CONFIG_HELP =
  "config file; - reads standard input (default: $ARVADOS_CONFIG; see below for the environment)";

/**
 * Makes `cmd` (and the subcommands added to it afterwards) report a usage error as one line
 * with exit status 1, like every other failure of the client commands, instead of commander's
 * two-line message and the admin commands' status 2.
 */
export function clientCommand(cmd: Command, targetHelp = true): Command {
  cmd.configureOutput({ outputError: () => undefined }).exitOverride((err) => {
    if (err.exitCode === 0 || err.code.startsWith("commander.help")) throw err;
    throw new ClientError(
      err.message
        .replace(/^error: /, "")
        .replace(/\s*\n\s*/g, " ")
        .trim(),
    );
  });
  return targetHelp ? cmd.addHelpText("after", TARGET_HELP) : cmd;
}

/**
 * Runs `fn` against the cluster the options and environment name; API failures become one line
 * (printed by the program as `dispatch-cloud: ...`, exit status 1).
 */
export async function withTarget(
  ctx: CommandContext,
  configFlag: string | undefined,
  fn: (target: Target) => Promise<void>,
): Promise<void> {
  const target = await resolveTarget(ctx.io, configFlag);
  try {
    await fn(target);
  } catch (err) {
    if (err instanceof ArvadosApiError) {
      throw new ClientError(explainApiError(err, target.tokenSource), { cause: err });
    }
    throw err;
  } finally {
    await target.close();
  }
}

/** commander argument parsers that fail with one line naming the flag. */
export function positiveInt(flag: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= 1 && n <= max)) {
      throw new ClientError(
        `${flag} ${JSON.stringify(value)}: expected a whole number from 1 to ${max}`,
      );
    }
    return n;
  };
}
