/** The command line of crunch-run, parsed as Go's flag package does: `-x` and `--x` alike. */
export interface RunnerArgs {
  readonly detach: boolean;
  /** Set on the background copy that `--detach` starts. */
  readonly noDetach: boolean;
  readonly stdinConfig: boolean;
  readonly stdinPrices: boolean;
  readonly list: boolean;
  /** Signal number for `--kill N`, or null. */
  readonly kill: number | null;
  readonly runtimeEngine: string;
  readonly brokenNodeHook: string;
  readonly version: boolean;
  readonly help: boolean;
  readonly containerUuid: string | null;
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

const booleans = new Set([
  "detach",
  "no-detach",
  "stdin-config",
  "stdin-prices",
  "list",
  "version",
  "help",
  "h",
]);
const valued = new Set(["kill", "runtime-engine", "broken-node-hook", "config"]);

export function parseArgs(argv: readonly string[]): RunnerArgs {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (booleans.has(name)) {
      const value = eq >= 0 ? body.slice(eq + 1) : "true";
      if (value !== "true" && value !== "false") {
        throw new UsageError(`invalid boolean value "${value}" for -${name}`);
      }
      flags.set(name, value);
    } else if (valued.has(name)) {
      let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      flags.set(name, value);
    } else {
      throw new UsageError(`flag provided but not defined: -${name}`);
    }
  }
  let kill: number | null = null;
  const killText = flags.get("kill");
  if (killText !== undefined) {
    kill = Number(killText);
    if (!Number.isInteger(kill) || kill < 0 || kill > 64) {
      throw new UsageError(`invalid value "${killText}" for flag -kill: not a signal number`);
    }
  }
  const on = (name: string) => flags.get(name) === "true";
  const parsed: RunnerArgs = {
    detach: on("detach"),
    noDetach: on("no-detach"),
    stdinConfig: on("stdin-config"),
    stdinPrices: on("stdin-prices"),
    list: on("list"),
    kill,
    runtimeEngine: flags.get("runtime-engine") ?? "docker",
    brokenNodeHook: flags.get("broken-node-hook") ?? "",
    version: on("version"),
    help: on("help") || on("h"),
    containerUuid: positional[0] ?? null,
  };
  if (!parsed.list && !parsed.version && !parsed.help && parsed.containerUuid === null) {
    throw new UsageError("missing required argument: container-uuid (try -help)");
  }
  if (positional.length > 1) {
    throw new UsageError(
      `unexpected arguments after the container UUID: ${positional.slice(1).join(" ")}`,
    );
  }
  return parsed;
}

export const usage = `Usage: crunch-run [options] CONTAINER_UUID
       crunch-run --list [--stdin-prices]
       crunch-run --kill SIGNAL CONTAINER_UUID

  --detach              run in the background, holding the container's lock file; print {"UUID","PID"}
  --stdin-config        read the dispatcher's JSON (Env, KeepBuffers, Cluster, ...) from stdin
  --stdin-prices        with --list: save the JSON price history on stdin for running containers
  --list                print the UUIDs of running containers, "<uuid> stale", and "broken"
  --kill N              send signal N to the container's runner and wait up to 1s for it to exit
  --runtime-engine E    docker (default) or process (run the command directly on this host)
  --broken-node-hook S  run S instead of creating the broken-node marker
`;
