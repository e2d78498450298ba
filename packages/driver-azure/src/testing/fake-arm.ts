/**
 * A stateful fake of the Azure Resource Manager endpoints the driver uses, on 127.0.0.1 over
 * plain http, or https with a certificate the test provides: network interfaces, virtual
 * machines, managed disks and storage ListKeys.
 *
 * It answers the way ARM does where the SDK cares: PUT/PATCH/DELETE are long-running operations
 * (201/200/202 with `Azure-AsyncOperation` and `Location` headers and `Retry-After: 0`, polled
 * until `Succeeded` or `Failed`), lists page through absolute `nextLink` URLs, missing resources
 * are 404 `ResourceNotFound`, and a NIC or disk in use by a VM cannot be deleted.
 *
 * VMs and what they leave behind, as ARM does it: a VM made from an image gets a managed OS disk
 * named by `storageProfile.osDisk.name` in the VM's own resource group, `Attached` and
 * `managedBy` the VM. Deleting the VM deletes that disk and the NIC only when their
 * `deleteOption` is `Delete`; otherwise they stay, detached (disk `Unattached`, NIC without
 * `virtualMachine`), and are billed until someone deletes them.
 *
 * Deliberate simplifications: a VM whose create fails asynchronously disappears with nothing
 * left behind (ARM would keep it in `Failed` state), and a request body is stored as given.
 *
 * Knobs: `failNext` (one-shot errors, synchronous or at the end of the operation, optionally
 * with `Retry-After`), `hold` (park matching requests until released, and count how many were
 * in flight at once), and direct seeding of NICs, disks and VMs (as another dispatcher made them)
 * with chosen tags and ages.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import {
  RequestKnobs,
  type ArmResourceKind,
  type Hold,
  type InjectedFailure,
  type RequestMatch,
} from "./arm-knobs.js";
import { LongRunningOperations, OPERATIONS_PATH, sendError, sendJson } from "./arm-lro.js";

export type { ArmResourceKind, Hold, InjectedFailure, RequestMatch } from "./arm-knobs.js";

export interface ArmResource {
  id: string;
  name: string;
  type: string;
  location: string;
  tags: Record<string, string>;
  /** Disks: the VM the disk is attached to, absent when unattached. */
  managedBy?: string;
  properties: Record<string, unknown>;
}

/** One request as the fake received it. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** The `Authorization` header, if any. */
  readonly authorization: string | undefined;
}

/** What a VM made by another dispatcher asks ARM to do with its NIC and OS disk on delete. */
export interface SeedVm {
  readonly tags?: Record<string, string>;
  /** Absent, as Arvados sends it: ARM's default is `Detach`. */
  readonly osDiskDeleteOption?: "Delete" | "Detach";
  readonly nicDeleteOption?: "Delete" | "Detach";
}

export interface FakeArmOptions {
  /** Items per list page; small so paging is exercised. Default 2. */
  readonly pageSize?: number;
  /** Status polls answered `InProgress` before an operation finishes. Default 1. */
  readonly pollsBeforeDone?: number;
  /** Serve https with this key and certificate instead of plain http. */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** The time ARM stamps on new disks (`timeCreated`), in ms. Default Date.now. */
  readonly now?: () => number;
}

interface Parsed {
  kind: ArmResourceKind | "listKeys" | "operation" | "operationResult";
  subscription: string;
  resourceGroup: string;
  name: string | undefined;
  collectionPath: string;
  opId?: string;
}

/** The parts of a stored VM body that decide what it holds on to. */
interface VmProps {
  networkProfile?: {
    networkInterfaces?: { id?: string; properties?: { deleteOption?: string } }[];
  };
  storageProfile?: {
    osDisk?: {
      name?: string;
      vhd?: unknown;
      deleteOption?: string;
      managedDisk?: { id?: string };
    };
  };
}

