import { Writable } from "node:stream";
import { loadConfig } from "@dispatch-cloud/config";
import type { Command } from "commander";
import { clientCommand } from "../client/command.js";
import { ClientError } from "../client/target.js";
import { defaultConfigPath, describeError, waitForAbort, type CommandContext } from "../io.js";

/** `HOST:PORT`, `[v6]:PORT`; port 0 takes any free port. */
export function parseListen(value: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (m === null || port > 65535) {
    throw new ClientError(
      `${what} ${JSON.stringify(value)}: expected HOST:PORT, e.g. 127.0.0.1:8000`,
    );
  }
  return { host: (m[1] ?? "").replace(/^\[|\]$/g, ""), port };
}

/** Where the controller's ExternalURL says clients find it. */
function listenFromExternalUrl(external: string, source: string): { host: string; port: number } {
  const what = `${source}: Services.Controller.ExternalURL`;
  let url: URL;
  try {
    url = new URL(external);
  } catch {
    throw new ClientError(
      `${what} ${JSON.stringify(external)} is not a URL; give --listen HOST:PORT`,
    );
  }
  if (url.protocol !== "http:") {
    throw new ClientError(
      `${what} is ${url.protocol}//...: the container API serves plain http only; give --listen HOST:PORT (and put a TLS proxy in front)`,
    );
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port === "" ? 80 : Number(url.port),
  };
}

/**
 * `container-api`: the embedded, SQLite-backed Arvados container API on its own, as the
 * cluster's controller for a dispatcher started separately (`run`) and for the client commands.
 */
export function registerContainerApiCommand(program: Command, ctx: CommandContext): void {
  clientCommand(program.command("container-api"), false)
    .description(
      "serve the embedded Arvados-compatible container API (SQLite) for the config's cluster until SIGINT/SIGTERM",
    )
    .option(
      "--config <file>",
      "config file: cluster ID, SystemRootToken (the admin token), Containers.MaxDispatchAttempts; - reads standard input (default: $ARVADOS_CONFIG, else /etc/arvados/config.yml)",
    )
    .option(
      "--listen <host:port>",
      "where to listen (default: Services.Controller.ExternalURL's host and port)",
    )
    .option(
      "--db <file>",
      "SQLite database file, created if missing (default: in memory, gone when it stops)",
    )
    .action(async (opts: { config?: string; listen?: string; db?: string }) => {
      const { io } = ctx;
      const listen = opts.listen === undefined ? undefined : parseListen(opts.listen, "--listen");
      const result = await loadConfig({
        path: opts.config ?? defaultConfigPath(io.env),
        readStdin: io.readStdin,
      });
      if (!result.ok) {
        const [first, ...more] = result.errors;
        throw new ClientError(
          `${first?.text ?? "unusable config"}${more.length > 0 ? ` (and ${more.length} more: see dispatch-cloud config-check)` : ""}`,
        );
      }
      const { cluster, clusterId, source } = result.config;
      if (cluster.SystemRootToken === "") {
        throw new ClientError(
          `${source}: SystemRootToken is not set: the container API needs it as its admin token`,
        );
      }
      const at =
        listen ?? listenFromExternalUrl(cluster.Services["Controller"]?.ExternalURL ?? "", source);
      // Loaded here: express and SQLite are no business of the other commands.
      const [{ startContainerApi }, { createLogger, logFormat }] = await Promise.all([
        import("@dispatch-cloud/container-api"),
        import("../logger.js"),
      ]);
      const stream = new Writable({
        write(chunk: Buffer | string, _enc, done) {
          io.stderr(chunk.toString());
          done();
        },
      });
      // Only its failures: the line below says where it listens.
      const logger = createLogger({
        level: "warn",
        format: logFormat(cluster.SystemLogs.Format),
        stream,
        secrets: [cluster.SystemRootToken, cluster.ManagementToken],
      });
      const db = opts.db ?? ":memory:";
      let api;
      try {
        api = await startContainerApi({
          dbPath: db,
          systemRootToken: cluster.SystemRootToken,
          clusterId,
          host: at.host,
          port: at.port,
          logger,
          maxDispatchAttempts: cluster.Containers.MaxDispatchAttempts,
          maxRetryAttempts: cluster.Containers.MaxRetryAttempts,
          maxItemsPerResponse: cluster.API.MaxItemsPerResponse,
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException | undefined)?.code;
        const where = `${at.host.includes(":") ? `[${at.host}]` : at.host}:${at.port}`;
        throw new ClientError(
          code === "EADDRINUSE"
            ? `cannot listen on ${where}: the address is in use`
            : code === "EADDRNOTAVAIL" || code === "ENOTFOUND"
              ? `cannot listen on ${where}: not an address of this host`
              : `cannot start the container API (${db}): ${describeError(err)}`,
        );
      }
      io.stdout(
        `container API for cluster ${clusterId} listening on ${api.url} (database: ${db === ":memory:" ? "in memory" : db})\n`,
      );
      await waitForAbort(io.stopSignal);
      await api.stop();
      ctx.setExitCode(0);
    });
}
