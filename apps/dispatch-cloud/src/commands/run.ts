import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { Writable } from "node:stream";
import { loadConfig } from "@dispatch-cloud/config";
import type { Command } from "commander";
import { DispatcherStartError, databasePasswords, startDispatcher } from "../daemon/index.js";
import { defaultConfigPath, describeError, type CliIo, type CommandContext } from "../io.js";
import { createLogger, logFormat } from "../logger.js";
import { notifyReady } from "../service/notify.js";

/** Client settings Arvados services ignore, with a warning, if they are in the environment. */
const IGNORED_ENV = ["ARVADOS_API_HOST", "ARVADOS_API_HOST_INSECURE", "ARVADOS_API_TOKEN"];

async function configFingerprint(
  path: string,
): Promise<{ configSha256?: string; configSourceTime?: number }> {
  if (path === "-") return {};
  try {
    const [data, st] = await Promise.all([readFile(path), stat(path)]);
    return {
      configSha256: createHash("sha256").update(data).digest("hex"),
      configSourceTime: st.mtimeMs,
    };
  } catch {
    return {};
  }
}

function waitForAbort(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return new Promise(() => undefined);
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}

export interface DaemonOptions {
  /** The config file; `-` reads standard input. */
  readonly configPath: string;
  /** Released once the daemon has stopped or failed to start (e.g. the service's profiler). */
  readonly release?: () => Promise<void>;
}

/**
 * The daemon, for `run` and for `arvados-dispatch-cloud` without a subcommand: load the config,
 * start the dispatcher, tell systemd it is ready once the management API listens (as Arvados
 * does), and stop cleanly on the stop signal. Returns the exit status: 0 after a clean stop,
 * 1 if it cannot start.
 */
export async function runDaemon(io: CliIo, options: DaemonOptions): Promise<number> {
  try {
    return await serve(io, options.configPath);
  } finally {
    await options.release?.();
  }
}

async function serve(io: CliIo, path: string): Promise<number> {
  const result = await loadConfig({ path, readStdin: io.readStdin });
  if (!result.ok) {
    io.stderr(
      [...result.errors, ...result.warnings].map((p) => `${p.text}\n`).join("") +
        `error loading config ${JSON.stringify(path)}; not starting\n`,
    );
    return 1;
  }
  const { cluster } = result.config;
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      io.stderr(chunk.toString());
      done();
    },
  });
  const secrets = [
    cluster.SystemRootToken,
    cluster.ManagementToken,
    ...(result.config.dispatchKey === null ? [] : [result.config.dispatchKey.text]),
    ...databasePasswords(cluster.PostgreSQL.Connection),
  ];
  const logger = createLogger({
    level: cluster.SystemLogs.LogLevel,
    format: logFormat(cluster.SystemLogs.Format),
    stream,
    secrets,
  });
  for (const w of result.warnings) logger.warn({}, w.text);
  for (const name of IGNORED_ENV) {
    if (io.env[name] !== undefined) {
      logger.warn(
        {},
        `ignoring environment variable ${name} (the dispatcher uses the config file)`,
      );
    }
  }
  const serviceInternalUrl = io.env["ARVADOS_SERVICE_INTERNAL_URL"];
  // READY=1 goes to systemd once the management API listens, as Arvados's services send it;
  // a dispatcher that waits for the cluster lock held elsewhere (a standby) is up too, so it
  // says so at once with the reason as its status, rather than have systemd's start timeout
  // kill and restart it in a loop.
  const tellSystemd = async (status: string): Promise<void> => {
    const notified = await notifyReady(io.env, status);
    if (!notified.sent && notified.reason === "failed") {
      logger.error({ error: notified.error }, "error notifying init daemon");
    }
  };
  let dispatcher;
  try {
    dispatcher = await startDispatcher({
      config: result.config,
      logger,
      ...(serviceInternalUrl === undefined ? {} : { serviceInternalUrl }),
      ...(io.runnerBinaryPath === undefined ? {} : { runnerBinaryPath: io.runnerBinaryPath }),
      ...(io.dashboardDir === undefined ? {} : { dashboardDir: io.dashboardDir }),
      ...(await configFingerprint(path)),
      ...(io.stopSignal === undefined ? {} : { signal: io.stopSignal }),
      lock: { onWaiting: (reason) => void tellSystemd(`standby: ${reason}`) },
    });
  } catch (err) {
    if (io.stopSignal?.aborted === true) {
      // Asked to stop while waiting for the dispatch lock: a clean stop.
      logger.info({}, "stopped before the dispatch lock was ours");
      await new Promise<void>((resolve) => stream.end(resolve));
      return 0;
    }
    // Start-up errors are for the operator: one line, no stack.
    logger.error(
      { error: describeError(err) },
      err instanceof DispatcherStartError ? describeError(err) : "error starting dispatcher",
    );
    await new Promise<void>((resolve) => stream.end(resolve));
    return 1;
  }
  // startDispatcher resolves once the management API listens and the scheduler runs.
  const running = dispatcher;
  const status = (): string =>
    running.dispatching ? "dispatching" : "standby: lost the cluster lock, trying to get it back";
  await tellSystemd(status());
  const unsubscribe = running.onDispatchingChange(() => void tellSystemd(status()));
  await waitForAbort(io.stopSignal);
  unsubscribe();
  const reason: unknown = io.stopSignal?.reason;
  logger.info({ reason: describeError(reason) }, "shutting down");
  await dispatcher.stop();
  return 0;
}

/** `run`: the daemon. Exit 0 after a clean stop (SIGTERM/SIGINT), 1 if it cannot start. */
export function registerRunCommand(program: Command, ctx: CommandContext): void {
  program
    .command("run")
    .description(
      "run the dispatcher: schedule queued containers onto cloud VMs and serve the management API",
    )
    .option(
      "--config <file>",
      "config file; - reads standard input (default: $ARVADOS_CONFIG, else /etc/arvados/config.yml)",
    )
    .action(async (opts: { config?: string }) => {
      const configPath = opts.config ?? defaultConfigPath(ctx.io.env);
      ctx.setExitCode(await runDaemon(ctx.io, { configPath }));
    });
}
