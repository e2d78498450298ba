import {
  abortReason,
  instanceId,
  silentLogger,
  systemClock,
  type Clock,
  type HostKeyChallengeSession,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceType,
  type Logger,
} from "@dispatch-cloud/arvados-types";
import {
  CapacityError,
  QuotaError,
  RateLimitError,
  generateEd25519KeyPair,
  type CreateRequest,
  type Instance,
  type InstancePrice,
  type InstanceSet,
  type InstanceTags,
  type SshKeyPair,
} from "@dispatch-cloud/cloud-driver-api";
import { nodeApiRequester, type ApiRequester } from "./api.js";
import {
  DEFAULT_STUB_PARAMETERS,
  type StubFailEvery,
  type StubFailureKind,
  type StubParameters,
} from "./params.js";
import { serveVm, type VmSshServer } from "./ssh-server.js";
import { FakeVm } from "./vm.js";
import { ContentStore } from "./files.js";

/** The cloud operations the stub counts, fails, records and can hold. */
export type StubOp = "create" | "list" | "destroy" | "setTags";

/** One cloud call as the stub received it. */
export interface StubCall {
  readonly op: StubOp;
  /** The instance for destroy/setTags; the new instance for a create that succeeded. */
  readonly instanceId?: InstanceId;
  /** create: the provider type; setTags: the new tags; list: the filter. */
  readonly providerType?: string;
  readonly tags?: InstanceTags;
  readonly at: number;
  /** How the call ended ("pending" while held or running). */
  outcome: "pending" | "ok" | "error";
}

/** A cloud call blocked by `hold`. */
export interface HeldOp {
  readonly op: StubOp;
  readonly call: StubCall;
  /** Let this one call proceed. */
  release(): void;
  /** Make this one call fail with `error`. */
  fail(error: Error): void;
}

export interface StubCloudOptions {
  /** Knobs; anything omitted takes its default (see DEFAULT_STUB_PARAMETERS). */
  readonly parameters?: Partial<StubParameters>;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Serve each VM over SSH on 127.0.0.1 (default true). Without it only in-process executors reach VMs. */
  readonly serveSsh?: boolean;
  /** More authorized_keys lines every VM accepts, besides the key given to create. */
  readonly extraAuthorizedKeys?: readonly string[];
  /** How simulated crunch-run calls the Arvados API (default: node:http/https). */
  readonly apiRequest?: ApiRequester;
  /** Price history every instance reports (default none). */
  readonly priceHistory?: (type: InstanceType) => readonly InstancePrice[];
}

/**
 * A simulated cloud: the state behind a stub InstanceSet, and the controls tests use on it.
 * Deterministic: instance ids are `stub-000001`, `stub-000002`, …; pids count up from 1000;
 * every fault comes from a knob or a test control, never from chance.
 */