const TYPES: Readonly<Record<ArmResourceKind, [string, string]>> = {
  networkInterfaces: ["Microsoft.Network", "networkInterfaces"],
  virtualMachines: ["Microsoft.Compute", "virtualMachines"],
  disks: ["Microsoft.Compute", "disks"],
};

export class FakeArm {
  /** Every request, in order. */
  readonly received: ReceivedRequest[] = [];
  /** Ids of resources whose last delete completed, in order. */
  readonly deleted: string[] = [];
  /** Called with each VM PUT body before it is stored (e.g. to write a VHD blob). */
  onVmCreate: ((name: string, body: Record<string, unknown>) => Promise<void> | void) | undefined;

  private readonly resources = new Map<string, ArmResource>();
  private readonly knobs = new RequestKnobs();
  private readonly operations: LongRunningOperations;
  private readonly storageKeys = new Map<string, string>();
  private nextAddress = 0;
  private readonly pageSize: number;
  private readonly now: () => number;

  private constructor(
    private readonly server: http.Server,
    readonly endpoint: string,
    options: FakeArmOptions,
  ) {
    this.pageSize = options.pageSize ?? 2;
    this.operations = new LongRunningOperations(endpoint, options.pollsBeforeDone ?? 1);
    this.now = options.now ?? Date.now;
  }

