import fs from "node:fs";
import { ArvadosApiError, ArvadosClient } from "@dispatch-cloud/arvados-client";
import { UsageError, parseArgs, usage, type RunnerArgs } from "./args.js";
import { announceReady, detach, inheritedLockFd } from "./detach.js";
import { isEngine } from "./engine.js";
import { killContainer } from "./kill.js";
import { listContainers } from "./list.js";
import { LockHeldError } from "./locks.js";
import { runContainer, type RunnerApi } from "./run.js";

export const VERSION = "dispatch-cloud crunch-run 0.1.0";

/** The JSON the dispatcher sends on stdin with `--stdin-config`. */
interface StdinConfig {
  Env?: Record<string, string>;
  KeepBuffers?: number;
  EC2SpotCheck?: boolean;
  Cluster?: unknown;
}

function readStdin(): Buffer {
  try {
    return fs.readFileSync(0);
  } catch (err) {
    // No stdin at all (closed or a terminal that went away) reads as empty.
    if (["EAGAIN", "EOF", "ENXIO"].includes((err as NodeJS.ErrnoException).code ?? "")) {
      return Buffer.alloc(0);
    }
    throw err;
  }
}

const isNotFound = (err: unknown) => err instanceof ArvadosApiError && err.status === 404;

function clientApi(
  env: Record<string, string | undefined>,
  caCerts: string | undefined,
): RunnerApi {
  const apiHost = env["ARVADOS_API_HOST"];
  const token = env["ARVADOS_API_TOKEN"];
  if (!apiHost || !token) {
    throw new Error("ARVADOS_API_HOST and ARVADOS_API_TOKEN must be given (with --stdin-config)");
  }
  const insecure = ["1", "true", "yes"].includes(
    (env["ARVADOS_API_HOST_INSECURE"] ?? "").toLowerCase(),
  );
  const tls = { insecure, ...(caCerts === undefined ? {} : { caCerts }) };
  const client = new ArvadosClient({ apiHost, token, ...tls });
  return {
    getContainer: async (uuid) => {
      const c = await client.containers.get(uuid);
      return {
        uuid: c.uuid,
        state: c.state,
        command: c.command,
        cwd: c.cwd,
        environment: c.environment,
        container_image: c.container_image,
        mounts: c.mounts,
        output_glob: c.output_glob,
        runtime_constraints: c.runtime_constraints,
      };
    },
    // As crunch-run: the container's own token (from `containers/<uuid>/auth`) reads its secret
    // mounts; an API without either call (404) has none to give.
    getSecretMounts: async (uuid) => {
      try {
        const auth = await client.request<{ uuid: string; api_token: string }>(
          "GET",
          `arvados/v1/containers/${uuid}/auth`,
          {},
        );
        const own = new ArvadosClient({
          apiHost,
          token: `v2/${auth.uuid}/${auth.api_token}`,
          ...tls,
        });
        try {
          const res = await own.request<{ secret_mounts?: Record<string, { kind: string }> }>(
            "GET",
            `arvados/v1/containers/${uuid}/secret_mounts`,
            {},
          );
          return res.secret_mounts ?? {};
        } finally {
          await own.close();
        }
      } catch (err) {
        if (isNotFound(err)) return {};
        throw err;
      }
    },
    updateContainer: async (uuid, attrs) => {
      await client.containers.update(uuid, attrs, { select: ["uuid"] });
    },
    writeLog: async (uuid, eventType, text) => {
      await client.logs.create({ object_uuid: uuid, event_type: eventType, properties: { text } });
    },
  };
}

async function main(argv: readonly string[]): Promise<number> {
  let args: RunnerArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`crunch-run: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  // Where lock files live; tests and unprivileged set-ups point it elsewhere.
  const lockDir = process.env["CRUNCH_RUN_LOCK_DIR"] || "/var/lock";

  if (args.list) {
    const prices = args.stdinPrices ? readStdin() : null;
    const result = listContainers(lockDir, prices);
    for (const line of result.lines) process.stdout.write(`${line}\n`);
    for (const line of result.errors) process.stderr.write(`${line}\n`);
    return result.exitCode;
  }
  const uuid = args.containerUuid!;
  if (args.kill !== null) {
    const result = await killContainer(lockDir, uuid, args.kill);
    if (result.message !== null) process.stderr.write(`${result.message}\n`);
    return result.exitCode;
  }
  // singularity passes: the background runner refuses it in the container's own log.
  if (!isEngine(args.runtimeEngine) && args.runtimeEngine !== "singularity") {
    process.stderr.write(`crunch-run: unsupported RuntimeEngine "${args.runtimeEngine}"\n`);
    return 1;
  }
  // From here on this process is (or is about to be) the PID a lock file names: `--list` sends
  // it SIGUSR2 and `--kill` SIGTERM, and Node's default for both is to exit without a word.
  // Both are handled before anything else happens; the background copy only says it is ready
  // (and so is only named in the lock file) once its handlers are in place.
  const stop = stopSignal();
  if (args.detach && !args.noDetach) {
    const stdin = args.stdinConfig ? readStdin() : Buffer.alloc(0);
    try {
      const procinfo = await detach({ dir: lockDir, uuid, argv, stdin, signal: stop });
      process.stdout.write(`${JSON.stringify(procinfo)}\n`);
    } catch (err) {
      if (!(err instanceof LockHeldError)) throw err;
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    return 0;
  }

  announceReady(uuid);
  if (args.sleepMs > 0) await new Promise((resolve) => setTimeout(resolve, args.sleepMs));

  let config: StdinConfig = {};
  if (args.stdinConfig) {
    const text = readStdin().toString("utf8");
    try {
      config = JSON.parse(text) as StdinConfig;
    } catch {
      process.stderr.write("crunch-run: --stdin-config: stdin is not a JSON object\n");
      return 1;
    }
  }
  // The dispatcher's settings become this process's environment, as crunch-run does it.
  for (const [k, v] of Object.entries(config.Env ?? {})) process.env[k] = v;
  const caCerts = args.caCerts === "" ? undefined : fs.readFileSync(args.caCerts, "utf8");
  const log = (message: string) =>
    process.stderr.write(`${new Date().toISOString()} ${uuid} ${message}\n`);
  return runContainer({
    uuid,
    engine: args.runtimeEngine,
    engineOptions: {
      lockFd: inheritedLockFd(),
      enableMemoryLimit: args.enableMemoryLimit,
      enableNetworking: args.enableNetworking,
      networkMode: args.networkMode,
    },
    ignoredFlags: args.ignored,
    lockDir,
    brokenNodeHook: args.brokenNodeHook,
    api: clientApi(process.env, caCerts),
    log,
    stop,
  });
}

/**
 * Aborted with the signal's name on SIGTERM or SIGINT; SIGUSR2 (`--list` saying prices were
 * saved) is received and otherwise ignored, since this runner does not track costs.
 */
function stopSignal(): AbortSignal {
  const controller = new AbortController();
  const onStop = (signal: NodeJS.Signals) => controller.abort(signal);
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  process.on("SIGUSR2", () => undefined);
  return controller.signal;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`crunch-run: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
