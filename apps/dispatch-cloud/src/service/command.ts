import { VERSION } from "../daemon/index.js";
import { defaultConfigPath, describeError, type CliIo } from "../io.js";
import { commandNames, runCli } from "../program.js";
import { runDaemon } from "../commands/run.js";
import { EX_USAGE, parseServiceArgs } from "./flags.js";
import { parseProfilerAddress, startProfiler } from "./pprof.js";

/** Arvados's version line: `PROG VERSION (RUNTIME)`, with Node in place of Go. */
export function versionLine(prog: string): string {
  return `${prog} ${VERSION} (node ${process.version})\n`;
}

/**
 * `arvados-dispatch-cloud [-config FILE] [-pprof ADDR] [-version]`: the service, as Arvados's
 * packaged unit starts it. A first argument naming one of our subcommands (`config-check`,
 * `instance`, ...) runs that instead — Arvados's binary has none, so nothing it accepts
 * changes meaning. Returns the exit status: 64 for a usage error, as Arvados.
 */
export async function runArvadosCommand(
  argv: readonly string[],
  io: CliIo,
  prog = "arvados-dispatch-cloud",
): Promise<number> {
  const first = argv[0];
  if (first !== undefined && commandNames().includes(first)) return runCli(argv, io);

  const parsed = parseServiceArgs(argv, prog, defaultConfigPath(io.env));
  switch (parsed.kind) {
    case "usage-error":
      io.stderr(`${parsed.message}\n`);
      return EX_USAGE;
    case "help":
      io.stderr(parsed.usage);
      return 0;
    case "version":
      io.stdout(versionLine(prog));
      return 0;
    case "run":
      break;
  }
  const { flags } = parsed;
  if (flags.pprof !== undefined) {
    try {
      parseProfilerAddress(flags.pprof);
    } catch (err) {
      io.stderr(`${describeError(err)} (try -help)\n`);
      return EX_USAGE;
    }
  }
  for (const name of flags.ignored) {
    io.stderr(`${prog}: ignoring ${name}: legacy config files configure other Arvados services\n`);
  }
  let release: (() => Promise<void>) | undefined;
  if (flags.pprof !== undefined) {
    try {
      const profiler = await startProfiler(flags.pprof);
      io.stderr(`${prog}: serving profiles at http://${profiler.address}/debug/pprof/\n`);
      release = () => profiler.close();
    } catch (err) {
      // Arvados logs a profiler that cannot listen and runs on; so do we.
      io.stderr(`${prog}: -pprof ${flags.pprof}: ${describeError(err)}\n`);
    }
  }
  return runDaemon(io, {
    configPath: flags.config,
    ...(release === undefined ? {} : { release }),
  });
}
