import { createHash } from "node:crypto";
import type { Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";
import { installCommand, md5sumCommand, md5sumExpected } from "./commands.js";
import type { Worker } from "./worker.js";

/** The crunch-run the pool runs on its VMs. */
export interface RunnerProgram {
  /** The remote command that runs crunch-run. */
  readonly cmd: string;
  /** The binary to install, or null when nothing is deployed. */
  readonly data: Buffer | null;
  readonly hash: string;
}

export interface RunnerProgramOptions {
  /** `CloudVMs.DeployRunnerBinary`; "" deploys nothing and runs `crunchRunCommand` as is. */
  readonly deployRunnerBinary: string;
  readonly deployRunnerDirectory: string;
  readonly crunchRunCommand: string;
  readonly readFile: (path: string) => Promise<Buffer>;
  readonly logger: Logger;
  /** Called once the binary is loaded. */
  readonly onLoaded: () => void;
}

/**
 * DeployRunnerBinary, loaded once and installed on every VM as `<dir>/crunch-run~<md5>`. A failed
 * load is retried at every use, so fixing the file needs no restart.
 */
export class RunnerProgramLoader {
  #program: RunnerProgram | null = null;
  #error: string | null = null;
  #loading: Promise<void> | null = null;
  readonly #o: RunnerProgramOptions;

  constructor(o: RunnerProgramOptions) {
    this.#o = o;
    if (o.deployRunnerBinary === "")
      this.#program = { cmd: o.crunchRunCommand, data: null, hash: "" };
  }

  /** The loaded program, or null while it cannot be loaded. */
  get program(): RunnerProgram | null {
    return this.#program;
  }

  /** Why the last load failed. */
  get error(): string {
    return this.#error ?? "not loaded";
  }

  /** Load the binary unless it is loaded; concurrent calls share one attempt. */
  async load(): Promise<void> {
    if (this.#program !== null) return;
    if (this.#loading === null) {
      const path = this.#o.deployRunnerBinary;
      this.#loading = (async () => {
        try {
          const data = await this.#o.readFile(path);
          const hash = createHash("md5").update(data).digest("hex");
          const dir = this.#o.deployRunnerDirectory.replace(/\/+$/, "");
          this.#program = { cmd: `${dir}/crunch-run~${hash}`, data, hash };
          this.#error = null;
          this.#o.onLoaded();
        } catch (err) {
          this.#error = errorMessage(err);
          this.#o.logger.error({ path, error: this.#error }, "failed to load runner program");
        } finally {
          this.#loading = null;
        }
      })();
    }
    await this.#loading;
  }
}

/**
 * Install the runner on a worker unless the right one is there (`md5sum` first, then the upload
 * on stdin). Returns an error message, or null when the runner is in place.
 */
export async function deployRunner(w: Worker): Promise<string | null> {
  const loader = w.ctx.runnerProgram;
  await loader.load();
  const runner = loader.program;
  if (runner === null) return `error loading runner binary: ${loader.error}`;
  if (runner.data === null) return null;
  const log = w.logger.child({ hash: runner.hash, path: runner.cmd });
  try {
    const r = await w.exec(md5sumCommand(runner.cmd), w.commandOptions());
    if (
      r.exitCode === 0 &&
      r.stderr.length === 0 &&
      r.stdout.toString() === md5sumExpected(runner.hash, runner.cmd)
    ) {
      log.info({}, "runner binary already exists on worker, with correct hash");
      return null;
    }
  } catch {
    // Fall through to installing: an unreachable VM fails there with its own error.
  }
  const cmd = installCommand(runner.cmd, w.instance.remoteUser);
  log.info({ cmd }, "installing runner binary on worker");
  let error: string;
  let stderr = "";
  try {
    // Deviation: Arvados bounds no upload; a VM that goes silent mid-upload would keep its
    // probe (and so the worker) waiting forever. The upload runs only while booting, so
    // TimeoutBooting is the most it can usefully take.
    const r = await w.exec(cmd, {
      stdin: runner.data,
      signal: w.ctx.stopSignal,
      timeoutMs: w.ctx.settings.timeoutBootingMs,
    });
    if (r.exitCode === 0) return null;
    error = `exit status ${r.exitCode}`;
    stderr = r.stderr.toString();
  } catch (err) {
    error = errorMessage(err);
  }
  log.warn({ error, stderr }, "error copying runner binary");
  return error;
}
