import type { Clock, ExecResult, Logger } from "@dispatch-cloud/arvados-types";
import {
  INSTANCE_SECRET_PATH,
  errorMessage,
  type InstanceTags,
  type SshKeyPair,
} from "@dispatch-cloud/cloud-driver-api";
import type { ApiRequester } from "./api.js";
import { VmFiles, type ContentStore } from "./files.js";
import { shellSplit } from "./shell.js";

export interface ExecRequest {
  readonly env?: Readonly<Record<string, string>>;
  /** Read the command's stdin to its end; only commands that read stdin call it. */
  readonly stdin?: () => Promise<Buffer>;
  readonly signal?: AbortSignal;
}

/** One command a fake VM received. */
export interface VmCommand {
  readonly command: string;
  readonly env: Readonly<Record<string, string>>;
  readonly at: number;
}

/** A simulated crunch-run process on a fake VM. */
export interface SimulatedRun {
  readonly uuid: string;
  readonly pid: number;
  /** `running` until it finishes; `stale` after `markStale` (listed as `<uuid> stale`). */
  readonly state: "running" | "stale";
  /** The JSON crunch-run read from stdin with `--stdin-config`. */
  readonly config: unknown;
  /** The arguments between `--detach` and the container UUID. */
  readonly args: readonly string[];
  readonly startedAt: number;
}

interface RunState {
  uuid: string;
  pid: number;
  state: "running" | "stale";
  config: unknown;
  args: string[];
  startedAt: number;
  abort: AbortController;
  killed: boolean;
}

/** What a fake VM needs from its cloud. */
export interface VmEnvironment {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly apiRequest: ApiRequester;
  readonly apiScheme: "https" | "http";
  readonly containerRunTimeMs: number;
  readonly containerExitCode: number;
  /** Where file contents live, shared by all the cloud's VMs. */
  readonly files: ContentStore;
}

export interface VmInit {
  readonly id: string;
  readonly providerType: string;
  readonly tags: InstanceTags;
  readonly initCommand: string;
  readonly authorizedKey: string | null;
  readonly hostKey: SshKeyPair;
  readonly remoteUser: string;
  readonly createdAt: number;
  readonly bootAt: number;
  readonly brokenAt: number | undefined;
  readonly silentAt: number | undefined;
}

const enc = (s: string): Buffer => Buffer.from(s);
const result = (exitCode: number, stdout = "", stderr = ""): ExecResult => ({
  exitCode,
  stdout: enc(stdout),
  stderr: enc(stderr),
});

/** Is this word a crunch-run command (`crunch-run`, or a deployed `…/crunch-run~<md5>`)? */
function isRunner(word: string): boolean {
  const base = word.slice(word.lastIndexOf("/") + 1);
  return base === "crunch-run" || base.startsWith("crunch-run~");
}

function hangUntilAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    signal?.addEventListener("abort", () => reject(new Error("command aborted")), { once: true });
  });
}

/**
 * One simulated VM: its files, its crunch-run processes, and a command handler that answers
 * the commands the dispatcher runs over SSH the way a VM with crunch-run installed does.
 */
export class FakeVm {
  readonly id: string;
  readonly providerType: string;
  readonly initCommand: string;
  readonly authorizedKey: string | null;
  readonly hostKey: SshKeyPair;
  readonly remoteUser: string;
  readonly createdAt: number;
  /** SSH `host:port` (or a placeholder when SSH is not served). Set by the cloud. */
  address = "";
  tags: InstanceTags;
  bootAt: number;
  brokenAt: number | undefined;
  silentAt: number | undefined;
  /** Set once destroyed or vanished: connections are refused and commands fail. */
  gone = false;
  /** `--kill` fails with "still alive" while set. */
  unkillable = false;
  /**
   * Files on the VM (the instance secret, uploaded runner binaries), path → content. Equal
   * contents are one shared Buffer across the cloud's VMs: replace a file, never write into it.
   */
  readonly files: VmFiles;
  /** Every command received, oldest first. */
  readonly commands: VmCommand[] = [];
  /** The last price history sent with `--list --stdin-prices`. */
  lastPrices: unknown = undefined;
  readonly #runs = new Map<string, RunState>();
  #nextPid = 1000;
  readonly #env: VmEnvironment;

