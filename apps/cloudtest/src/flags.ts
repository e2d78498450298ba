import { Command, CommanderError } from "commander";

/** The InstanceSetID tag value cloudtest uses unless told otherwise (Arvados's default). */
export const DEFAULT_INSTANCE_SET_ID = "zzzzz-zzzzz-zzzzzzcloudtest";

export interface CloudtestFlags {
  /** A path, or `-` for standard input. */
  readonly config: string;
  readonly instanceSetId: string;
  /** "" = `CloudVMs.ImageID`. */
  readonly imageId: string;
  /** "" = the cheapest configured type. */
  readonly instanceType: string;
  readonly destroyExisting: boolean;
  /** "" = none. */
  readonly command: string;
  readonly pauseBeforeDestroy: boolean;
}

export type FlagsResult =
  | { readonly kind: "ok"; readonly flags: CloudtestFlags }
  /** `-help`: usage was printed; exit 0. */
  | { readonly kind: "help" }
  /** A bad flag or a stray argument: the message (and usage) was printed; exit 2. */
  | { readonly kind: "usage-error" };

const valueFlags = ["config", "instance-set-id", "image-id", "instance-type", "command"];
const boolFlags = ["destroy-existing", "pause-before-destroy"];

/** Go's strconv.ParseBool, which `-flag=value` on a boolean flag goes through. */
function goBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

/**
 * Go's flag package takes `-name`, `--name`, `-name=value` and `--name=value`, and booleans as
 * `-name=false`; commander takes only `--name` and bare booleans. Rewrite the known flags into
 * commander's form. Returns an error message for a boolean with a value Go would reject.
 */
export function normalizeArgv(argv: readonly string[]): { argv: string[] } | { error: string } {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--" || a === "-") {
      out.push(...argv.slice(i));
      break;
    }
    const m = /^--?([a-z][a-z-]*)(?:=([\s\S]*))?$/.exec(a);
    if (m === null) {
      out.push(a);
      continue;
    }
    const name = m[1]!;
    const value = m[2];
    if (name === "help" || name === "h") {
      out.push("--help");
    } else if (valueFlags.includes(name)) {
      if (value !== undefined) out.push(`--${name}=${value}`);
      else if (i + 1 < argv.length) out.push(`--${name}=${argv[++i]!}`);
      else out.push(`--${name}`); // commander reports the missing value
    } else if (boolFlags.includes(name)) {
      if (value === undefined) out.push(`--${name}`);
      else {
        const b = goBool(value);
        if (b === undefined)
          return { error: `invalid boolean value "${value}" for -${name}: parse error` };
        if (b) out.push(`--${name}`);
        else out.push(`--no-${name}`);
      }
    } else {
      // Unknown: commander rejects it, naming it in its long form.
      out.push(a.startsWith("--") ? a : `-${a}`);
    }
  }
  return { argv: out };
}

export interface ParseFlagsIo {
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Parses cloudtest's command line. Prints usage and errors on stderr itself. */
export function parseFlags(argv: readonly string[], io: ParseFlagsIo): FlagsResult {
  const envConfig = io.env["ARVADOS_CONFIG"];
  const defaultConfig =
    envConfig !== undefined && envConfig !== "" ? envConfig : "/etc/arvados/config.yml";
  const program = new Command("cloudtest")
    .description(
      "Boot one cloud VM with the configured driver, image and instance type; check its tags, SSH and the boot probe; then destroy it. Exits 0 only if every check passed.",
    )
    .exitOverride()
    .configureOutput({ writeOut: io.stderr, writeErr: io.stderr })
    .helpOption("-h, --help", "show this help")
    .allowExcessArguments(false)
    .allowUnknownOption(false)
    .option("--config <file>", "site config file (- reads standard input)", defaultConfig)
    .option(
      "--instance-set-id <value>",
      "InstanceSetID tag value to use on the test instance",
      DEFAULT_INSTANCE_SET_ID,
    )
    .option("--image-id <string>", "image ID to use (default: Containers.CloudVMs.ImageID)", "")
    .option(
      "--instance-type <string>",
      "instance type name to use (default: the cheapest configured type)",
      "",
    )
    .option(
      "--destroy-existing",
      "destroy any existing instances tagged with our InstanceSetID instead of erroring out",
      false,
    )
    .option("--no-destroy-existing")
    .option("--command <string>", "shell command to run on the test instance after it boots", "")
    .option(
      "--pause-before-destroy",
      "print the instance login details and wait for Enter before destroying the instance",
      false,
    )
    .option("--no-pause-before-destroy");

  const normalized = normalizeArgv(argv);
  if ("error" in normalized) {
    io.stderr(`cloudtest: ${normalized.error}\n`);
    io.stderr(program.helpInformation());
    return { kind: "usage-error" };
  }
  try {
    program.parse(normalized.argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? { kind: "help" } : { kind: "usage-error" };
    }
    throw err;
  }
  const o = program.opts<{
    config: string;
    instanceSetId: string;
    imageId: string;
    instanceType: string;
    destroyExisting: boolean;
    command: string;
    pauseBeforeDestroy: boolean;
  }>();
  return {
    kind: "ok",
    flags: {
      config: o.config,
      instanceSetId: o.instanceSetId,
      imageId: o.imageId,
      instanceType: o.instanceType,
      destroyExisting: o.destroyExisting,
      command: o.command,
      pauseBeforeDestroy: o.pauseBeforeDestroy,
    },
  };
}
