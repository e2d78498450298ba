/**
 * A stateful fake of the Azure Resource Manager endpoints the driver uses, over plain http on
 * 127.0.0.1: network interfaces, virtual machines, managed disks and storage ListKeys.
 *
 * It answers the way ARM does where the SDK cares: PUT/PATCH/DELETE are long-running operations
 * (201/200/202 with `Azure-AsyncOperation` and `Location` headers and `Retry-After: 0`, polled
 * until `Succeeded` or `Failed`), lists page through absolute `nextLink` URLs, missing resources
 * are 404 `ResourceNotFound`, and a NIC attached to a VM cannot be deleted (`NicInUse`).
 * Deliberate simplifications: a VM whose create fails asynchronously disappears (ARM would keep
 * it in `Failed` state), and a request body is stored as given.
 *
 * Knobs: `failNext` (one-shot errors, synchronous or at the end of the operation, optionally
 * with `Retry-After`), `hold` (park matching requests until released, and count how many were
 * in flight at once), and direct seeding of NICs and disks with chosen tags and ages.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

export type ArmResourceKind = "networkInterfaces" | "virtualMachines" | "disks";

export interface ArmResource {
  id: string;
  name: string;
  type: string;
  location: string;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
}

/** Which requests a knob applies to; absent fields match anything. */
export interface RequestMatch {
  readonly method?: "GET" | "PUT" | "PATCH" | "DELETE" | "POST";
  readonly kind?: ArmResourceKind | "listKeys";
  /** Matches when the resource name starts with this. */
  readonly namePrefix?: string;
  /** Matches only list requests for a page after the first (those following a nextLink). */
  readonly laterPage?: boolean;
}

export interface InjectedFailure {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** Sent as the `Retry-After` header when given. */
  readonly retryAfter?: string;
  /**
   * Accept the request (201) and fail the operation when it is polled, as ARM does for most
   * provisioning errors. Only for PUT.
   */
  readonly async?: boolean;
}

export interface FakeArmOptions {
  /** Items per list page; small so paging is exercised. Default 2. */
  readonly pageSize?: number;
  /** Status polls answered `InProgress` before an operation finishes. Default 1. */
  readonly pollsBeforeDone?: number;
}

/** Parked requests matching one `hold`. */
export interface Hold {
  /** Requests parked right now. */
  readonly waiting: number;
  /** The most parked at once since the hold began. */
  readonly maxWaiting: number;
  /** Resolves once at least `n` requests are parked. */
  untilWaiting(n: number): Promise<void>;
  /** Let every parked request (and all later ones) through. */
  release(): void;
}

interface Operation {
  pollsLeft: number;
  failure: InjectedFailure | undefined;
  finish: () => void;
  done: boolean;
  /** For delete operations the final Location GET answers 204. */
  resultStatus: number;
  resultBody: () => unknown;
}

interface HoldState {
  match: RequestMatch;
  waiting: (() => void)[];
  maxWaiting: number;
  released: boolean;
  events: EventEmitter;
}

interface Parsed {
  kind: ArmResourceKind | "listKeys" | "operation" | "operationResult";
  subscription: string;
  resourceGroup: string;
  name: string | undefined;
  collectionPath: string;
  opId?: string;
}

const TYPES: Readonly<Record<ArmResourceKind, [string, string]>> = {
  networkInterfaces: ["Microsoft.Network", "networkInterfaces"],
  virtualMachines: ["Microsoft.Compute", "virtualMachines"],
  disks: ["Microsoft.Compute", "disks"],
};

export class FakeArm {
  /** Every request, in order: `METHOD /path` (no query). */
  readonly requests: string[] = [];
  /** Ids of resources whose last delete completed, in order. */
  readonly deleted: string[] = [];
  /** Called with each VM PUT body before it is stored (e.g. to write a VHD blob). */
  onVmCreate: ((name: string, body: Record<string, unknown>) => Promise<void> | void) | undefined;

  private readonly resources = new Map<string, ArmResource>();
  private readonly operations = new Map<string, Operation>();
  private readonly failures: { match: RequestMatch; failure: InjectedFailure }[] = [];
  private readonly holds: HoldState[] = [];
  private readonly storageKeys = new Map<string, string>();
  private nextAddress = 0;
  private readonly pageSize: number;
  private readonly pollsBeforeDone: number;

