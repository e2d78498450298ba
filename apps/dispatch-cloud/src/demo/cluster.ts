import { execFile } from "node:child_process";
import fs from "node:fs";
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { Logger } from "@dispatch-cloud/arvados-types";
import { loadConfig, type LoadedConfig } from "@dispatch-cloud/config";
import { startContainerApi, type ContainerApi } from "@dispatch-cloud/container-api";
import { startDispatcher, type Dispatcher } from "../daemon/dispatcher.js";
import { createLogger } from "../logger.js";
import { ensureDemoConfig } from "./config.js";
import { ManagementClient } from "./management.js";
import type { DemoFiles } from "./paths.js";

/** A problem the user can fix; the message says what and where, and is printed as is. */
export class DemoError extends Error {
  override readonly name = "DemoError";
}

/** What the demo reads back from its config file. */
export interface DemoSetup {
  readonly files: DemoFiles;
  /** True when this run generated the config (a first run on this data directory). */
  readonly created: boolean;
  readonly loaded: LoadedConfig;
  readonly apiUrl: URL;
  readonly managementUrl: URL;
}

/** Creates the data directory and config on a first run; loads and checks the config. */
export async function prepareDemo(files: DemoFiles, runnerPath: string): Promise<DemoSetup> {
  if (!fs.existsSync(runnerPath)) {
    throw new DemoError(
      `the bundled runner ${runnerPath} is missing: build it with \`turbo run build\` (or scripts/setup.sh)`,
    );
  }
  const { created } = await ensureDemoConfig(files, runnerPath);
  const result = await loadConfig({ path: files.config });
  if (!result.ok) {
    throw new DemoError(
      `${files.config} is not usable:\n${result.errors.map((p) => `  ${p.text}`).join("\n")}\n` +
        `fix it, or remove ${files.dataDir} to start afresh`,
    );
  }
  const { cluster } = result.config;
  const external = cluster.Services["Controller"]?.ExternalURL ?? "";
  const internal = Object.keys(cluster.Services["DispatchCloud"]?.InternalURLs ?? {})[0];
  if (external === "" || internal === undefined) {
    throw new DemoError(
      `${files.config}: the demo needs Services.Controller.ExternalURL and one Services.DispatchCloud.InternalURLs entry`,
    );
  }
  return {
    files,
    created,
    loaded: result.config,
    apiUrl: new URL(external),
    managementUrl: new URL(internal),
  };
}

/** The running demo cluster: the embedded container API and the dispatcher, in this process. */
export interface DemoCluster {
  readonly api: ContainerApi;
  readonly dispatcher: Dispatcher;
  /** The container API with the SystemRootToken. */
  readonly client: ArvadosClient;
  readonly management: ManagementClient;
  readonly logger: Logger;
  /** Where the dispatcher's JSON log lines go. */
  readonly logFile: string;
  /** Stops the dispatcher, then every crunch-run it left (so they record Cancelled), then the API. */
  stop(): Promise<void>;
}

export interface StartDemoOptions {
  readonly runnerPath: string;
}

function isAddressInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}

export async function startDemoCluster(
  setup: DemoSetup,
  options: StartDemoOptions,
): Promise<DemoCluster> {
  const { files, loaded } = setup;
  const { cluster } = loaded;
  const logStream = fs.createWriteStream(files.log, { flags: "a", mode: 0o600 });
  const logger = createLogger({
    level: "info",
    format: "json",
    stream: logStream,
    secrets: [cluster.SystemRootToken, cluster.ManagementToken],
  });
  const closeLog = () => new Promise<void>((resolve) => logStream.end(() => resolve()));

  // The loopback "VM" is this machine: what the dispatcher runs there inherits this process's
  // environment, so crunch-run finds its lock files in this data directory.
  process.env["CRUNCH_RUN_LOCK_DIR"] = files.lockDir;

  let api: ContainerApi;
  try {
    api = await startContainerApi({
      dbPath: files.database,
      systemRootToken: cluster.SystemRootToken,
      clusterId: loaded.clusterId,
      host: setup.apiUrl.hostname,
      port: Number(setup.apiUrl.port),
      logger: logger.child({ component: "container-api" }),
      maxDispatchAttempts: cluster.Containers.MaxDispatchAttempts,
      maxRetryAttempts: cluster.Containers.MaxRetryAttempts,
    });
  } catch (err) {
    await closeLog();
    throw new DemoError(
      isAddressInUse(err)
        ? `cannot start the container API on ${setup.apiUrl.host}: the port is in use (is another demo running on ${files.dataDir}?); free it or change Services.Controller.ExternalURL in ${files.config}`
        : `cannot start the container API with ${files.database}: ${errorText(err)}`,
    );
  }

  let dispatcher: Dispatcher;
  try {
    dispatcher = await startDispatcher({
      config: loaded,
      logger,
      runnerBinaryPath: options.runnerPath,
    });
  } catch (err) {
    await api.stop();
    await closeLog();
    throw new DemoError(`cannot start the dispatcher: ${errorText(err)}`);
  }

  const client = new ArvadosClient({ apiHost: api.url, token: cluster.SystemRootToken });
  const management = new ManagementClient(dispatcher.url, cluster.ManagementToken);
  let stopped: Promise<void> | undefined;
  return {
    api,
    dispatcher,
    client,
    management,
    logger,
    logFile: files.log,
    stop() {
      stopped ??= (async () => {
        await dispatcher.stop();
        await killRunners(files.lockDir, options.runnerPath, logger);
        await client.close();
        await api.stop();
        await closeLog();
      })();
      return stopped;
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function runRunner(
  runnerPath: string,
  lockDir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [runnerPath, ...args],
      { env: { ...process.env, CRUNCH_RUN_LOCK_DIR: lockDir }, encoding: "utf8", timeout: 10_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * The dispatcher leaves containers running when it stops (a restart adopts them); the demo is
 * done with this machine, so it asks crunch-run to stop each one, as the dispatcher's kill does.
 * The API is still up, so each ends Cancelled.
 */
export async function killRunners(
  lockDir: string,
  runnerPath: string,
  logger: Logger,
): Promise<string[]> {
  const list = await runRunner(runnerPath, lockDir, ["--list"]);
  const uuids = list.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((t) => t.length >= 1 && t[0] !== "" && t[0] !== "broken")
    .map((t) => t[0]!);
  for (const uuid of uuids) {
    // SIGTERM a few times, as the dispatcher does; the runner records Cancelled and exits.
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await runRunner(runnerPath, lockDir, ["--kill", "15", uuid]);
      if (r.code === 0) break;
      logger.warn(
        { ContainerUUID: uuid, stderr: r.stderr.trim() },
        "crunch-run still running after SIGTERM",
      );
    }
  }
  // Lock files outlive their runners until a --list finds their locks free and clears them,
  // as the dispatcher's next probe would.
  if (uuids.length > 0) await runRunner(runnerPath, lockDir, ["--list"]);
  return uuids;
}
