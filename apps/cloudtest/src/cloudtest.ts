import { randomBytes } from "node:crypto";
import type {
  Clock,
  InstanceSetId,
  InstanceType,
  Logger,
  ExecutorTarget,
} from "@dispatch-cloud/arvados-types";
import {
  errorMessage,
  initCommandWithSecret,
  tagKeys,
  tagsMatch,
  type DriverFactory,
  type Instance,
  type InstanceSet,
  type InstanceTags,
} from "@dispatch-cloud/cloud-driver-api";
import type { CloudVMsConfig, DispatchKey } from "@dispatch-cloud/config";
import type { SshExecutor } from "@dispatch-cloud/ssh-executor";
import { formatElapsed, type RunReport, type StepRecord, type StepStatus } from "./report.js";

/** The settings of one test run, resolved from flags and config. */
export interface RunSettings {
  readonly instanceSetId: InstanceSetId;
  readonly imageId: string;
  readonly instanceType: InstanceType;
  readonly destroyExisting: boolean;
  /** "" = none. */
  readonly command: string;
  readonly pauseBeforeDestroy: boolean;
  readonly cloudVMs: CloudVMsConfig;
  readonly dispatchKey: DispatchKey;
  /** `ResourceTags` plus `<prefix>CloudTestPID`: given to the driver and put on the instance. */
  readonly sharedTags: InstanceTags;
}

export interface RunDeps {
  readonly factory: DriverFactory;
  /** DriverParameters for this run (SubnetID or Zones narrowed to one entry if there were many). */
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Progress lines for the operator (step start and end). */
  readonly print: (line: string) => void;
  /** Asks the operator to press Enter (for -pause-before-destroy). */
  readonly waitForEnter: (signal: AbortSignal) => Promise<void>;
  /** The SSH executor, as Arvados's cloudtest uses it. */
  readonly newExecutor: (target: ExecutorTarget) => SshExecutor;
  /** Registers a value the logger must blank out (the instance secret). */
  readonly addSecret: (secret: string) => void;
  /** The first Ctrl-C: stop testing, go straight to destroying the instance. */
  readonly interrupt: AbortSignal;
  /** A second Ctrl-C: stop destroying too. */
  readonly force: AbortSignal;
  /** Test hook: the instance secret (default 160 random bits as 40 hex digits). */
  readonly newSecret?: () => string;
}

type StepOutcome = { readonly ok: boolean; readonly detail: string };

class Interrupted extends Error {
  override readonly name = "Interrupted";
}

/** `host:port` or bare host → the `ssh` command an operator can paste. */
export function loginHint(address: string, user: string, defaultPort: string): string {
  let host = address;
  let port = defaultPort === "" ? "22" : defaultPort;
  const bracketed = /^\[(.*)\]:(\d+)$/.exec(address);
  const hostPort = /^([^:]+):(\d+)$/.exec(address);
  if (bracketed !== null) [host, port] = [bracketed[1]!, bracketed[2]!];
  else if (hostPort !== null) [host, port] = [hostPort[1]!, hostPort[2]!];
  return `ssh -p${port} ${user}@${host}`;
}

/**
 * One cloudtest run against one driver configuration (spec cloud-side §8 steps 3–10): refuse
 * or clear existing instances, create one, check its tags, wait for the boot probe over SSH,
 * run the optional command, and always destroy it, re-listing until it is gone.
 */
