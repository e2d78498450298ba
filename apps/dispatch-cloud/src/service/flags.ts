/**
 * The flags of `arvados-dispatch-cloud` itself (no subcommand), as Arvados's service command
 * takes them: Go's flag package rules (`-name value`, `-name=value`, `--name`, booleans as
 * `-name` or `-name=false`, parsing stops at the first argument that is not a flag or at
 * `--`), and its usage errors.
 */

/** Exit status of a usage error: EX_USAGE, what Arvados services return and what their
 * systemd unit's `RestartPreventExitStatus=64` keeps from restarting in a loop. */
export const EX_USAGE = 64;

/** Legacy per-service config files: they only configure other Arvados services. */
export const LEGACY_CONFIG_FLAGS = [
  "legacy-keepstore-config",
  "legacy-keepweb-config",
  "legacy-crunch-dispatch-slurm-config",
  "legacy-ws-config",
  "legacy-keepproxy-config",
  "legacy-git-httpd-config",
  "legacy-keepbalance-config",
] as const;

interface FlagSpec {
  readonly kind: "string" | "bool";
  readonly arg?: string;
  readonly usage: string;
  readonly default?: string;
}

function flagSpecs(defaultConfig: string): ReadonlyMap<string, FlagSpec> {
  return new Map<string, FlagSpec>([
    [
      "config",
      {
        kind: "string",
        arg: "file",
        usage:
          "Site configuration file (default may be overridden by setting an ARVADOS_CONFIG environment variable)",
        default: defaultConfig,
      },
    ],
    ...LEGACY_CONFIG_FLAGS.map((name): [string, FlagSpec] => [
      name,
      { kind: "string", arg: "file", usage: "Ignored: configures another Arvados service" },
    ]),
    [
      "pprof",
      {
        kind: "string",
        arg: "[addr]:port",
        usage: "Serve CPU and heap profiles at [addr]:port (see /debug/pprof/)",
      },
    ],
    ["skip-legacy", { kind: "bool", usage: "Ignored: there are no legacy config files to skip" }],
    ["version", { kind: "bool", usage: "Write version information to stdout and exit 0" }],
  ]);
}

export interface ServiceFlags {
  readonly config: string;
  readonly pprof?: string;
  /** Legacy flags given: accepted for compatibility and ignored, with a warning. */
  readonly ignored: readonly string[];
}

export type ParsedServiceArgs =
  | { readonly kind: "run"; readonly flags: ServiceFlags }
  | { readonly kind: "version" }
  | { readonly kind: "help"; readonly usage: string }
  | { readonly kind: "usage-error"; readonly message: string };

const BOOL_VALUES: Readonly<Record<string, boolean>> = {
  "1": true,
  t: true,
  T: true,
  true: true,
  TRUE: true,
  True: true,
  "0": false,
  f: false,
  F: false,
  false: false,
  FALSE: false,
  False: false,
};

/** Go's PrintDefaults layout: `  -name arg` then the usage on the next line. */
export function serviceUsage(prog: string, defaultConfig: string): string {
  const lines = [`Usage: ${prog} [options]`];
  for (const [name, spec] of flagSpecs(defaultConfig)) {
    lines.push(`  -${name}${spec.arg === undefined ? "" : ` ${spec.arg}`}`);
    const def = spec.default === undefined ? "" : ` (default ${JSON.stringify(spec.default)})`;
    lines.push(`    \t${spec.usage}${def}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Parses the service's arguments; never throws. */
export function parseServiceArgs(
  args: readonly string[],
  prog: string,
  defaultConfig: string,
): ParsedServiceArgs {
  const specs = flagSpecs(defaultConfig);
  const values = new Map<string, string | boolean>();
  const usageError = (msg: string): ParsedServiceArgs => ({
    kind: "usage-error",
    message: `error parsing command line arguments: ${msg} (try -help)`,
  });
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg.length < 2 || !arg.startsWith("-")) break;
    if (arg === "--") {
      i++;
      break;
    }
    const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
    if (body === "" || body.startsWith("-") || body.startsWith("=")) {
      return usageError(`bad flag syntax: ${arg}`);
    }
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    const spec = specs.get(name);
    if (spec === undefined) {
      if (name === "help" || name === "h") {
        return { kind: "help", usage: serviceUsage(prog, defaultConfig) };
      }
      return usageError(`flag provided but not defined: -${name}`);
    }
    if (spec.kind === "bool") {
      const v = inline === undefined ? true : BOOL_VALUES[inline];
      if (v === undefined) {
        return usageError(
          `invalid boolean value ${JSON.stringify(inline)} for -${name}: parse error`,
        );
      }
      values.set(name, v);
    } else if (inline !== undefined) {
      values.set(name, inline);
    } else if (i + 1 < args.length) {
      values.set(name, args[++i] ?? "");
    } else {
      return usageError(`flag needs an argument: -${name}`);
    }
  }
  const rest = args.slice(i);
  if (rest.length > 0) {
    return {
      kind: "usage-error",
      message: `unrecognized command line arguments: [${rest.join(" ")}] (try -help)`,
    };
  }
  if (values.get("version") === true) return { kind: "version" };
  const pprof = values.get("pprof");
  const config = values.get("config");
  return {
    kind: "run",
    flags: {
      config: typeof config === "string" ? config : defaultConfig,
      ...(typeof pprof === "string" && pprof !== "" ? { pprof } : {}),
      ignored: LEGACY_CONFIG_FLAGS.filter((n) => values.has(n)).map((n) => `-${n}`),
    },
  };
}
