import { Readable } from "node:stream";
import {
  raceAbort,
  type Clock,
  type ExecResult,
  type ExecuteOptions,
  type ExecutorTarget,
} from "@dispatch-cloud/arvados-types";
import type { StubCloud } from "./cloud.js";
import type { FakeVm } from "./vm.js";

async function readAll(stdin: ExecuteOptions["stdin"]): Promise<Buffer> {
  if (stdin === undefined) return Buffer.alloc(0);
  if (typeof stdin === "string") return Buffer.from(stdin);
  if (Buffer.isBuffer(stdin)) return stdin;
  const chunks: Buffer[] = [];
  for await (const c of Readable.from(stdin as AsyncIterable<Buffer | string>)) {
    chunks.push(typeof c === "string" ? Buffer.from(c) : c);
  }
  return Buffer.concat(chunks);
}

/**
 * Runs commands straight against a fake VM's command handler: no SSH, no sockets, for fast
 * worker-pool tests. It keeps the executor's observable rules: a "connection" is made on first
 * use and after `setTarget` changes the address; each new connection checks the host key with
 * the target (falling back to the instance secret on `not-implemented`); connecting to a VM
 * that is booting or gone rejects, a silent VM never answers (until the timeout or signal).
 * Timeouts run on the cloud's clock. It is the worker pool's Executor port, implemented
 * structurally (this package does not import the pool).
 */
export class InProcessExecutor {
  readonly #cloud: StubCloud;
  readonly #clock: Clock;
  #target: ExecutorTarget;
  #connected: FakeVm | undefined;
  #connecting: Promise<FakeVm> | undefined;
  #closed = false;

  constructor(cloud: StubCloud, target: ExecutorTarget) {
    this.#cloud = cloud;
    this.#clock = cloud.clock;
    this.#target = target;
  }

  setTarget(target: ExecutorTarget): void {
    if (target.address !== this.#target.address) this.#connected = undefined;
    this.#target = target;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#connected = undefined;
    return Promise.resolve();
  }

  async execute(command: string, options: ExecuteOptions = {}): Promise<ExecResult> {
    const timeout = new AbortController();
    const signals = [timeout.signal, ...(options.signal === undefined ? [] : [options.signal])];
    const signal = AbortSignal.any(signals);
    let timer: Promise<void> | undefined;
    if (options.timeoutMs !== undefined) {
      timer = this.#clock.sleep(options.timeoutMs, signal).then(
        () => timeout.abort(new Error(`command timed out after ${options.timeoutMs}ms`)),
        () => undefined,
      );
    }
    try {
      const vm = await this.#connect(signal);
      const stdin = await readAll(options.stdin);
      const run = vm.exec(command, {
        ...(options.env === undefined ? {} : { env: options.env }),
        stdin: () => Promise.resolve(stdin),
        signal,
      });
      return await raceAbort(run, signal);
    } finally {
      timeout.abort();
      await timer;
    }
  }

  async #connect(signal: AbortSignal): Promise<FakeVm> {
    if (this.#closed) throw new Error("closed");
    const current = this.#connected;
    if (current !== undefined && !current.gone && current.address === this.#target.address)
      return current;
    this.#connected = undefined;
    this.#connecting ??= this.#dial(signal).finally(() => {
      this.#connecting = undefined;
    });
    return raceAbort(this.#connecting, signal);
  }

  async #dial(signal: AbortSignal): Promise<FakeVm> {
    const target = this.#target;
    if (target.address === "") throw new Error("instance has no address");
    const vm = this.#cloud.vmByAddress(target.address);
    if (vm === undefined || vm.gone || !vm.booted()) {
      throw new Error(`dial tcp ${target.address}: connect: connection refused`);
    }
    // A silent VM accepts the connection and never completes the handshake.
    if (vm.silent()) await raceAbort(new Promise<never>(() => {}), signal);
    const session = {
      run: (cmd: string, s?: AbortSignal) => vm.exec(cmd, s === undefined ? {} : { signal: s }),
    };
    const verdict = await target.verifyHostKey(vm.hostKey.publicKeyWire, session, signal);
    if (verdict.kind === "mismatch") throw new Error(verdict.reason);
    if (verdict.kind === "not-implemented") {
      if (target.instanceSecret === "") throw new Error("not implemented");
      const sudo = target.remoteUser === "root" ? "" : "sudo ";
      const res = await raceAbort(
        session.run(`${sudo}cat /var/run/arvados-instance-secret`, signal),
        signal,
      );
      if (res.exitCode !== 0)
        throw new Error(`reading instance secret: exit status ${res.exitCode}`);
      if (res.stdout.toString() !== target.instanceSecret) throw new Error("bad instance secret");
    }
    this.#connected = vm;
    return vm;
  }
}

/** An ExecutorFactory whose executors run commands in-process against `cloud`'s fake VMs. */
export function inProcessExecutorFactory(
  cloud: StubCloud,
): (target: ExecutorTarget) => InProcessExecutor {
  return (target) => new InProcessExecutor(cloud, target);
}
