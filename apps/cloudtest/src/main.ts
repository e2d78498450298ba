import {
  instanceSetId,
  systemClock,
  type Clock,
  type InstanceType,
} from "@dispatch-cloud/arvados-types";
import {
  UnsupportedDriverError,
  createDriverRegistry,
  errorMessage,
  type DriverFactory,
  type DriverRegistry,
  type InstanceTags,
} from "@dispatch-cloud/cloud-driver-api";
import { loadConfig } from "@dispatch-cloud/config";
import {
  localhostInstanceType,
  loopbackDriver,
  validateLoopbackInstanceTypes,
} from "@dispatch-cloud/driver-loopback";
import { createSshExecutorFactory } from "@dispatch-cloud/ssh-executor";
import { runOnce, type RunSettings } from "./cloudtest.js";
import { parseFlags } from "./flags.js";
import { textLogger } from "./logger.js";
import { formatSummary, type RunReport } from "./report.js";

/** Everything the CLI touches of the process, so tests run it in-process. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** All of standard input (for `-config -`). */
  readonly readStdin: () => Promise<string>;
  /** Resolves when the operator presses Enter (for `-pause-before-destroy`). */
  readonly waitForEnter: (signal: AbortSignal) => Promise<void>;
  readonly pid: number;
  /** First Ctrl-C (SIGINT/SIGTERM): stop testing and destroy the instance. */
  readonly interrupt?: AbortSignal;
  /** Second Ctrl-C: stop waiting for the destroy too. */
  readonly force?: AbortSignal;
  readonly clock?: Clock;
  /** The drivers by `Containers.CloudVMs.Driver` name (default: ec2, azure, gce, loopback, stub). */
  readonly drivers?: DriverRegistry;
  /** Test hook: the instance secret. */
  readonly newSecret?: () => string;
}

/** A factory that loads its driver module on first use. */
function lazy(load: () => Promise<DriverFactory>): DriverFactory {
  return async (context) => (await load())(context);
}

/**
 * The drivers cloudtest offers. The cloud SDKs load only when their driver is chosen: the AWS
 * and Azure SDKs take seconds to import, which a flag error or a stub run should not pay.
 */
export function defaultDrivers(): DriverRegistry {
  return createDriverRegistry({
    ec2: lazy(async () => (await import("@dispatch-cloud/driver-ec2")).createEc2Driver),
    azure: lazy(async () => (await import("@dispatch-cloud/driver-azure")).createAzureDriver()),
    gce: lazy(async () => (await import("@dispatch-cloud/driver-gce")).createGceDriver),
    loopback: loopbackDriver,
    stub: lazy(async () => (await import("@dispatch-cloud/driver-stub")).stubDriver),
  });
}

/** The cheapest type by Price; ties go to the first name in sort order, so runs repeat. */
function cheapest(types: readonly InstanceType[]): InstanceType | undefined {
  let best: InstanceType | undefined;
  for (const t of [...types].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0))) {
    if (best === undefined || t.Price < best.Price) best = t;
  }
  return best;
}

interface PerRunKey {
  readonly key: string;
  /** The log field naming a run's entry. */
  readonly field: string;
  readonly single: (entry: unknown) => unknown;
}
/**
 * DriverParameters lists that cloudtest splits into one run per entry, so each entry is proven
 * to work: EC2's subnets (as Arvados does) and GCE's zones (a machine type or image may be
 * missing from one). Each run gets the entry the way that key takes a single one.
 */
const PER_RUN_KEYS: readonly PerRunKey[] = [
  { key: "SubnetID", field: "SubnetID", single: (s) => s },
  { key: "Zones", field: "Zone", single: (z) => [z] },
];

/** The first such list with several entries, under its key as written (matched as drivers do). */
function perRunList(
  parameters: Readonly<Record<string, unknown>>,
): (PerRunKey & { entries: unknown[] }) | undefined {
  for (const per of PER_RUN_KEYS) {
    const { key } = per;
    const written = Object.hasOwn(parameters, key)
      ? key
      : Object.keys(parameters).find((k) => k.toLowerCase() === key.toLowerCase());
    const value = written === undefined ? undefined : parameters[written];
    if (written !== undefined && Array.isArray(value) && value.length > 1) {
      return { ...per, key: written, entries: value };
    }
  }
  return undefined;
}

