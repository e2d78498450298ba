// One container's crunch-run on one worker, as Arvados's remoteRunner: started with
// `--detach`, stopped with `--kill` and given up on after TimeoutTERM.
import type { ContainerUuid, Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";
import { detachCommand, detachStdin, killCommand } from "./commands.js";
import { SIGTERM } from "./settings.js";
import type { ContainerToStart } from "./types.js";
import type { Worker } from "./worker.js";

export class RemoteRunner {
  /** A kill was requested (the escalation loop runs at most once). */
  stopping = false;
  /** TimeoutTERM passed without the process going away. */
  givenUp = false;
  /** No longer tracked: it exited, or its worker went away. */
  closed = false;

  constructor(
    readonly worker: Worker,
    readonly uuid: ContainerUuid,
  ) {}

  close(): void {
    this.closed = true;
  }

  /**
   * Run `crunch-run --detach` with the container's settings on stdin. Failures are logged, not
   * thrown: a runner that did not start shows up at the next run probe as an exited container.
   */
  async start(ctr: ContainerToStart): Promise<void> {
    const w = this.worker;
    const { settings: s, runnerProgram } = w.ctx;
    const log = w.logger.child({ ContainerUUID: ctr.uuid });
    const cmd = detachCommand(
      runnerProgram.program!.cmd,
      s.runnerArgs,
      ctr.uuid,
      w.instance.remoteUser,
    );
    const c = s.config;
    const stdin = detachStdin({
      uuid: ctr.uuid,
      instanceType: w.instType,
      address: w.instance.address,
      apiHost: c.apiHost,
      apiInsecure: c.apiInsecure,
      systemRootToken: c.systemRootToken,
      localKeepBlobBuffersPerVcpu: c.localKeepBlobBuffersPerVcpu,
      driver: c.driver,
      clusterConfigJson: c.clusterConfigJson,
    });
    try {
      // Bounded like a probe: a start that hangs fails and surfaces at the next run probe as
      // an exited container, instead of staying "starting" forever.
      const r = await w.exec(cmd, { ...w.commandOptions(), stdin });
      if (r.exitCode === 0) log.info({}, "crunch-run process started");
      else {
        log.error(
          {
            stdout: r.stdout.toString(),
            stderr: r.stderr.toString(),
            error: `exit status ${r.exitCode}`,
          },
          "error starting crunch-run process",
        );
      }
    } catch (err) {
      log.error({ error: errorMessage(err) }, "error starting crunch-run process");
    }
  }

  /** Start the kill escalation (once): SIGTERM now and every TimeoutSignal. */
  kill(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.worker.logger.info(
      { ContainerUUID: this.uuid, Reason: reason },
      "killing crunch-run process",
    );
    this.worker.ctx.spawn(this.#killLoop(), false);
  }

  /** SIGTERM now and every TimeoutSignal until gone; give up after TimeoutTERM (no SIGKILL). */
  async #killLoop(): Promise<void> {
    const ctx = this.worker.ctx;
    const deadline = ctx.now() + ctx.settings.timeoutTermMs;
    const log = this.worker.logger.child({ ContainerUUID: this.uuid });
    for (;;) {
      if (this.closed) return;
      if (ctx.now() > deadline) {
        log.debug({}, "giving up");
        this.givenUp = true;
        if (this.worker.idleBehavior === "hold") {
          log.warn({}, "unkillable container, but worker has IdleBehavior=Hold");
        } else {
          log.warn({}, "unkillable container, draining worker");
          this.worker.setIdleBehavior("drain");
        }
        return;
      }
      await ctx.tracked(this.#sendTerm(log));
      if (this.closed) return;
      if (!(await ctx.sleep(ctx.settings.timeoutSignalMs))) return;
    }
  }

  async #sendTerm(log: Logger): Promise<void> {
    const w = this.worker;
    log.info({ Signal: SIGTERM }, "sending signal");
    const cmd = killCommand(
      w.ctx.runnerProgram.program!.cmd,
      SIGTERM,
      this.uuid,
      w.instance.remoteUser,
    );
    try {
      const r = await w.exec(cmd, w.commandOptions());
      if (r.exitCode === 0) {
        // Only a running runner is closed; a starting one keeps getting SIGTERMs.
        if (w.closeRunner(this.uuid)) w.ctx.notify();
      } else {
        log.info(
          { error: `exit status ${r.exitCode}`, stderr: r.stderr.toString() },
          "kill attempt unsuccessful",
        );
      }
    } catch (err) {
      if (!w.ctx.stopSignal.aborted) {
        log.info({ error: errorMessage(err) }, "kill attempt unsuccessful");
      }
    }
  }
}
