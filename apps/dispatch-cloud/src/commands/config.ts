import { dumpConfig, loadConfig, type LoadResult } from "@dispatch-cloud/config";
import { InvalidArgumentError, type Command } from "commander";
import { checkDispatcherConfig, defaultDrivers } from "../daemon/index.js";
import { defaultConfigPath, type CommandContext } from "../io.js";

/** Go's strconv.ParseBool, which Arvados's `-strict=false` goes through. */
export function goBool(value: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  throw new InvalidArgumentError(`invalid boolean value ${JSON.stringify(value)}`);
}

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
      "check a config file: every problem on stderr; exit 1 if there is any (with -strict=false, only errors count)",
    )
    .option("--config <file>", configHelp)
    .option(
      "--strict [bool]",
      "strict validation: warnings make the exit status 1, as Arvados's config-check (default true)",
      goBool,
      true,
    )
    .action(async (opts: { config?: string; strict: boolean }) => {
      const result = await load(ctx, opts.config);
      if (!result.ok) {
        ctx.setExitCode(1);
        return;
      }
      const extra = checkDispatcherConfig(result.config, defaultDrivers());
      ctx.io.stderr([...extra.errors, ...extra.warnings].map((l) => `${l}\n`).join(""));
      const warned = result.warnings.length + extra.warnings.length > 0;
      ctx.setExitCode(extra.errors.length > 0 || (opts.strict && warned) ? 1 : 0);
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