  constructor(init: VmInit, env: VmEnvironment) {
    this.id = init.id;
    this.providerType = init.providerType;
    this.tags = { ...init.tags };
    this.initCommand = init.initCommand;
    this.authorizedKey = init.authorizedKey;
    this.hostKey = init.hostKey;
    this.remoteUser = init.remoteUser;
    this.createdAt = init.createdAt;
    this.bootAt = init.bootAt;
    this.brokenAt = init.brokenAt;
    this.silentAt = init.silentAt;
    this.#env = env;
    this.files = new VmFiles(env.files);
    // The init command writes the secret at first boot; the stub writes it at create.
    const m = /echo -n "([^"]*)" >\/var\/run\/arvados-instance-secret/.exec(init.initCommand);
    if (m !== null) this.files.set(INSTANCE_SECRET_PATH, enc(m[1]!));
  }

  /** The instance secret the init command wrote, or "" if none. */
  get secret(): string {
    return this.files.get(INSTANCE_SECRET_PATH)?.toString() ?? "";
  }

  booted(now = this.#env.clock.now()): boolean {
    return now >= this.bootAt;
  }
  silent(now = this.#env.clock.now()): boolean {
    return this.silentAt !== undefined && now >= this.silentAt;
  }
  broken(now = this.#env.clock.now()): boolean {
    return this.brokenAt !== undefined && now >= this.brokenAt;
  }
  /** Whether a new SSH connection would succeed now. */
  connectable(): boolean {
    return !this.gone && this.booted() && !this.silent();
  }

  /** Report `broken` from now on (or stop reporting it). */
  setBroken(broken: boolean): void {
    this.brokenAt = broken ? this.#env.clock.now() : undefined;
  }
  /** Stop answering from now on (or answer again). */
  setSilent(silent: boolean): void {
    this.silentAt = silent ? this.#env.clock.now() : undefined;
  }
  /** Finish booting now. */
  bootNow(): void {
    this.bootAt = Math.min(this.bootAt, this.#env.clock.now());
  }

  /** Simulated crunch-run processes, in start order. */
  runs(): SimulatedRun[] {
    return [...this.#runs.values()].map((r) => ({
      uuid: r.uuid,
      pid: r.pid,
      state: r.state,
      config: r.config,
      args: [...r.args],
      startedAt: r.startedAt,
    }));
  }

  /**
   * The process for `uuid` dies without updating the container, leaving its lock held (as when
   * arv-mount lingers): `--list` reports `<uuid> stale` until `clearStale`.
   */
  markStale(uuid: string): boolean {
    const r = this.#runs.get(uuid);
    if (r === undefined) return false;
    r.state = "stale";
    r.abort.abort();
    return true;
  }
  clearStale(uuid: string): void {
    if (this.#runs.get(uuid)?.state === "stale") this.#runs.delete(uuid);
  }

  /** The VM is gone: its processes die without a word to the API. */
  terminate(): void {
    this.gone = true;
    for (const r of this.#runs.values()) {
      r.killed = false;
      r.state = "stale";
      r.abort.abort();
    }
    this.#runs.clear();
  }

  /** Run one command as the VM's shell would. Hangs (until `signal`) while the VM is silent. */
  async exec(command: string, request: ExecRequest = {}): Promise<ExecResult> {
    const now = this.#env.clock.now();
    this.commands.push({ command, env: { ...request.env }, at: now });
    if (this.gone) throw new Error("connection closed: instance is gone");
    if (this.silent(now)) return hangUntilAborted(request.signal);
    let cmd = command.trim();
    if (cmd.startsWith("sudo ")) cmd = cmd.slice(5).trimStart();
    if (cmd.startsWith("sh -c ")) {
      const w = shellSplit(cmd);
      if (w !== undefined && w.length === 3) cmd = w[2]!;
    }
    if (cmd.includes('dstfile="') && cmd.includes('cat >"$dstfile"'))
      return this.#install(cmd, request);
    const words = shellSplit(cmd);
    if (words === undefined || words.length === 0) return result(2, "", "sh: syntax error\n");
    const [prog, ...args] = words as [string, ...string[]];
    if (prog === "cat") {
      const out: Buffer[] = [];
      for (const path of args) {
        const f = this.files.get(path);
        if (f === undefined) return result(1, "", `cat: ${path}: No such file or directory\n`);
        out.push(f);
      }
      return { exitCode: 0, stdout: Buffer.concat(out), stderr: Buffer.alloc(0) };
    }
    if (prog === "md5sum") {
      let out = "";
      for (const path of args) {
        const f = this.files.get(path);
        if (f === undefined) return result(1, out, `md5sum: ${path}: No such file or directory\n`);
        out += `${this.#env.files.md5(f)}  ${path}\n`;
      }
      return result(0, out);
    }
    if (isRunner(prog)) {
      // A deployed runner must have been uploaded; plain `crunch-run` is "installed".
      if (prog.includes("/") && !this.files.has(prog))
        return result(127, "", `sh: 1: ${prog}: not found\n`);
      return this.#crunchRun(args, request);
    }
    if (prog === "false") return result(1);
    // Anything else (the boot probe, `true`, …) succeeds: the VM is up.
    return result(0);
  }

  async #install(script: string, request: ExecRequest): Promise<ExecResult> {
    const m = /dstfile="([^"]+)"/.exec(script);
    if (m === null) return result(1, "", "sh: dstfile: parameter not set\n");
    const data = (await request.stdin?.()) ?? Buffer.alloc(0);
    this.files.set(m[1]!, data);
    return result(0);
  }

  async #crunchRun(args: string[], request: ExecRequest): Promise<ExecResult> {
    const flag = (name: string): boolean => args.includes(`--${name}`) || args.includes(`-${name}`);
    if (flag("list")) {
      if (flag("stdin-prices") && request.stdin !== undefined) {
        const data = await request.stdin();
        if (data.length > 0) {
          try {
            this.lastPrices = JSON.parse(data.toString());
          } catch {
            return result(1, "", "error parsing prices from stdin\n");
          }
        }
      }
      let out = this.broken() ? "broken\n" : "";
      for (const r of this.#runs.values())
        out += r.state === "stale" ? `${r.uuid} stale\n` : `${r.uuid}\n`;
      return result(0, out);
    }
    const killAt = args.findIndex((a) => a === "--kill" || a === "-kill");
    if (killAt >= 0) {
      const sig = args[killAt + 1] ?? "";
      const uuid = args[killAt + 2];
      if (uuid === undefined)
        return result(2, "", "missing required argument: container-uuid (try -help)\n");
      const r = this.#runs.get(uuid);
      if (r === undefined || r.state === "stale") return result(0);
      if (this.unkillable) {
        return result(1, "", `sent signal ${sig} to pid ${r.pid} but process is still alive\n`);
      }
      r.killed = true;
      r.abort.abort();
      this.#runs.delete(uuid);
      return result(0, "", `${uuid}: pid ${r.pid}: os: process already finished\n`);
    }
    if (flag("detach")) {
      const rest = args.filter((a) => a !== "--detach" && a !== "-detach");
      const uuid = rest.at(-1);
      if (uuid === undefined || uuid.startsWith("-")) {
        return result(2, "", "missing required argument: container-uuid (try -help)\n");
      }
      if (!flag("stdin-config"))
        return result(2, "", "stub crunch-run: --stdin-config is required\n");
      const raw = (await request.stdin?.()) ?? Buffer.alloc(0);
      let config: unknown;
      try {
        config = JSON.parse(raw.toString());
      } catch (err) {
        return result(1, "", `error reading config from stdin: ${errorMessage(err)}\n`);
      }
      if (this.#runs.has(uuid)) {
        return result(
          1,
          "",
          `error: lock /var/lock/crunch-run-${uuid}.lock: resource temporarily unavailable\n`,
        );
      }
      const run: RunState = {
        uuid,
        pid: this.#nextPid++,
        state: "running",
        config,
        args: rest.slice(0, -1).filter((a) => a !== "--stdin-config" && a !== "-stdin-config"),
        startedAt: this.#env.clock.now(),
        abort: new AbortController(),
        killed: false,
      };
      this.#runs.set(uuid, run);
      void this.#simulate(run);
      return result(0, `${JSON.stringify({ UUID: uuid, PID: run.pid })}\n`);
    }
    return result(2, "", "missing required argument: container-uuid (try -help)\n");
  }

  /** What crunch-run does with a container: Running, wait, Complete (or Cancelled when killed). */
  async #simulate(run: RunState): Promise<void> {
    const env = this.#env;
    const vars = (run.config as { Env?: Record<string, unknown> } | null)?.Env ?? {};
    const str = (k: string): string => (typeof vars[k] === "string" ? vars[k] : "");
    const host = str("ARVADOS_API_HOST");
    const update = async (fields: Record<string, unknown>): Promise<void> => {
      if (host === "") return;
      const base = /^https?:\/\//.test(host) ? host : `${env.apiScheme}://${host}`;
      const url = `${base.replace(/\/$/, "")}/arvados/v1/containers/${run.uuid}`;
      try {
        const res = await env.apiRequest({
          method: "PUT",
          url,
          token: str("ARVADOS_API_TOKEN"),
          body: { container: fields },
          insecure:
            str("ARVADOS_API_HOST_INSECURE") !== "" && str("ARVADOS_API_HOST_INSECURE") !== "0",
        });
        if (res.status >= 300) {
          env.logger.warn(
            {
              ContainerUUID: run.uuid,
              Instance: this.id,
              status: res.status,
              body: res.body.slice(0, 500),
            },
            "stub crunch-run: container update rejected",
          );
        }
      } catch (err) {
        env.logger.warn(
          { ContainerUUID: run.uuid, Instance: this.id, error: errorMessage(err) },
          "stub crunch-run: container update failed",
        );
      }
    };
    try {
      await update({ state: "Running" });
      if (run.abort.signal.aborted) throw new Error("killed");
      await env.clock.sleep(env.containerRunTimeMs, run.abort.signal);
      await update({ state: "Complete", exit_code: env.containerExitCode });
      if (this.#runs.get(run.uuid) === run) this.#runs.delete(run.uuid);
    } catch {
      // Killed with a signal: crunch-run stops the container and reports it cancelled. A VM that
      // died or a stale process says nothing.
      if (run.killed) await update({ state: "Cancelled" });
    }
  }
}
