import { spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  abortReason,
  instanceId,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceSetId,
  type InstanceType,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import ssh2 from "ssh2";
import {
  QuotaError,
  errorMessage,
  generateEd25519KeyPair,
  type CreateRequest,
  type DriverFactory,
  type Instance,
  type InstancePrice,
  type InstanceSet,
  type InstanceTags,
  type SshKeyPair,
} from "@dispatch-cloud/cloud-driver-api";

/** Where crunch-run marks a node broken; loopback create clears it. */
export const BROKEN_MARKER_PATH = "/var/lock/crunch-run-broken";

export interface LoopbackOptions {
  /** Override the broken-marker path (tests). */
  readonly brokenMarkerPath?: string;
  /** Where the instance record is kept across dispatcher restarts (default: the temp dir). */
  readonly stateDir?: string;
}

/**
 * The record that makes this machine "the instance" across dispatcher restarts: without it a
 * restarted (or SIGKILLed) dispatcher would list no instance, conclude that the containers still
 * running here had lost their VM, and cancel them. Deviation: Arvados's loopback keeps the
 * instance in memory only. The tags include the instance secret, so the file is 0600, like the
 * secret file on a real VM. It lives in the temp dir: a reboot ends the "VM" with its processes.
 */
interface PersistedVm {
  readonly providerType: string;
  readonly user: string;
  readonly authorizedKey: string;
  readonly tags: InstanceTags;
}

export function loopbackStatePath(stateDir: string, id: InstanceSetId): string {
  return path.join(stateDir, `arvados-dispatch-cloud-loopback-${id}.json`);
}

function readPersisted(file: string, logger: Logger): PersistedVm | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      logger.warn({ error: errorMessage(err), path: file }, "cannot read loopback instance record");
    }
    return undefined;
  }
  try {
    const v = JSON.parse(text) as Partial<PersistedVm>;
    if (
      typeof v.providerType === "string" &&
      typeof v.user === "string" &&
      typeof v.authorizedKey === "string" &&
      typeof v.tags === "object" &&
      v.tags !== null
    ) {
      return v as PersistedVm;
    }
  } catch {
    // Fall through: a damaged record is ignored, as if the instance had been destroyed.
  }
  logger.warn({ path: file }, "ignoring a damaged loopback instance record");
  return undefined;
}

/**
 * The implicit instance type when loopback is configured with none: this host's CPUs and RAM,
 * scratch = size of the temp-dir filesystem, price 1.0.
 */
export function localhostInstanceType(tempDir: string = os.tmpdir()): InstanceType {
  const st = fs.statfsSync(tempDir);
  const scratch = st.bsize * st.blocks;
  return {
    Name: "localhost",
    ProviderType: "localhost",
    VCPUs: os.availableParallelism(),
    RAM: os.totalmem(),
    IncludedScratch: scratch,
    AddedScratch: 0,
    Scratch: scratch,
    Price: 1.0,
    Preemptible: false,
    GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
  };
}

/**
 * Config check the app runs when `Driver: loopback`: at most one instance type. Returns the
 * problems (empty when fine).
 */
export function validateLoopbackInstanceTypes(instanceTypeNames: readonly string[]): string[] {
  return instanceTypeNames.length > 1
    ? ["InstanceTypes: cannot use multiple InstanceTypes with loopback driver"]
    : [];
}

interface LocalVm {
  readonly providerType: string;
  readonly hostKey: SshKeyPair;
  readonly address: string;
  readonly user: string;
  readonly authorizedKey: string;
  tags: InstanceTags;
}

/**
 * Serve SSH on 127.0.0.1 for the local machine: only `user` with `authorizedKey`; each exec runs
 * `sh -c` (one leading `sudo ` dropped) in a new session with stdin/stdout/stderr piped. The
 * environment is exactly the session's `env` requests if there were any, else inherited.
 */
