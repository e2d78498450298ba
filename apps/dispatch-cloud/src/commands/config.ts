import { dumpConfig, loadConfig, type LoadResult } from "@dispatch-cloud/config";
import type { Command } from "commander";
import { bundledRunnerPath, runnerChoiceFor } from "../daemon/index.js";
import { defaultConfigPath, type CommandContext } from "../io.js";

const configHelp =
  "config file; - reads standard input (default: $ARVADOS_CONFIG, else /etc/arvados/config.yml)";

async function load(ctx: CommandContext, file: string | undefined): Promise<LoadResult> {
  const result = await loadConfig({
    path: file ?? defaultConfigPath(ctx.io.env),
    readStdin: ctx.io.readStdin,
  });
  const lines = [...(result.ok ? [] : result.errors), ...result.warnings].map((p) => `${p.text}\n`);
  ctx.io.stderr(lines.join(""));
  return result;
}

/** `config-check` and `config-dump`. */
export function registerConfigCommands(program: Command, ctx: CommandContext): void {
  program
    .command("config-check")
    .description(
      "check a config file: exit 0 if it is usable (warnings on stderr), 1 with every problem otherwise",
    )
    .option("--config <file>", configHelp)
    .action(async (opts: { config?: string }) => {
      const result = await load(ctx, opts.config);
      if (result.ok) {
        ctx.io.stdout(`${runnerChoiceFor(result.config.cluster, bundledRunnerPath()).summary}\n`);
      }
      ctx.setExitCode(result.ok ? 0 : 1);
    });

  program
    .command("config-dump")
    .description("print the effective config as YAML: defaults filled in, secrets redacted")
    .option("--config <file>", configHelp)
    .action(async (opts: { config?: string }) => {
      const result = await load(ctx, opts.config);
      if (!result.ok) {
        ctx.setExitCode(1);
        return;
      }
      ctx.io.stdout(dumpConfig(result.config));
      ctx.setExitCode(0);
    });
}