  static async start(options: FakeArmOptions = {}): Promise<FakeArm> {
    let fake: FakeArm | undefined;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      fake!.handle(req, res).catch((err: unknown) => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "FakeArmBug", message: String(err) } }));
      });
    };
    const server =
      options.tls === undefined
        ? http.createServer(handler)
        : https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const { port } = server.address() as AddressInfo;
    const scheme = options.tls === undefined ? "http" : "https";
    fake = new FakeArm(server, `${scheme}://127.0.0.1:${port}`, options);
    return fake;
  }

  /** Every request, in order: `METHOD /path` (no query). */
  get requests(): string[] {
    return this.received.map((r) => `${r.method} ${r.path}`);
  }

  async close(): Promise<void> {
    this.knobs.releaseAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Fail the next request matching `match` with `failure` (one-shot, in the order given). */
  failNext(match: RequestMatch, failure: InjectedFailure): void {
    this.knobs.failNext(match, failure);
  }

  /** Park requests matching `match` until `release()`. */
  hold(match: RequestMatch): Hold {
    return this.knobs.hold(match);
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

  /**
   * Store a managed disk directly. A disk `Attached` (or `Reserved`: attached to a deallocated
   * VM) should name its VM in `managedBy`, as ARM's do.
   */
  addDisk(
    subscription: string,
    resourceGroup: string,
    name: string,
    props: {
      diskState: "Attached" | "Unattached" | "Reserved";
      timeCreated: Date;
      managedBy?: string;
    },
  ): ArmResource {
    return this.put(subscription, resourceGroup, "disks", name, {
      location: "centralus",
      tags: {},
      ...(props.managedBy === undefined ? {} : { managedBy: props.managedBy }),
      properties: {
        provisioningState: "Succeeded",
        osType: "Linux",
        diskState: props.diskState,
        timeCreated: props.timeCreated.toISOString(),
      },
    });
  }

  /**
   * Store a running VM from a managed image with its NIC `<name>-nic` and attached OS disk
   * `<name>-os`, as another dispatcher would have made it (by default as Arvados does, without
   * delete options, so deleting it leaves the NIC and disk behind).
   */
  addVm(subscription: string, resourceGroup: string, name: string, seed: SeedVm = {}): ArmResource {
    const tags = { ...seed.tags };
    const nic = this.addNic(subscription, resourceGroup, `${name}-nic`, tags);
    const vm = this.put(subscription, resourceGroup, "virtualMachines", name, {
      location: "centralus",
      tags,
      properties: {
        provisioningState: "Succeeded",
        vmId: randomUUID(),
        hardwareProfile: { vmSize: "Standard_D2s_v3" },
        storageProfile: {
          osDisk: {
            osType: "Linux",
            name: `${name}-os`,
            createOption: "FromImage",
            ...(seed.osDiskDeleteOption === undefined
              ? {}
              : { deleteOption: seed.osDiskDeleteOption }),
          },
        },
        networkProfile: {
          networkInterfaces: [
            {
              id: nic.id,
              properties: {
                primary: true,
                ...(seed.nicDeleteOption === undefined
                  ? {}
                  : { deleteOption: seed.nicDeleteOption }),
              },
            },
          ],
        },
      },
    });
    this.attach(vm, subscription, resourceGroup);
    return vm;
  }

  // ---- request handling ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.endpoint);
    const method = (req.method ?? "GET").toUpperCase() as NonNullable<RequestMatch["method"]>;
    this.received.push({
      method,
      path: url.pathname,
      query: url.searchParams,
      authorization: req.headers.authorization,
    });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);

    const parsed = this.parse(url.pathname);
    if (parsed === undefined)
      return sendError(res, 404, "NotFound", `no such path ${url.pathname}`);
    if (parsed.kind === "operation" || parsed.kind === "operationResult") {
      return this.operations.poll(res, parsed.opId!, parsed.kind === "operationResult");
    }

    const match = {
      method,
      kind: parsed.kind,
      name: parsed.name ?? "",
      laterPage: url.searchParams.has("$skiptoken"),
    };
    await this.knobs.park(match);
    const failure = this.knobs.takeFailure(match);
    let asyncFailure: InjectedFailure | undefined;
    if (failure !== undefined) {
      if (failure.async === true && method === "PUT") asyncFailure = failure;
      else return sendError(res, failure.status, failure.code, failure.message, failure.retryAfter);
    }

    if (parsed.kind === "listKeys") {
      const key = this.storageKeys.get((parsed.name ?? "").toLowerCase());
      if (method !== "POST" || key === undefined) {
        return sendError(res, 404, "ResourceNotFound", `storage account ${parsed.name} not found`);
      }
      return sendJson(res, 200, { keys: [{ keyName: "key1", value: key, permissions: "FULL" }] });
    }
    const kind = parsed.kind;
    if (parsed.name === undefined) {
      if (method !== "GET")
        return sendError(res, 405, "MethodNotAllowed", `${method} on a collection`);
      return this.listPage(res, parsed, kind, Number(url.searchParams.get("$skiptoken") ?? "0"));
    }
    const id = this.idOf(parsed.subscription, parsed.resourceGroup, kind, parsed.name, true);
    switch (method) {
      case "GET": {
        const r = this.resources.get(id);
        if (r === undefined) return this.notFound(res, kind, parsed.name);
        return sendJson(res, 200, r);
      }
      case "PUT":
        return this.createOrUpdate(res, parsed, kind, body, asyncFailure);
      case "PATCH": {
        const r = this.resources.get(id);
        if (r === undefined) return this.notFound(res, kind, parsed.name);
        if (body["tags"] !== undefined) r.tags = { ...(body["tags"] as Record<string, string>) };
        return this.operations.accept(res, 200, r, { resultStatus: 200, resultBody: () => r });
      }
      case "DELETE":
        return this.delete(res, id, kind);
      default:
        return sendError(res, 405, "MethodNotAllowed", method);
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
        return sendError(
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
      // An update of a VM keeps the disk it has.
      if (kind === "virtualMachines" && existing === undefined) {
        this.attach(resource, p.subscription, p.resourceGroup);
      }
    };
    this.operations.accept(res, existing === undefined ? 201 : 200, resource, {
      failure: asyncFailure,
      finish,
      resultStatus: 200,
      resultBody: () => resource,
    });
  }

  /**
   * A created VM: its NICs now point at it, and an image-based VM gets its managed OS disk, in
   * the VM's resource group, attached to it (an unmanaged VHD disk is a blob, not a resource).
   */
  private attach(vm: ArmResource, subscription: string, resourceGroup: string): void {
    const props = vm.properties as VmProps;
    for (const ref of props.networkProfile?.networkInterfaces ?? []) {
      const nic = this.resources.get((ref.id ?? "").toLowerCase());
      if (nic !== undefined) nic.properties["virtualMachine"] = { id: vm.id };
    }
    const os = props.storageProfile?.osDisk;
    if (os?.name !== undefined && os.vhd === undefined) {
      const disk = this.addDisk(subscription, resourceGroup, os.name, {
        diskState: "Attached",
        timeCreated: new Date(this.now()),
        managedBy: vm.id,
      });
      os.managedDisk = { ...os.managedDisk, id: disk.id };
    }
  }

  /** A deleted VM lets go of its NICs and OS disk, deleting those marked `Delete`. */
  private detach(vm: ArmResource): void {
    const props = vm.properties as VmProps;
    for (const ref of props.networkProfile?.networkInterfaces ?? []) {
      const nic = this.resources.get((ref.id ?? "").toLowerCase());
      if (nic === undefined) continue;
      if (ref.properties?.deleteOption === "Delete") this.remove(nic);
      else delete nic.properties["virtualMachine"];
    }
    const os = props.storageProfile?.osDisk;
    const disk = this.resources.get((os?.managedDisk?.id ?? "").toLowerCase());
    if (os === undefined || disk === undefined) return;
    if (os.deleteOption === "Delete") {
      this.remove(disk);
    } else {
      delete disk.managedBy;
      disk.properties["diskState"] = "Unattached";
    }
  }

  private remove(r: ArmResource): void {
    this.resources.delete(r.id.toLowerCase());
    this.deleted.push(r.id);
  }

  private delete(res: http.ServerResponse, id: string, kind: ArmResourceKind): void {
    const r = this.resources.get(id);
    if (r === undefined) {
      res.writeHead(204).end();
      return;
    }
    if (kind === "networkInterfaces" && r.properties["virtualMachine"] !== undefined) {
      return sendError(
        res,
        400,
        "NicInUse",
        `Network Interface ${id} is used by existing resource ${(r.properties["virtualMachine"] as { id: string }).id}.`,
      );
    }
    if (kind === "disks" && r.managedBy !== undefined) {
      return sendError(
        res,
        409,
        "OperationNotAllowed",
        `Disk ${r.name} is attached to VM ${r.managedBy}.`,
      );
    }
    r.properties["provisioningState"] = "Deleting";
    const finish = (): void => {
      this.remove(r);
      if (kind === "virtualMachines") this.detach(r);
    };
    this.operations.accept(res, 202, undefined, {
      finish,
      resultStatus: 204,
      resultBody: () => undefined,
    });
  }

  private listPage(res: http.ServerResponse, p: Parsed, kind: ArmResourceKind, skip: number): void {
    const all = this.list(kind, p.resourceGroup).filter((r) =>
      r.id.toLowerCase().startsWith(`/subscriptions/${p.subscription.toLowerCase()}/`),
    );
    const value = all.slice(skip, skip + this.pageSize);
    const more = skip + this.pageSize < all.length;
    sendJson(res, 200, {
      value,
      ...(more
        ? {
            nextLink: `${this.endpoint}${p.collectionPath}?api-version=fake&$skiptoken=${skip + this.pageSize}`,
          }
        : {}),
    });
  }

  // ---- helpers ----

  private parse(path: string): Parsed | undefined {
    const op = OPERATIONS_PATH.exec(path);
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

  private notFound(res: http.ServerResponse, kind: ArmResourceKind, name: string): void {
    const [ns, type] = TYPES[kind];
    sendError(
      res,
      404,
      "ResourceNotFound",
      `The Resource '${ns}/${type}/${name}' under resource group was not found.`,
    );
  }
}