async function serveLocal(
  hostKey: SshKeyPair,
  authorizedKey: string,
  user: string,
  logger: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const allowed = ssh2.utils.parseKey(authorizedKey);
  if (allowed instanceof Error || Array.isArray(allowed)) {
    throw new Error(`loopback driver: cannot parse public key: ${errorMessage(allowed)}`);
  }
  const sockets = new Set<net.Socket>();
  const server = new ssh2.Server({ hostKeys: [hostKey.privateKey] }, (client) => {
    client.on("error", (err) =>
      logger.debug({ error: errorMessage(err) }, "loopback ssh client error"),
    );
    client.on("authentication", (ctx) => {
      const pub = allowed.getPublicSSH();
      const ok =
        ctx.method === "publickey" &&
        ctx.username === user &&
        ctx.key.algo === allowed.type &&
        ctx.key.data.length === pub.length &&
        timingSafeEqual(ctx.key.data, pub) &&
        (ctx.signature === undefined ||
          ctx.blob === undefined ||
          allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo));
      if (ok) ctx.accept();
      else ctx.reject(["publickey"]);
    });
    client.on("ready", () => {
      client.on("session", (acceptSession) => {
        const session = acceptSession();
        const env: Record<string, string> = {};
        session.on("env", (accept, _reject, info) => {
          env[info.key] = info.val;
          accept?.();
        });
        session.once("exec", (accept, _reject, info) => {
          const stream = accept();
          const command = info.command.replace(/^sudo /, "");
          const child = spawn("sh", ["-c", command], {
            detached: true,
            stdio: ["pipe", "pipe", "pipe"],
            ...(Object.keys(env).length > 0 ? { env } : {}),
          });
          stream.pipe(child.stdin).on("error", () => undefined);
          child.stdout.pipe(stream, { end: false });
          child.stderr.pipe(stream.stderr, { end: false });
          let outputs = 2;
          let code: number | undefined;
          const finish = (): void => {
            if (outputs > 0 || code === undefined) return;
            stream.exit(code);
            stream.end();
          };
          child.stdout.on("end", () => {
            outputs--;
            finish();
          });
          child.stderr.on("end", () => {
            outputs--;
            finish();
          });
          child.on("error", (err) => {
            stream.stderr.write(`${errorMessage(err)}\n`);
            code = 1;
            outputs = 0;
            finish();
          });
          child.on("close", (c) => {
            // Killed by a signal, or could not run: 1, as Arvados's loopback does.
            code = c ?? 1;
            finish();
          });
        });
      });
    });
  });
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    server.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    port: (tcp.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

class LoopbackInstance implements Instance {
  readonly id: InstanceId;
  readonly providerType: string;
  readonly address: string;
  readonly remoteUser: string;
  readonly tags: InstanceTags;
  constructor(
    private readonly set: LoopbackInstanceSet,
    private readonly vm: LocalVm,
  ) {
    this.id = instanceId(vm.providerType);
    this.providerType = vm.providerType;
    this.address = vm.address;
    this.remoteUser = vm.user;
    this.tags = Object.freeze({ ...vm.tags });
  }
  setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    this.vm.tags = { ...tags };
    this.set.save(this.vm);
    return Promise.resolve();
  }
  priceHistory(): readonly InstancePrice[] {
    return [];
  }
  destroy(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    this.set.forget(this.vm);
    return Promise.resolve();
  }
  verifyHostKey(hostKey: Buffer): Promise<HostKeyVerdict> {
    return Promise.resolve(
      hostKey.equals(this.vm.hostKey.publicKeyWire)
        ? { kind: "verified" }
        : { kind: "mismatch", reason: "host key mismatch" },
    );
  }
  toString(): string {
    return this.id;
  }
}

class LoopbackInstanceSet implements InstanceSet {
  #vm: LocalVm | undefined;
  #creating = false;
  readonly #servers: { close(): Promise<void> }[] = [];
  constructor(
    private readonly logger: Logger,
    private readonly brokenMarkerPath: string,
    private readonly statePath: string,
  ) {}

  /** Picks up the instance a previous dispatcher on this machine created, if any. */
  async restore(): Promise<void> {
    const saved = readPersisted(this.statePath, this.logger);
    if (saved === undefined) return;
    this.#vm = await this.#start(saved);
    this.logger.info(
      { Instance: saved.providerType },
      "loopback instance found from an earlier run",
    );
  }

  /** Serves SSH for the instance, with a new host key (the old one died with its server). */
  async #start(record: PersistedVm): Promise<LocalVm> {
    // Arvados generates a 1024-bit RSA host key; an ed25519 key is as good and much faster.
    const hostKey = generateEd25519KeyPair("loopback");
    const server = await serveLocal(hostKey, record.authorizedKey, record.user, this.logger);
    this.#servers.push(server);
    return {
      providerType: record.providerType,
      hostKey,
      address: `127.0.0.1:${server.port}`,
      user: record.user,
      authorizedKey: record.authorizedKey,
      tags: { ...record.tags },
    };
  }

  save(vm: LocalVm): void {
    if (this.#vm !== vm) return;
    const record: PersistedVm = {
      providerType: vm.providerType,
      user: vm.user,
      authorizedKey: vm.authorizedKey,
      tags: vm.tags,
    };
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, this.statePath);
  }

  async create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    if (signal?.aborted) throw abortReason(signal);
    if (this.#vm !== undefined || this.#creating)
      throw new QuotaError("loopback driver is always at quota");
    if (request.publicKey === null)
      throw new Error("loopback driver requires a public key to authorize");
    this.#creating = true;
    try {
      try {
        fs.rmSync(this.brokenMarkerPath);
        this.logger.info({}, `removed ${this.brokenMarkerPath}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      const vm = await this.#start({
        providerType: request.instanceType.ProviderType,
        user: os.userInfo().username,
        authorizedKey: request.publicKey,
        tags: request.tags,
      });
      this.#vm = vm;
      this.save(vm);
      return new LoopbackInstance(this, vm);
    } finally {
      this.#creating = false;
    }
  }

  /** Ignores the filter: there is only ever the one instance. */
  instances(_filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return Promise.resolve(this.#vm === undefined ? [] : [new LoopbackInstance(this, this.#vm)]);
  }

  instanceQuotaGroup(): string {
    return "";
  }

  /** Destroy forgets the instance; as in Arvados its SSH server keeps running until stop. */
  forget(vm: LocalVm): void {
    if (this.#vm !== vm) return;
    this.#vm = undefined;
    fs.rmSync(this.statePath, { force: true });
  }

  async stop(): Promise<void> {
    this.#vm = undefined;
    await Promise.all(this.#servers.splice(0).map((s) => s.close()));
  }
}

/** A loopback DriverFactory (DriverParameters are ignored). */
export function createLoopbackDriver(options: LoopbackOptions = {}): DriverFactory {
  return async (context) => {
    const set = new LoopbackInstanceSet(
      context.logger,
      options.brokenMarkerPath ?? BROKEN_MARKER_PATH,
      loopbackStatePath(options.stateDir ?? os.tmpdir(), context.instanceSetId),
    );
    await set.restore();
    return set;
  };
}

/** The loopback driver as the daemon registers it. */
export const loopbackDriver: DriverFactory = createLoopbackDriver();