  private constructor(
    private readonly server: http.Server,
    readonly endpoint: string,
    options: FakeArmOptions,
  ) {
    this.pageSize = options.pageSize ?? 2;
    this.pollsBeforeDone = options.pollsBeforeDone ?? 1;
  }

  static async start(options: FakeArmOptions = {}): Promise<FakeArm> {
    let fake: FakeArm | undefined;
    const server = http.createServer((req, res) => {
      fake!.handle(req, res).catch((err: unknown) => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "FakeArmBug", message: String(err) } }));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const { port } = server.address() as AddressInfo;
    fake = new FakeArm(server, `http://127.0.0.1:${port}`, options);
    return fake;
  }

  async close(): Promise<void> {
    for (const h of this.holds) this.releaseHold(h);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Fail the next request matching `match` with `failure` (one-shot, in the order given). */
  failNext(match: RequestMatch, failure: InjectedFailure): void {
    this.failures.push({ match, failure });
  }

  /** Park requests matching `match` until `release()`. */
  hold(match: RequestMatch): Hold {
    const state: HoldState = {
      match,
      waiting: [],
      maxWaiting: 0,
      released: false,
      events: new EventEmitter(),
    };
    this.holds.push(state);
    return {
      get waiting() {
        return state.waiting.length;
      },
      get maxWaiting() {
        return state.maxWaiting;
      },
      untilWaiting: (n) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (state.waiting.length >= n) {
              state.events.off("change", check);
              resolve();
            }
          };
          state.events.on("change", check);
          check();
        }),
      release: () => this.releaseHold(state),
    };
  }

  /** Make ListKeys for `account` answer with `key`. */
  setStorageKey(account: string, key: string): void {
    this.storageKeys.set(account.toLowerCase(), key);
  }

  /** Every stored resource of a kind, optionally in one resource group. */
  list(kind: ArmResourceKind, resourceGroup?: string): ArmResource[] {
    const [ns, type] = TYPES[kind];
    const want = `${ns}/${type}`.toLowerCase();
    return [...this.resources.values()].filter(
      (r) =>
        r.type.toLowerCase() === want &&
        (resourceGroup === undefined ||
          r.id.toLowerCase().includes(`/resourcegroups/${resourceGroup.toLowerCase()}/`)),
    );
  }

  get(kind: ArmResourceKind, resourceGroup: string, name: string): ArmResource | undefined {
    const [ns, type] = TYPES[kind];
    const tail = `/resourcegroups/${resourceGroup}/providers/${ns}/${type}/${name}`.toLowerCase();
    return [...this.resources.values()].find((r) => r.id.toLowerCase().endsWith(tail));
  }

  /** Store a NIC directly (e.g. a dangling one with an old created-at tag). */
  addNic(
    subscription: string,
    resourceGroup: string,
    name: string,
    tags: Record<string, string>,
  ): ArmResource {
    return this.put(subscription, resourceGroup, "networkInterfaces", name, {
      location: "centralus",
      tags,
      properties: {
        provisioningState: "Succeeded",
        ipConfigurations: [
          { name: "ip1", properties: { privateIPAddress: this.allocateAddress() } },
        ],
      },
    });
  }

  /** Store a managed disk directly. */
  addDisk(
    subscription: string,
    resourceGroup: string,
    name: string,
    props: { diskState: "Attached" | "Unattached" | "Reserved"; timeCreated: Date },
  ): ArmResource {
    return this.put(subscription, resourceGroup, "disks", name, {
      location: "centralus",
      tags: {},
      properties: {
        provisioningState: "Succeeded",
        diskState: props.diskState,
        timeCreated: props.timeCreated.toISOString(),
      },
    });
  }

  // ---- request handling ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.endpoint);
    const method = (req.method ?? "GET").toUpperCase() as NonNullable<RequestMatch["method"]>;
    this.requests.push(`${method} ${url.pathname}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);

    const parsed = this.parse(url.pathname);
    if (parsed === undefined)
      return this.error(res, 404, "NotFound", `no such path ${url.pathname}`);
    if (parsed.kind === "operation" || parsed.kind === "operationResult") {
      return this.pollOperation(res, parsed.opId!, parsed.kind === "operationResult");
    }

    const match = {
      method,
      kind: parsed.kind,
      name: parsed.name ?? "",
      laterPage: url.searchParams.has("$skiptoken"),
    };
    for (const h of this.holds) {
      if (!h.released && matches(h.match, match)) {
        await new Promise<void>((resolve) => {
          h.waiting.push(resolve);
          h.maxWaiting = Math.max(h.maxWaiting, h.waiting.length);
          h.events.emit("change");
        });
      }
    }
    const fi = this.failures.findIndex((f) => matches(f.match, match));
    let asyncFailure: InjectedFailure | undefined;
    if (fi >= 0) {
      const { failure } = this.failures.splice(fi, 1)[0]!;
      if (failure.async === true && method === "PUT") asyncFailure = failure;
      else
        return this.error(res, failure.status, failure.code, failure.message, failure.retryAfter);
    }

    if (parsed.kind === "listKeys") {
      const key = this.storageKeys.get((parsed.name ?? "").toLowerCase());
      if (method !== "POST" || key === undefined) {
        return this.error(res, 404, "ResourceNotFound", `storage account ${parsed.name} not found`);
      }
      return this.json(res, 200, { keys: [{ keyName: "key1", value: key, permissions: "FULL" }] });
    }
    const kind = parsed.kind;
    if (parsed.name === undefined) {
      if (method !== "GET")
        return this.error(res, 405, "MethodNotAllowed", `${method} on a collection`);
      return this.listPage(res, parsed, kind, Number(url.searchParams.get("$skiptoken") ?? "0"));
    }
    const id = this.idOf(parsed.subscription, parsed.resourceGroup, kind, parsed.name, true);
    switch (method) {
      case "GET": {
        const r = this.resources.get(id);
        if (r === undefined) return this.notFound(res, kind, parsed.name);
        return this.json(res, 200, r);
      }
      case "PUT":
        return this.createOrUpdate(res, parsed, kind, body, asyncFailure);
      case "PATCH": {
        const r = this.resources.get(id);
        if (r === undefined) return this.notFound(res, kind, parsed.name);
        if (body["tags"] !== undefined) r.tags = { ...(body["tags"] as Record<string, string>) };
        return this.accept(
          res,
          200,
          r,
          this.operation(
            undefined,
            () => undefined,
            200,
            () => r,
          ),
        );
      }
      case "DELETE":
        return this.delete(res, id, kind);
      default:
        return this.error(res, 405, "MethodNotAllowed", method);
    }
  }

  private async createOrUpdate(
    res: http.ServerResponse,
    p: Parsed,
    kind: ArmResourceKind,
    body: Record<string, unknown>,
    asyncFailure: InjectedFailure | undefined,
  ): Promise<void> {
    const name = p.name!;
    const id = this.idOf(p.subscription, p.resourceGroup, kind, name, true);
    const existing = this.resources.get(id);
    const props = { ...(body["properties"] as Record<string, unknown> | undefined) };

    if (kind === "virtualMachines") {
      const nics = (
        props["networkProfile"] as { networkInterfaces?: { id?: string }[] } | undefined
      )?.networkInterfaces;
      const nicId = nics?.[0]?.id ?? "";
      const nic = this.resources.get(nicId.toLowerCase());
      if (nic === undefined) {
        return this.error(
          res,
          400,
          "InvalidResourceReference",
          `Resource ${nicId} referenced by resource ${id} was not found.`,
        );
      }
      await this.onVmCreate?.(name, body);
      (props as { vmId?: string }).vmId = randomUUID();
    }
    if (kind === "networkInterfaces") {
      const configs =
        (props["ipConfigurations"] as
          { name?: string; properties?: Record<string, unknown> }[] | undefined) ?? [];
      props["ipConfigurations"] = configs.map((c) => ({
        ...c,
        properties: { ...c.properties, privateIPAddress: this.allocateAddress() },
      }));
    }
    props["provisioningState"] = existing === undefined ? "Creating" : "Updating";
    const resource = this.put(p.subscription, p.resourceGroup, kind, name, {
      location: typeof body["location"] === "string" ? body["location"] : "centralus",
      tags: { ...(body["tags"] as Record<string, string> | undefined) },
      properties: props,
    });

    const finish = (): void => {
      if (asyncFailure !== undefined) {
        this.resources.delete(id);
        return;
      }
      resource.properties["provisioningState"] = "Succeeded";
      if (kind === "virtualMachines") this.attach(resource, p);
    };
    this.accept(
      res,
      existing === undefined ? 201 : 200,
      resource,
      this.operation(asyncFailure, finish, 200, () => resource),
    );
  }

  /** A created VM: its NIC now points at it, and a managed image leaves an attached OS disk. */
  private attach(vm: ArmResource, p: Parsed): void {
    const props = vm.properties as {
      networkProfile?: { networkInterfaces?: { id?: string }[] };
      storageProfile?: { osDisk?: { name?: string; vhd?: unknown } };
    };
    const nic = this.resources.get(
      (props.networkProfile?.networkInterfaces?.[0]?.id ?? "").toLowerCase(),
    );
    if (nic !== undefined) nic.properties["virtualMachine"] = { id: vm.id };
    const os = props.storageProfile?.osDisk;
    if (os?.name !== undefined && os.vhd === undefined) {
      this.addDisk(p.subscription, p.resourceGroup, os.name, {
        diskState: "Attached",
        timeCreated: new Date(),
      });
    }
  }

  private delete(res: http.ServerResponse, id: string, kind: ArmResourceKind): void {
    const r = this.resources.get(id);
    if (r === undefined) {
      res.writeHead(204).end();
      return;
    }
    if (kind === "networkInterfaces" && r.properties["virtualMachine"] !== undefined) {
      return this.error(
        res,
        400,
        "NicInUse",
        `Network Interface ${id} is used by existing resource ${(r.properties["virtualMachine"] as { id: string }).id}.`,
      );
    }
    r.properties["provisioningState"] = "Deleting";
    const finish = (): void => {
      this.resources.delete(id);
      this.deleted.push(r.id);
      if (kind === "virtualMachines") {
        const props = r.properties as {
          networkProfile?: { networkInterfaces?: { id?: string }[] };
          storageProfile?: { osDisk?: { name?: string } };
        };
        const nic = this.resources.get(
          (props.networkProfile?.networkInterfaces?.[0]?.id ?? "").toLowerCase(),
        );
        if (nic !== undefined) delete nic.properties["virtualMachine"];
        const diskId = id.replace(
          /virtualmachines\/[^/]+$/,
          `disks/${props.storageProfile?.osDisk?.name ?? ""}`.toLowerCase(),
        );
        const disk = this.resources.get(diskId);
        if (disk !== undefined) disk.properties["diskState"] = "Unattached";
      }
    };
    this.accept(
      res,
      202,
      undefined,
      this.operation(undefined, finish, 204, () => undefined),
    );
  }

  private listPage(res: http.ServerResponse, p: Parsed, kind: ArmResourceKind, skip: number): void {
    const all = this.list(kind, p.resourceGroup).filter((r) =>
      r.id.toLowerCase().startsWith(`/subscriptions/${p.subscription.toLowerCase()}/`),
    );
    const value = all.slice(skip, skip + this.pageSize);
    const more = skip + this.pageSize < all.length;
    this.json(res, 200, {
      value,
      ...(more
        ? {
            nextLink: `${this.endpoint}${p.collectionPath}?api-version=fake&$skiptoken=${skip + this.pageSize}`,
          }
        : {}),
    });
  }

  private operation(
    failure: InjectedFailure | undefined,
    finish: () => void,
    resultStatus: number,
    resultBody: () => unknown,
  ): string {
    const id = randomUUID();
    this.operations.set(id, {
      pollsLeft: this.pollsBeforeDone,
      failure,
      finish,
      done: false,
      resultStatus,
      resultBody,
    });
    return id;
  }

  private accept(res: http.ServerResponse, status: number, body: unknown, opId: string): void {
    const op = `${this.endpoint}/fakeOperations/${opId}?api-version=fake`;
    res.writeHead(status, {
      "content-type": "application/json",
      "azure-asyncoperation": op,
      location: `${this.endpoint}/fakeOperations/${opId}/result?api-version=fake`,
      "retry-after": "0",
    });
    res.end(body === undefined ? "" : JSON.stringify(body));
  }

  private pollOperation(res: http.ServerResponse, opId: string, result: boolean): void {
    const op = this.operations.get(opId);
    if (op === undefined) return this.error(res, 404, "NotFound", `no operation ${opId}`);
    if (!op.done) {
      if (op.pollsLeft > 0) {
        op.pollsLeft--;
      } else {
        op.done = true;
        op.finish();
      }
    }
    if (result) {
      if (!op.done) {
        res
          .writeHead(202, {
            "retry-after": "0",
            location: `${this.endpoint}/fakeOperations/${opId}/result`,
          })
          .end();
      } else if (op.failure !== undefined) {
        this.error(res, op.failure.status, op.failure.code, op.failure.message);
      } else if (op.resultStatus === 204) {
        res.writeHead(204).end();
      } else {
        this.json(res, op.resultStatus, op.resultBody());
      }
      return;
    }
    const status = !op.done ? "InProgress" : op.failure === undefined ? "Succeeded" : "Failed";
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (!op.done) headers["retry-after"] = "0";
    res.writeHead(200, headers);
    res.end(
      JSON.stringify({
        status,
        ...(op.done && op.failure !== undefined
          ? { error: { code: op.failure.code, message: op.failure.message } }
          : {}),
      }),
    );
  }

  // ---- helpers ----

  private parse(path: string): Parsed | undefined {
    const op = /^\/fakeOperations\/([^/]+)(\/result)?$/.exec(path);
    if (op !== null) {
      return {
        kind: op[2] === undefined ? "operation" : "operationResult",
        opId: op[1]!,
        subscription: "",
        resourceGroup: "",
        name: undefined,
        collectionPath: "",
      };
    }
    const m =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/i.exec(
        path,
      );
    if (m === null) return undefined;
    const [, subscription, resourceGroup, ns, type, name, action] = m;
    const base = `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/providers/${ns}/${type}`;
    if (
      ns!.toLowerCase() === "microsoft.storage" &&
      type!.toLowerCase() === "storageaccounts" &&
      action?.toLowerCase() === "listkeys"
    ) {
      return {
        kind: "listKeys",
        subscription: subscription!,
        resourceGroup: decodeURIComponent(resourceGroup!),
        name: decodeURIComponent(name!),
        collectionPath: base,
      };
    }
    if (action !== undefined) return undefined;
    const kind = (Object.keys(TYPES) as ArmResourceKind[]).find(
      (k) =>
        TYPES[k][0].toLowerCase() === ns!.toLowerCase() &&
        TYPES[k][1].toLowerCase() === type!.toLowerCase(),
    );
    if (kind === undefined) return undefined;
    return {
      kind,
      subscription: decodeURIComponent(subscription!),
      resourceGroup: decodeURIComponent(resourceGroup!),
      name: name === undefined ? undefined : decodeURIComponent(name),
      collectionPath: base,
    };
  }

  private idOf(
    sub: string,
    rg: string,
    kind: ArmResourceKind,
    name: string,
    lower = false,
  ): string {
    const [ns, type] = TYPES[kind];
    const id = `/subscriptions/${sub}/resourceGroups/${rg}/providers/${ns}/${type}/${name}`;
    return lower ? id.toLowerCase() : id;
  }

  private put(
    sub: string,
    rg: string,
    kind: ArmResourceKind,
    name: string,
    r: Pick<ArmResource, "location" | "tags" | "properties">,
  ): ArmResource {
    const [ns, type] = TYPES[kind];
    const resource: ArmResource = {
      id: this.idOf(sub, rg, kind, name),
      name,
      type: `${ns}/${type}`,
      ...r,
    };
    this.resources.set(resource.id.toLowerCase(), resource);
    return resource;
  }

  /** Loopback addresses, so a test can stand up an SSH server as the "VM". */
  private allocateAddress(): string {
    const n = this.nextAddress++;
    return `127.77.${Math.floor(n / 250)}.${(n % 250) + 1}`;
  }

  private releaseHold(h: HoldState): void {
    h.released = true;
    for (const resume of h.waiting.splice(0)) resume();
    h.events.emit("change");
  }

  private notFound(res: http.ServerResponse, kind: ArmResourceKind, name: string): void {
    const [ns, type] = TYPES[kind];
    this.error(
      res,
      404,
      "ResourceNotFound",
      `The Resource '${ns}/${type}/${name}' under resource group was not found.`,
    );
  }

  private error(
    res: http.ServerResponse,
    status: number,
    code: string,
    message: string,
    retryAfter?: string,
  ): void {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (retryAfter !== undefined) headers["retry-after"] = retryAfter;
    res.writeHead(status, headers);
    res.end(JSON.stringify({ error: { code, message } }));
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }
}

function matches(
  m: RequestMatch,
  r: { method: string; kind: string; name: string; laterPage: boolean },
): boolean {
  return (
    (m.laterPage === undefined || m.laterPage === r.laterPage) &&
    (m.method === undefined || m.method === r.method) &&
    (m.kind === undefined || m.kind === r.kind) &&
    (m.namePrefix === undefined || r.name.startsWith(m.namePrefix))
  );
}
