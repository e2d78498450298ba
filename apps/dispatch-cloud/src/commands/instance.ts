import { loadConfig } from "@dispatch-cloud/config";
import type { Command } from "commander";
import {
  instanceAction,
  listInstances,
  type AdminTarget,
  type InstanceAction,
} from "../instance-cli.js";
import { defaultConfigPath, type CommandContext } from "../io.js";

const configHelp =
  "config file; - reads standard input (default: $ARVADOS_CONFIG, else /etc/arvados/config.yml)";

/** The dispatchers to talk to, from the config; null (after printing why) if unusable. */
async function target(ctx: CommandContext, file: string | undefined): Promise<AdminTarget | null> {
  const result = await loadConfig({
    path: file ?? defaultConfigPath(ctx.io.env),
    readStdin: ctx.io.readStdin,
  });
  if (!result.ok) {
    ctx.io.stderr(result.errors.map((p) => `${p.text}\n`).join(""));
    return null;
  }
  const urls = Object.keys(result.config.cluster.Services["DispatchCloud"]?.InternalURLs ?? {});
  if (urls.length === 0) {
    ctx.io.stderr("no Services.DispatchCloud.InternalURLs configured\n");
    return null;
  }
  return { urls, managementToken: result.config.cluster.ManagementToken };
}

/** `instance list|hold|drain|run|kill`, as `arvados-server instance` (dispatcher spec §4.7). */
export function registerInstanceCommands(program: Command, ctx: CommandContext): void {
  const instance = program
    .command("instance")
    .description("list the dispatcher's cloud instances, or change what it does with some");

  instance
    .command("list")
    .description("print one tab-separated line per instance of every dispatcher")
    .option("--config <file>", configHelp)
    .option("--header", "print a header line first")
    .action(async (opts: { config?: string; header?: boolean }) => {
      const t = await target(ctx, opts.config);
      if (t === null) return ctx.setExitCode(1);
      ctx.setExitCode(await listInstances(t, { header: opts.header === true }, ctx.io));
    });

  const actions: Record<Exclude<InstanceAction, "kill">, string> = {
    hold: "keep the instances: no automatic shutdown, no new containers",
    drain: "shut the instances down as soon as nothing runs on them; no new containers",
    run: "return the instances to normal behaviour",
  };
  for (const [action, help] of Object.entries(actions) as [InstanceAction, string][]) {
    instance
      .command(action)
      .description(help)
      .argument("[ids...]", "instance IDs")
      .option("--config <file>", configHelp)
      .action(async (ids: string[], opts: { config?: string }) => {
        if (ids.length === 0) {
          ctx.io.stderr("usage error: no instance IDs provided\n");
          return ctx.setExitCode(2);
        }
        const t = await target(ctx, opts.config);
        if (t === null) return ctx.setExitCode(1);
        ctx.setExitCode(await instanceAction(t, action, ids, "", ctx.io));
      });
  }
  instance
    .command("kill")
    .description("shut the instances down now; containers running there are lost")
    .argument("[ids...]", "instance IDs")
    .option("--config <file>", configHelp)
    .option("--reason <text>", "why (logged by the dispatcher)", "")
    .action(async (ids: string[], opts: { config?: string; reason: string }) => {
      if (ids.length === 0) {
        ctx.io.stderr("usage error: no instance IDs provided\n");
        return ctx.setExitCode(2);
      }
      const t = await target(ctx, opts.config);
      if (t === null) return ctx.setExitCode(1);
      ctx.setExitCode(await instanceAction(t, "kill", ids, opts.reason, ctx.io));
    });
}