export async function runOnce(
  settings: RunSettings,
  deps: RunDeps,
  label = "",
): Promise<RunReport> {
  const { clock, logger, print } = deps;
  const vms = settings.cloudVMs;
  const keys = tagKeys(vms.TagKeyPrefix);
  const ourFilter: InstanceTags = { [keys.instanceSetId]: settings.instanceSetId };
  const steps: StepRecord[] = [];
  let interrupted = false;

  const step = async (
    name: string,
    signal: AbortSignal,
    body: () => Promise<StepOutcome>,
  ): Promise<boolean> => {
    const start = clock.now();
    print(`==> ${name} ...`);
    let status: StepStatus;
    let detail: string;
    try {
      if (signal.aborted) throw new Interrupted("interrupted before it started");
      const r = await body();
      status = r.ok ? "passed" : "failed";
      detail = r.detail;
    } catch (err) {
      if (signal.aborted) {
        status = "interrupted";
        detail = `interrupted (${errorMessage(signal.reason)})`;
        interrupted = true;
      } else {
        status = "failed";
        detail = errorMessage(err);
      }
    }
    const elapsedMs = clock.now() - start;
    steps.push({ name, status, detail, elapsedMs });
    print(`<== ${name}: ${status} in ${formatElapsed(elapsedMs)}: ${detail}`);
    if (status !== "passed") logger.error({ step: name, error: detail }, `${name} ${status}`);
    return status === "passed";
  };

  const report = (instance: Instance | undefined, gone: boolean): RunReport => ({
    label,
    steps,
    instance: { id: instance?.id ?? null, gone },
    ok: !interrupted && steps.every((s) => s.status === "passed"),
  });

  let set: InstanceSet | undefined;
  await step("start cloud driver", deps.interrupt, async () => {
    set = await deps.factory({
      parameters: deps.parameters,
      instanceSetId: settings.instanceSetId,
      sharedResourceTags: settings.sharedTags,
      logger,
      registry: null,
    });
    return { ok: true, detail: `driver ${JSON.stringify(vms.Driver)} ready` };
  });
  if (set === undefined) return report(undefined, false);
  const is: InstanceSet = set;

  const listOurs = async (signal: AbortSignal): Promise<Instance[]> =>
    (await is.instances(ourFilter, signal)).filter((i) => tagsMatch(i.tags, ourFilter));

  let instance: Instance | undefined;
  let gone = false;
  try {
    // ---- existing instances ----
    const clear = await step("check for existing instances", deps.interrupt, async () => {
      let destroyed = 0;
      for (;;) {
        // Unfiltered, so the count tells the operator what the credentials can see at all.
        const all = await is.instances({}, deps.interrupt);
        const ours = all.filter((i) => tagsMatch(i.tags, ourFilter));
        logger.info(
          { N: all.length, Ours: ours.length, [keys.instanceSetId]: settings.instanceSetId },
          "got instance list",
        );
        if (ours.length === 0) {
          return {
            ok: true,
            detail:
              destroyed === 0
                ? `no instances tagged ${keys.instanceSetId}=${settings.instanceSetId} (${all.length} visible in all)`
                : `destroyed ${destroyed} existing instance(s)`,
          };
        }
        if (!settings.destroyExisting) {
          for (const i of ours) logger.info({ Instance: i.id }, "existing instance");
          return {
            ok: false,
            detail: `found ${ours.length} existing instance(s) (${ours.map((i) => i.id).join(", ")}): cannot continue with existing instances -- clean up manually, use -destroy-existing=true, or choose a different -instance-set-id`,
          };
        }
        for (const i of ours) {
          const t0 = clock.now();
          try {
            await i.destroy(deps.interrupt);
            destroyed++;
            logger.info(
              { Instance: i.id, Duration: formatElapsed(clock.now() - t0) },
              "destroyed existing instance",
            );
          } catch (err) {
            if (deps.interrupt.aborted) throw err;
            logger.warn(
              { Instance: i.id, Duration: formatElapsed(clock.now() - t0), error: err },
              "error destroying existing instance",
            );
          }
        }
        logger.info({ SyncInterval: formatElapsed(vms.SyncInterval) }, "waiting before re-listing");
        await clock.sleep(vms.SyncInterval, deps.interrupt);
      }
    });
    if (!clear) return report(undefined, false);

    // ---- create ----
    const secret = (deps.newSecret ?? (() => randomBytes(20).toString("hex")))();
    deps.addSecret(secret);
    const tags: InstanceTags = {
      ...settings.sharedTags,
      [keys.instanceSetId]: settings.instanceSetId,
      [keys.instanceSecret]: secret,
    };
    const bootDeadline = clock.now() + vms.TimeoutBooting;
    await step("create instance", deps.interrupt, async () => {
      const publicKey = vms.DeployPublicKey ? settings.dispatchKey.authorizedKey : null;
      logger.info(
        {
          InstanceType: settings.instanceType.Name,
          ProviderType: settings.instanceType.ProviderType,
          ImageID: settings.imageId,
          Tags: { ...tags, [keys.instanceSecret]: "[redacted]" },
          InitCommand: vms.InstanceInitCommand,
          PublicKey: publicKey,
        },
        "creating instance",
      );
      try {
        instance = await is.create(
          {
            instanceType: settings.instanceType,
            imageId: settings.imageId,
            tags,
            initCommand: initCommandWithSecret(secret, vms.InstanceInitCommand),
            publicKey,
          },
          deps.interrupt,
        );
      } catch (err) {
        if (deps.interrupt.aborted) throw err;
        // The call may have failed after the cloud accepted it: wait for the instance to
        // show up so it can be destroyed, until the boot deadline.
        logger.error({ error: err }, "error creating test instance");
        logger.info({ Deadline: new Date(bootDeadline) }, "waiting for instances to appear");
        for (;;) {
          const found = await listOurs(deps.interrupt).catch((e: unknown) => {
            if (deps.interrupt.aborted) throw e;
            logger.warn({ error: e }, "error getting instance list");
            return [];
          });
          instance = found.find((i) => i.tags[keys.instanceSecret] === secret);
          if (instance !== undefined) {
            logger.info({ Instance: instance.id }, "instance appeared after create error");
            return {
              ok: false,
              detail: `create failed (${errorMessage(err)}), but instance ${instance.id} appeared`,
            };
          }
          if (clock.now() >= bootDeadline) {
            return {
              ok: false,
              detail: `create failed: ${errorMessage(err)}; no instance appeared: timed out after ${formatElapsed(vms.TimeoutBooting)}`,
            };
          }
          await clock.sleep(Math.min(vms.SyncInterval, bootDeadline - clock.now()), deps.interrupt);
        }
      }
      const made: Instance = instance;
      logger.info({ Instance: made.id }, "created instance");
      // The listing is what the daemon will see: the instance must be in it.
      const listed = (await listOurs(deps.interrupt)).find((i) => i.id === made.id);
      if (listed === undefined) {
        return {
          ok: false,
          detail: `instance ${made.id}: cloud/driver Create succeeded, but instance is not in list`,
        };
      }
      instance = listed;
      return { ok: true, detail: `instance ${made.id} (${made.providerType})` };
    });
    if (instance === undefined) return report(undefined, false);
    let current: Instance = instance;

    let hinted = false;
    const hint = (): void => {
      if (hinted || current.address === "") return;
      hinted = true;
      const text = loginHint(current.address, current.remoteUser, vms.SSHPort);
      print(`    login to the instance with: ${text}`);
      logger.info({ Instance: current.id, Command: text }, "login hint");
    };
    hint();

    // ---- tags ----
    await step("check tags", deps.interrupt, () => {
      const expected: InstanceTags = {
        ...settings.sharedTags,
        [keys.instanceSetId]: settings.instanceSetId,
        [keys.instanceSecret]: secret,
      };
      const problems: string[] = [];
      for (const [k, v] of Object.entries(expected)) {
        const shown = k === keys.instanceSecret ? "(the instance secret)" : JSON.stringify(v);
        if (!Object.hasOwn(current.tags, k)) {
          logger.error({ Key: k, ExpectedValue: shown }, "tag is missing from test instance");
          problems.push(`tag ${k} is missing from test instance`);
        } else if (current.tags[k] !== v) {
          logger.error(
            { Key: k, ExpectedValue: shown },
            "tag has the wrong value on test instance",
          );
          problems.push(`tag ${k} has the wrong value (expected ${shown})`);
        }
      }
      if (problems.length > 0) return Promise.resolve({ ok: false, detail: problems.join("; ") });
      logger.info({}, "all expected tags are present");
      return Promise.resolve({
        ok: true,
        detail: `all ${Object.keys(expected).length} expected tags are present`,
      });
    });

    // ---- boot probe over SSH ----
    const target = (inst: Instance): ExecutorTarget => ({
      address: inst.address,
      remoteUser: inst.remoteUser,
      // As the daemon does: the secret comes from the instance's own tag.
      instanceSecret: inst.tags[keys.instanceSecret] ?? "",
      verifyHostKey: (hostKey, session, signal) => inst.verifyHostKey(hostKey, session, signal),
    });
    const executor = deps.newExecutor(target(current));
    try {
      const bootProbe = vms.BootProbeCommand === "" ? "true" : vms.BootProbeCommand;
      const booted = await step("boot probe", deps.interrupt, async () => {
        let lastError = "";
        let attempts = 0;
        for (;;) {
          const remaining = bootDeadline - clock.now();
          if (current.address === "") {
            lastError = "instance has no address yet";
          } else if (remaining > 0) {
            attempts++;
            try {
              const r = await executor.execute(bootProbe, {
                signal: deps.interrupt,
                timeoutMs: Math.min(remaining, vms.TimeoutProbe),
              });
              if (r.exitCode === 0) {
                logger.info({ Command: bootProbe, attempts }, "boot probe succeeded");
                return {
                  ok: true,
                  detail: `${JSON.stringify(bootProbe)} succeeded (attempt ${attempts})`,
                };
              }
              lastError = `exit status ${r.exitCode}${stderrTail(r.stderr)}`;
            } catch (err) {
              if (deps.interrupt.aborted) throw err;
              lastError = errorMessage(err);
            }
            logger.info({ Command: bootProbe, error: lastError }, "boot probe failed");
          }
          if (clock.now() >= bootDeadline) {
            return {
              ok: false,
              detail: `timed out after ${formatElapsed(vms.TimeoutBooting)} (TimeoutBooting) after ${attempts} attempt(s); last error: ${lastError}`,
            };
          }
          await clock.sleep(
            Math.min(vms.ProbeInterval, bootDeadline - clock.now()),
            deps.interrupt,
          );
          try {
            const fresh = (await listOurs(deps.interrupt)).find((i) => i.id === current.id);
            if (fresh !== undefined) {
              current = fresh;
              executor.setTarget(target(current));
              hint();
            }
          } catch (err) {
            if (deps.interrupt.aborted) throw err;
            logger.warn({ error: err }, "error getting instance list");
          }
        }
      });

      // ---- the operator's command ----
      if (settings.command !== "" && booted) {
        await step("run command", deps.interrupt, async () => {
          const r = await executor.execute(settings.command, { signal: deps.interrupt });
          const out = r.stdout.toString("utf8");
          const err = r.stderr.toString("utf8");
          logger.info(
            { Command: settings.command, ExitCode: r.exitCode, stdout: out, stderr: err },
            "command finished",
          );
          for (const line of out.split("\n").filter((l) => l !== "")) print(`    stdout: ${line}`);
          for (const line of err.split("\n").filter((l) => l !== "")) print(`    stderr: ${line}`);
          return r.exitCode === 0
            ? { ok: true, detail: `${JSON.stringify(settings.command)} exited 0` }
            : {
                ok: false,
                detail: `${JSON.stringify(settings.command)} exited ${r.exitCode}${stderrTail(r.stderr)}`,
              };
        });
      }

      if (settings.pauseBeforeDestroy && !deps.interrupt.aborted) {
        hinted = false;
        hint();
        try {
          await deps.waitForEnter(deps.interrupt);
        } catch {
          // Ctrl-C at the prompt: go on to destroy.
        }
      }
    } finally {
      await executor.close().catch(() => undefined);
    }
  } finally {
    // ---- destroy, always ----
    if (instance !== undefined) {
      const doomed: Instance = instance;
      await step("destroy instance", deps.force, async () => {
        for (let attempt = 1; ; attempt++) {
          const t0 = clock.now();
          try {
            await doomed.destroy(deps.force);
            logger.info(
              { Instance: doomed.id, Duration: formatElapsed(clock.now() - t0), attempt },
              "destroyed instance",
            );
          } catch (err) {
            if (deps.force.aborted) throw err;
            logger.warn({ Instance: doomed.id, error: err, attempt }, "error destroying instance");
          }
          try {
            const listed = await listOurs(deps.force);
            if (!listed.some((i) => i.id === doomed.id)) {
              gone = true;
              logger.info({ Instance: doomed.id }, "instance is gone from the list");
              return {
                ok: true,
                detail: `instance ${doomed.id} is gone (${attempt} destroy call(s))`,
              };
            }
            logger.info({ Instance: doomed.id }, "instance still listed: destroying again");
          } catch (err) {
            if (deps.force.aborted) throw err;
            logger.warn({ error: err }, "error getting instance list");
          }
          // Arvados retries a failed listing at once; waiting SyncInterval spares a failing API.
          await clock.sleep(vms.SyncInterval, deps.force);
        }
      });
    }
    await is.stop().catch((err: unknown) => logger.warn({ error: err }, "error stopping driver"));
  }
  return report(instance, gone);
}

function stderrTail(stderr: Buffer): string {
  const text = stderr.toString("utf8").trim();
  if (text === "") return "";
  const last = text.split("\n").slice(-3).join(" | ");
  return `: ${last.length > 300 ? `${last.slice(0, 300)}…` : last}`;
}