export class StubCloud {
  readonly parameters: StubParameters;
  readonly clock: Clock;
  readonly instanceSet: InstanceSet;
  readonly #logger: Logger;
  readonly #serveSsh: boolean;
  readonly #extraKeys: readonly string[];
  readonly #apiRequest: ApiRequester;
  readonly #priceHistory: ((type: InstanceType) => readonly InstancePrice[]) | undefined;
  readonly #vms = new Map<string, FakeVm>();
  /** One copy of each distinct file content across all VMs (a runner deployed to 1,000 VMs). */
  readonly #files = new ContentStore();
  readonly #servers = new Map<string, VmSshServer>();
  readonly #calls: StubCall[] = [];
  readonly #counts: Record<StubOp, number> = { create: 0, list: 0, destroy: 0, setTags: 0 };
  readonly #held = new Set<StubOp>();
  readonly #heldOps: (HeldOp & { resume: (err?: Error) => void })[] = [];
  #heldWaiters: { op: StubOp | undefined; resolve: (h: HeldOp) => void }[] = [];
  readonly #nextErrors: Record<StubOp, Error[]> = {
    create: [],
    list: [],
    destroy: [],
    setTags: [],
  };
  #sharedHostKey: SshKeyPair | undefined;
  #nextId = 1;
  #created = 0;
  #stopped = false;

  constructor(options: StubCloudOptions = {}) {
    this.parameters = { ...DEFAULT_STUB_PARAMETERS, ...options.parameters };
    this.clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#serveSsh = options.serveSsh ?? true;
    this.#extraKeys = options.extraAuthorizedKeys ?? [];
    this.#apiRequest = options.apiRequest ?? nodeApiRequester;
    this.#priceHistory = options.priceHistory;
    this.instanceSet = new StubInstanceSet(this);
  }

  // ---- test controls ----

  /** Block every later call of these operations (all four if none given) until released. */
  hold(...ops: StubOp[]): void {
    for (const op of ops.length === 0 ? ALL_OPS : ops) this.#held.add(op);
  }

  /** Stop holding these operations (all if none given) and let every held call of them proceed. */
  release(...ops: StubOp[]): void {
    const which = ops.length === 0 ? ALL_OPS : ops;
    for (const op of which) this.#held.delete(op);
    for (const h of this.#heldOps.slice()) if (which.includes(h.op)) h.release();
  }

  /** Calls currently blocked by `hold`, oldest first. */
  heldOps(): readonly HeldOp[] {
    return [...this.#heldOps];
  }

  /**
   * Resolves with a held call of `op` (any op if omitted) as soon as one is blocked — at once if
   * one already is and has not been handed out by an earlier wait.
   */
  waitForHeld(op?: StubOp, signal?: AbortSignal): Promise<HeldOp> {
    const found = this.#heldOps.find((h) => (op === undefined || h.op === op) && !handedOut.has(h));
    if (found !== undefined) {
      handedOut.add(found);
      return Promise.resolve(found);
    }
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<HeldOp>((resolve, reject) => {
      const waiter = {
        op,
        resolve: (h: HeldOp) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(h);
        },
      };
      const onAbort = (): void => {
        this.#heldWaiters = this.#heldWaiters.filter((w) => w !== waiter);
        reject(abortReason(signal!));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#heldWaiters.push(waiter);
    });
  }

  /** The next call of `op` fails with `error` (queued: several calls fail in order). */
  failNext(op: StubOp, error: Error): void {
    this.#nextErrors[op].push(error);
  }

  /** Every cloud call so far, oldest first. */
  calls(op?: StubOp): readonly StubCall[] {
    return op === undefined ? [...this.#calls] : this.#calls.filter((c) => c.op === op);
  }

  /** Live fake VMs in creation order. */
  vms(): readonly FakeVm[] {
    return [...this.#vms.values()];
  }

  vm(id: string): FakeVm | undefined {
    return this.#vms.get(id);
  }

  /** The live VM serving `address` (`host:port`), if any. */
  vmByAddress(address: string): FakeVm | undefined {
    for (const vm of this.#vms.values()) if (vm.address === address) return vm;
    return undefined;
  }

  /**
   * The VM disappears from the provider without a destroy call, as when a spot instance is
   * reclaimed: gone from listings, connections dropped, processes dead.
   */
  async vanish(id: string): Promise<boolean> {
    return this.#remove(id);
  }

  /** Close every SSH server and end every simulated process. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#vms.keys()].map((id) => this.#remove(id)));
  }

  // ---- the operations, called by StubInstanceSet / StubInstance ----

  /** @internal */
  async operate<T>(
    op: StubOp,
    call: Omit<StubCall, "op" | "at" | "outcome">,
    signal: AbortSignal | undefined,
    body: (record: { instanceId?: InstanceId }) => Promise<T>,
  ): Promise<T> {
    const record: StubCall = { op, ...call, at: this.clock.now(), outcome: "pending" };
    this.#calls.push(record);
    try {
      if (signal?.aborted) throw abortReason(signal);
      if (this.#held.has(op)) await this.#block(op, record, signal);
      this.#counts[op]++;
      const queued = this.#nextErrors[op].shift();
      if (queued !== undefined) throw queued;
      const fault = this.#faultFor(op);
      if (fault !== undefined) throw fault;
      const out = await body(record);
      record.outcome = "ok";
      return out;
    } catch (err) {
      record.outcome = "error";
      throw err;
    }
  }

  /** @internal */
  async createVm(request: CreateRequest): Promise<FakeVm> {
    if (this.#stopped) throw new Error("stub cloud is stopped");
    const p = this.parameters;
    if (p.maxInstances > 0 && this.#vms.size >= p.maxInstances) {
      throw new QuotaError(`stub cloud quota reached: at most ${p.maxInstances} instances`);
    }
    const n = ++this.#created;
    const now = this.clock.now();
    const every = (k: number): boolean => k > 0 && n % k === 0;
    const bootDelay = every(p.slowBootEvery) ? p.slowBootDelayMs : p.bootDelayMs;
    const bootAt = now + bootDelay;
    const hostKey = p.sharedHostKey
      ? (this.#sharedHostKey ??= generateEd25519KeyPair())
      : generateEd25519KeyPair();
    const id = `stub-${String(this.#nextId++).padStart(6, "0")}`;
    const vm = new FakeVm(
      {
        id,
        providerType: request.instanceType.ProviderType,
        tags: request.tags,
        initCommand: request.initCommand,
        authorizedKey: request.publicKey,
        hostKey,
        remoteUser: p.remoteUser,
        createdAt: now,
        bootAt,
        brokenAt: every(p.brokenEvery) ? bootAt + p.brokenAfterMs : undefined,
        silentAt: every(p.silentEvery) ? bootAt + p.silentAfterMs : undefined,
      },
      {
        clock: this.clock,
        logger: this.#logger,
        apiRequest: this.#apiRequest,
        apiScheme: p.apiScheme,
        containerRunTimeMs: p.containerRunTimeMs,
        containerExitCode: p.containerExitCode,
        files: this.#files,
      },
    );
    if (this.#serveSsh) {
      const server = await serveVm(vm, this.#extraKeys, this.#logger);
      this.#servers.set(id, server);
      vm.address = `127.0.0.1:${server.port}`;
    } else {
      vm.address = `${id}.stub.invalid:22`;
    }
    this.#vms.set(id, vm);
    this.#logger.info(
      { Instance: id, ProviderType: vm.providerType },
      "stub cloud created instance",
    );
    return vm;
  }

  /** @internal */
  async destroyVm(id: string): Promise<void> {
    await this.#remove(id);
  }

  /** @internal */
  snapshot(vm: FakeVm): Instance {
    return new StubInstance(this, vm);
  }

  /** @internal */
  priceHistoryFor(type: InstanceType): readonly InstancePrice[] {
    return this.#priceHistory?.(type) ?? [];
  }

  async #remove(id: string): Promise<boolean> {
    const vm = this.#vms.get(id);
    if (vm === undefined) return false;
    this.#vms.delete(id);
    vm.terminate();
    const server = this.#servers.get(id);
    this.#servers.delete(id);
    await server?.close();
    return true;
  }

  #faultFor(op: StubOp): Error | undefined {
    const p = this.parameters;
    const rule: StubFailEvery = {
      create: p.failCreate,
      list: p.failList,
      destroy: p.failDestroy,
      setTags: p.failSetTags,
    }[op];
    if (rule.every <= 0 || this.#counts[op] % rule.every !== 0) return undefined;
    const msg = `stub cloud: injected failure of ${op} call #${this.#counts[op]}`;
    const errors: Record<StubFailureKind, () => Error> = {
      "rate-limit": () =>
        new RateLimitError(msg, new Date(this.clock.now() + p.rateLimitRetryAfterMs)),
      quota: () => new QuotaError(msg),
      capacity: () => new CapacityError(msg, "all"),
      "capacity-instance-type": () => new CapacityError(msg, "instance-type"),
      "capacity-quota-group": () => new CapacityError(msg, "quota-group"),
      plain: () => new Error(msg),
    };
    return errors[rule.kind]();
  }

  #block(op: StubOp, call: StubCall, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        signal?.removeEventListener("abort", onAbort);
        const i = this.#heldOps.indexOf(held);
        if (i >= 0) this.#heldOps.splice(i, 1);
        handedOut.delete(held);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => finish(abortReason(signal!));
      const held = {
        op,
        call,
        release: () => finish(),
        fail: (err: Error) => finish(err),
        resume: finish,
      };
      this.#heldOps.push(held);
      signal?.addEventListener("abort", onAbort, { once: true });
      const waiter = this.#heldWaiters.find((w) => w.op === undefined || w.op === op);
      if (waiter !== undefined) {
        this.#heldWaiters = this.#heldWaiters.filter((w) => w !== waiter);
        handedOut.add(held);
        waiter.resolve(held);
      }
    });
  }
}

const ALL_OPS: readonly StubOp[] = ["create", "list", "destroy", "setTags"];
/** Held calls already given to a `waitForHeld` caller, so two waits get two different calls. */
const handedOut = new WeakSet<HeldOp>();

class StubInstanceSet implements InstanceSet {
  readonly #cloud: StubCloud;
  constructor(cloud: StubCloud) {
    this.#cloud = cloud;
  }

  create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    const c = this.#cloud;
    const call = { providerType: request.instanceType.ProviderType, tags: { ...request.tags } };
    return c.operate("create", call, signal, async (record) => {
      const vm = await c.createVm(request);
      record.instanceId = instanceId(vm.id);
      return c.snapshot(vm);
    });
  }

  instances(filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    const c = this.#cloud;
    return c.operate("list", { tags: { ...filter } }, signal, () =>
      // Like the Go stub, and like Azure and loopback, this ignores the filter: the tag-filter
      // decorator is what drops other VMs.
      Promise.resolve(c.vms().map((vm) => c.snapshot(vm))),
    );
  }

  /** The first character of the provider type, plus `-p` for preemptible types (as the Go stub). */
  instanceQuotaGroup(type: InstanceType): string {
    return `${type.ProviderType.slice(0, 1)}${type.Preemptible ? "-p" : ""}`;
  }

  stop(): Promise<void> {
    return this.#cloud.stop();
  }
}

/** A snapshot of one fake VM: tags as of when it was fetched. */
class StubInstance implements Instance {
  readonly id: InstanceId;
  readonly providerType: string;
  readonly address: string;
  readonly remoteUser: string;
  readonly tags: InstanceTags;
  readonly #cloud: StubCloud;
  readonly #vm: FakeVm;

  constructor(cloud: StubCloud, vm: FakeVm) {
    this.#cloud = cloud;
    this.#vm = vm;
    this.id = instanceId(vm.id);
    this.providerType = vm.providerType;
    this.address = vm.address;
    this.remoteUser = vm.remoteUser;
    this.tags = Object.freeze({ ...vm.tags });
  }

  setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    return this.#cloud.operate(
      "setTags",
      { instanceId: this.id, tags: { ...tags } },
      signal,
      () => {
        if (this.#vm.gone)
          return Promise.reject(new Error(`stub cloud: instance ${this.id} does not exist`));
        this.#vm.tags = { ...tags };
        return Promise.resolve();
      },
    );
  }

  priceHistory(type: InstanceType): readonly InstancePrice[] {
    return this.#cloud.priceHistoryFor(type);
  }

  destroy(signal?: AbortSignal): Promise<void> {
    // Destroying a VM that is already gone succeeds, as terminating a terminated EC2 VM does.
    return this.#cloud.operate("destroy", { instanceId: this.id }, signal, () =>
      this.#cloud.destroyVm(this.id),
    );
  }

  verifyHostKey(hostKey: Buffer, _session: HostKeyChallengeSession): Promise<HostKeyVerdict> {
    if (this.#cloud.parameters.hostKeyCheck === "not-implemented") {
      return Promise.resolve({ kind: "not-implemented" });
    }
    return Promise.resolve(
      hostKey.equals(this.#vm.hostKey.publicKeyWire)
        ? { kind: "verified" }
        : { kind: "mismatch", reason: "host key mismatch" },
    );
  }

  toString(): string {
    return this.id;
  }
}
