/**
 * The command line of crunch-run: every flag Arvados's Go crunch-run accepts (so an operator's
 * `Containers.CrunchRunArgumentsList` written for Arvados works here too), parsed as Go's flag
 * package does it: `-x` and `--x` alike, `-x=v` or `-x v`, booleans as `-x` or `-x=false`.
 */
export interface RunnerArgs {
  readonly detach: boolean;
  /** Set on the background copy that `--detach` starts. */
  readonly noDetach: boolean;
  readonly stdinConfig: boolean;
  readonly stdinPrices: boolean;
  readonly list: boolean;
  /** Signal number for `--kill N`, or null (Go's default -1: no kill). */
  readonly kill: number | null;
  readonly runtimeEngine: string;
  readonly brokenNodeHook: string;
  /** `--ca-certs`: a PEM file of TLS root certificates for the API, or "". */
  readonly caCerts: string;
  /** `--sleep`: wait this long (ms) before starting. */
  readonly sleepMs: number;
  /** `--enable-memory-limit` (default true): the docker engine limits the container's RAM. */
  readonly enableMemoryLimit: boolean;
  /** `--container-enable-networking`: `always`, or `default` (only containers that ask for the API). */
  readonly enableNetworking: string;
  /** `--container-network-mode`: docker's `--network`, or `default`. */
  readonly networkMode: string;
  readonly version: boolean;
  readonly help: boolean;
  readonly containerUuid: string | null;
  /** Flags given on the command line that this runner accepts but does not act on. */
  readonly ignored: readonly string[];
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

type FlagKind = "bool" | "string" | "duration" | "int";

interface FlagSpec {
  readonly kind: FlagKind;
  /** Why the flag has no effect here, for flags we accept without acting on them. */
  readonly ignored?: string;
}

const NO_CGROUPS = "this runner does not manage cgroups";

/** Go crunch-run's flags (lib/crunchrun), plus `no-detach` and `stdin-prices`. */
const flagSpecs: Readonly<Record<string, FlagSpec>> = {
  detach: { kind: "bool" },
  "no-detach": { kind: "bool" },
  "stdin-config": { kind: "bool" },
  "stdin-prices": { kind: "bool" },
  list: { kind: "bool" },
  kill: { kind: "int" },
  "runtime-engine": { kind: "string" },
  "broken-node-hook": { kind: "string" },
  "ca-certs": { kind: "string" },
  sleep: { kind: "duration" },
  "enable-memory-limit": { kind: "bool" },
  "container-enable-networking": { kind: "string" },
  "container-network-mode": { kind: "string" },
  version: { kind: "bool" },
  help: { kind: "bool" },
  h: { kind: "bool" },
  config: {
    kind: "string",
    ignored:
      "the cluster config comes from the dispatcher (--stdin-config); no local keepstore runs",
  },
  "crunchstat-interval": { kind: "duration", ignored: "this runner does not report crunchstat" },
  "cgroup-root": { kind: "string", ignored: NO_CGROUPS },
  "cgroup-parent": { kind: "string", ignored: NO_CGROUPS },
  "cgroup-parent-subsystem": { kind: "string", ignored: NO_CGROUPS },
  memprofile: { kind: "string", ignored: "this runner writes no memory profile" },
  "check-containerd": { kind: "duration", ignored: "ignored by Arvados's crunch-run too" },
};

const goTrue = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const goFalse = new Set(["0", "f", "F", "FALSE", "false", "False"]);

const durationUnitsMs: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3,
  "\u03bcs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration (`10s`, `1m30s`, `0`) in ms, or null if it is not one. */
export function goDurationMs(text: string): number | null {
  if (text === "0" || text === "+0" || text === "-0") return 0;
  const m = /^([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$/.exec(text);
  if (m === null) return null;
  let total = 0;
  for (const part of m[2]!.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g)) {
    total += Number(part[1]) * durationUnitsMs[part[2]!]!;
  }
  return m[1] === "-" ? -total : total;
}

function invalid(name: string, value: string, why: string): UsageError {
  return new UsageError(`invalid value "${value}" for flag -${name}: ${why}`);
}

export function parseArgs(argv: readonly string[]): RunnerArgs {
  const values = new Map<string, string>();
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
    const spec = flagSpecs[name];
    if (spec === undefined) throw new UsageError(`flag provided but not defined: -${name}`);
    let value: string;
    if (spec.kind === "bool") {
      value = eq >= 0 ? body.slice(eq + 1) : "true";
      if (!goTrue.has(value) && !goFalse.has(value)) {
        throw invalid(name, value, "parse error");
      }
      value = goTrue.has(value) ? "true" : "false";
    } else {
      const next = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (next === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      value = next;
      if (spec.kind === "duration" && goDurationMs(value) === null) {
        throw invalid(name, value, "parse error (a duration like 10s or 1m30s)");
      }
      if (spec.kind === "int" && !/^[+-]?\d+$/.test(value)) {
        throw invalid(name, value, "parse error");
      }
    }
    values.set(name, value);
  }
  let kill: number | null = null;
  const killText = values.get("kill");
  if (killText !== undefined && Number(killText) >= 0) {
    kill = Number(killText);
    if (kill > 64) throw invalid("kill", killText, "not a signal number");
  }
  const on = (name: string, def = false) => (values.get(name) ?? String(def)) === "true";
  const parsed: RunnerArgs = {
    detach: on("detach"),
    noDetach: on("no-detach"),
    stdinConfig: on("stdin-config"),
    stdinPrices: on("stdin-prices"),
    list: on("list"),
    kill,
    runtimeEngine: values.get("runtime-engine") ?? "docker",
    brokenNodeHook: values.get("broken-node-hook") ?? "",
    caCerts: values.get("ca-certs") ?? "",
    sleepMs: goDurationMs(values.get("sleep") ?? "0") ?? 0,
    enableMemoryLimit: on("enable-memory-limit", true),
    enableNetworking: values.get("container-enable-networking") ?? "default",
    networkMode: values.get("container-network-mode") ?? "default",
    version: on("version"),
    help: on("help") || on("h"),
    containerUuid: positional[0] ?? null,
    ignored: [...values.entries()]
      .filter(([name]) => flagSpecs[name]?.ignored !== undefined)
      .map(([name, value]) => `-${name}=${value} (${flagSpecs[name]!.ignored})`),
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
  --runtime-engine E    docker (default) or process (run the command directly on this host);
                        singularity is refused (use Arvados's crunch-run)
  --broken-node-hook S  run S instead of creating the broken-node marker
  --ca-certs FILE       TLS root certificates for the API
  --sleep D             wait D (a duration like 10s) before starting
  --enable-memory-limit (default true) docker engine: limit the container's RAM to its request
  --container-enable-networking always|default
                        docker engine: give every container a network, or only those that ask
                        for API access (default)
  --container-network-mode M
                        docker engine: the --network of containers with a network
Also accepted, for Arvados's crunch-run's command lines, and logged as having no effect:
  --config, --crunchstat-interval, --cgroup-root, --cgroup-parent, --cgroup-parent-subsystem,
  --memprofile, --check-containerd
`;