/**
 * Runs cloudtest and returns its exit status: 0 when every check passed, 2 for a bad command
 * line, 1 for anything else. Never throws.
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseFlags(argv, io);
  if (parsed.kind === "help") return 0;
  if (parsed.kind === "usage-error") return 2;
  const flags = parsed.flags;
  const clock = io.clock ?? systemClock;
  const secrets = new Set<string>();
  const logger = textLogger({ write: io.stderr, now: () => clock.now(), secrets });
  const fatal = (message: string): number => {
    logger.error({}, `fatal: ${message}`);
    logger.info({}, "exiting");
    return 1;
  };
  const never = new AbortController().signal;

  try {
    const loaded = await loadConfig({ path: flags.config, readStdin: io.readStdin });
    for (const w of loaded.warnings) logger.warn({}, w.text);
    if (!loaded.ok) {
      for (const e of loaded.errors) logger.error({}, e.text);
      return fatal(`cannot load config ${JSON.stringify(flags.config)}`);
    }
    const { cluster, dispatchKey } = loaded.config;
    const vms = cluster.Containers.CloudVMs;
    if (dispatchKey === null) {
      return fatal(
        "error loading Containers.DispatchPrivateKey: no key configured (cloudtest logs in to the instance with it)",
      );
    }
    const drivers = io.drivers ?? defaultDrivers();
    let factory;
    try {
      factory = drivers.lookupDriver(vms.Driver);
    } catch (err) {
      if (err instanceof UnsupportedDriverError) return fatal(err.message);
      throw err;
    }

    let types: InstanceType[] = Object.values(cluster.InstanceTypes);
    if (vms.Driver === "loopback") {
      const problems = validateLoopbackInstanceTypes(Object.keys(cluster.InstanceTypes));
      if (problems.length > 0) return fatal(problems.join("; "));
      if (types.length === 0) types = [localhostInstanceType()];
    }
    if (types.length === 0) return fatal("no instance types are configured");
    let instanceType: InstanceType | undefined;
    if (flags.instanceType !== "") {
      instanceType = types.find((t) => t.Name === flags.instanceType);
      if (instanceType === undefined)
        return fatal(
          `requested instance type ${JSON.stringify(flags.instanceType)} is not configured`,
        );
    } else {
      instanceType = cheapest(types);
    }
    if (instanceType === undefined) return fatal("no instance types are configured");

    const sharedTags: InstanceTags = {
      ...vms.ResourceTags,
      [`${vms.TagKeyPrefix}CloudTestPID`]: String(io.pid),
    };
    const settings: RunSettings = {
      instanceSetId: instanceSetId(flags.instanceSetId),
      imageId: flags.imageId !== "" ? flags.imageId : vms.ImageID,
      instanceType,
      destroyExisting: flags.destroyExisting,
      command: flags.command,
      pauseBeforeDestroy: flags.pauseBeforeDestroy,
      cloudVMs: vms,
      dispatchKey,
      sharedTags,
    };
    logger.info(
      {
        Driver: vms.Driver,
        InstanceSetID: settings.instanceSetId,
        InstanceType: instanceType.Name,
        ImageID: settings.imageId,
      },
      "starting cloudtest",
    );

    let newExecutor;
    try {
      newExecutor = createSshExecutorFactory({
        privateKey: dispatchKey.text,
        port: vms.SSHPort === "" ? "ssh" : vms.SSHPort,
        logger,
      });
    } catch (err) {
      return fatal(`error loading Containers.DispatchPrivateKey: ${errorMessage(err)}`);
    }

    // One run per subnet (or zone) when several are configured, so each is proven to work.
    const base = vms.DriverParameters;
    const split = perRunList(base);
    const runs: {
      label: string;
      parameters: Readonly<Record<string, unknown>>;
      fields: Record<string, unknown>;
    }[] =
      split === undefined
        ? [{ label: "", parameters: base, fields: {} }]
        : split.entries.map((entry, i) => ({
            label: `${split.key}[${i}] ${String(entry)}`,
            parameters: { ...base, [split.key]: split.single(entry) },
            fields: { [split.field]: entry },
          }));

    const reports: RunReport[] = [];
    for (const run of runs) {
      if (run.label !== "") {
        logger.info({}, `running tests using ${run.label}`);
        io.stdout(`=== ${run.label}\n`);
      }
      reports.push(
        await runOnce(
          settings,
          {
            factory,
            parameters: run.parameters,
            logger: run.label === "" ? logger : logger.child(run.fields),
            clock,
            print: (line) => io.stdout(`${line}\n`),
            waitForEnter: async (signal) => {
              io.stderr("Press Enter to continue: ");
              await io.waitForEnter(signal);
            },
            newExecutor,
            addSecret: (s) => secrets.add(s),
            interrupt: io.interrupt ?? never,
            force: io.force ?? never,
            ...(io.newSecret ? { newSecret: io.newSecret } : {}),
          },
          run.label,
        ),
      );
      if (io.interrupt?.aborted) break;
    }
    io.stdout(formatSummary(reports));
    const ok = reports.length === runs.length && reports.every((r) => r.ok);
    if (!ok) logger.error({}, "cloudtest failed");
    logger.info({}, "exiting");
    return ok ? 0 : 1;
  } catch (err) {
    return fatal(errorMessage(err));
  }
}
