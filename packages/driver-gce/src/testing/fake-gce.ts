/**
 * A stateful fake of the Compute Engine REST API calls the driver makes, over plain http on
 * 127.0.0.1, for the SDK's REST transport pointed at it (`apiEndpoint`, `port`, `protocol`).
 *
 * Where the driver cares it answers as GCE does: every request must carry a JWT signed by a
 * service-account key the fake trusts (401 otherwise); mutations answer with a zone operation
 * that goes PENDING → RUNNING → DONE; a new VM is listable at once (PROVISIONING) and RUNNING
 * when its insert is done, with an address from 127.0.x.y so a test can serve SSH there; a
 * deleted VM is STOPPING until its delete is done; the aggregated listing pages through
 * `pageToken` and honours a label `filter`; setMetadata needs the current fingerprint (412
 * conditionNotMet otherwise); missing things are 404 notFound. (No setLabels: the driver sets
 * labels only when it creates a VM.)
 *
 * Time is counted in requests, not seconds: each request moves every unfinished operation one
 * step, so a test controls progress by talking to the fake (or `holdOperations`), never by
 * sleeping. Knobs: `failNext` (an HTTP error answer, or an operation that ends with errors),
 * `holdRequests`, `holdOperations`, `onInsert` (e.g. to start an sshd as the VM), `addImage`.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { TrustedKeys, newServiceAccountKey, type ServiceAccountKeyFile } from "./auth.js";
import { gceErrors, type HttpErrorAnswer, type OperationFailure } from "./errors.js";
import { parseFilter } from "./filter.js";

export type FakeCall =
  | "insert"
  | "aggregatedList"
  | "get"
  | "setMetadata"
  | "delete"
  | "waitOperation"
  | "getOperation"
  | "getImage";

/** Which requests a knob applies to; absent fields match any. */
export interface CallMatch {
  readonly call?: FakeCall;
  readonly zone?: string;
}

export type InjectedFailure = HttpErrorAnswer | OperationFailure;

export interface FakeGceOptions {
  readonly project?: string;
  /** Instances per aggregated-list page when the request gives no maxResults. Default 2. */
  readonly pageSize?: number;
  /** Requests it takes an operation to finish: PENDING, then RUNNING, … then DONE. Default 2. */
  readonly operationSteps?: number;
  /** The first three octets of the VMs' addresses. Default `127.0.2`. */
  readonly addressPrefix?: string;
}

/** A stored VM, in the API's JSON form. */
export type FakeInstance = Record<string, unknown> & {
  name: string;
  zone: string;
  status: string;
  labels: Record<string, string>;
  labelFingerprint: string;
  metadata: { kind: string; fingerprint: string; items: { key: string; value: string }[] };
  networkInterfaces: { name: string; networkIP: string; network?: string; subnetwork?: string }[];
};

interface Operation {
  json: Record<string, unknown>;
  stepsLeft: number;
  held: boolean;
  onDone: () => void;
}

interface Parked {
  match: CallMatch;
  waiting: (() => void)[];
  released: boolean;
  events: EventEmitter;
}

export interface RequestHold {
  /** Resolves once at least `n` matching requests are parked. */
  untilWaiting(n: number): Promise<void>;
  release(): void;
}

interface Route {
  call: FakeCall;
  project: string;
  zone: string;
  name: string;
}

const NAME_RE = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const METADATA_KEY_RE = /^[A-Za-z0-9_-]{1,128}$/;

export class FakeGce {
  readonly project: string;
  /** Every request, in order: `METHOD /path` (no query). */
  readonly requests: string[] = [];
  /** `zone/name` of every VM whose delete finished, in order. */
  readonly deleted: string[] = [];
  /** Awaited before a successful insert is answered; the VM as stored is passed. */
  onInsert: ((instance: FakeInstance) => Promise<void> | void) | undefined;

  readonly #instances = new Map<string, FakeInstance>();
  readonly #operations = new Map<string, Operation>();
  readonly #images = new Map<string, { diskSizeGb: number; name: string }>();
  readonly #failures: { match: CallMatch; failure: InjectedFailure }[] = [];
  readonly #parked: Parked[] = [];
  readonly #keys = new TrustedKeys();
  readonly #zones = new Set<string>();
  readonly #pageSize: number;
  readonly #steps: number;
  readonly #addressPrefix: string;
  #operationsHeld = false;
  #nextAddress = 0;
  #nextId = 4_611_686_018_427_387_904n;

  private constructor(
    private readonly server: http.Server,
    readonly endpoint: string,
    options: FakeGceOptions,
  ) {
    this.project = options.project ?? "fake-project";
    this.#pageSize = options.pageSize ?? 2;
    this.#steps = Math.max(1, options.operationSteps ?? 2);
    this.#addressPrefix = options.addressPrefix ?? "127.0.2";
  }

  static async start(options: FakeGceOptions = {}): Promise<FakeGce> {
    let fake: FakeGce | undefined;
    const server = http.createServer((req, res) => {
      fake!.#handle(req, res).catch((err: unknown) => {
        fake!.#send(res, gceErrors.invalid(`fake GCE bug: ${String(err)}`));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const { port } = server.address() as AddressInfo;
    fake = new FakeGce(server, `http://127.0.0.1:${port}`, options);
    return fake;
  }

  async close(): Promise<void> {
    for (const p of this.#parked) this.#release(p);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A new service-account key the fake accepts, for the driver's `Credentials`. */
  newServiceAccountKey(email?: string): ServiceAccountKeyFile {
    const key = newServiceAccountKey(this.project, email);
    this.#keys.add(key);
    return key;
  }

  /** Answer the next request matching `match` with `failure` (one-shot, in the order given). */
  failNext(match: CallMatch, failure: InjectedFailure): void {
    this.#failures.push({ match, failure });
  }

  /** Park matching requests (before they take effect) until released. */
  holdRequests(match: CallMatch): RequestHold {
    const p: Parked = { match, waiting: [], released: false, events: new EventEmitter() };
    this.#parked.push(p);
    return {
      untilWaiting: (n) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (p.waiting.length >= n) {
              p.events.off("change", check);
              resolve();
            }
          };
          p.events.on("change", check);
          check();
        }),
      release: () => this.#release(p),
    };
  }

  /** Operations started from now on stay unfinished until `releaseOperations()`. */
  holdOperations(): void {
    this.#operationsHeld = true;
  }

  releaseOperations(): void {
    this.#operationsHeld = false;
    for (const op of this.#operations.values()) op.held = false;
  }

  /** An image `getImage` (and a boot disk size check) knows; `family` makes it its latest. */
  addImage(project: string, name: string, diskSizeGb: number, family?: string): void {
    this.#images.set(`${project}/${name}`, { diskSizeGb, name });
    if (family !== undefined) this.#images.set(`${project}/family/${family}`, { diskSizeGb, name });
  }

  /** Store a VM directly (e.g. another dispatcher's, or one made outside Arvados). */
  addInstance(
    zone: string,
    name: string,
    fields: { labels?: Record<string, string>; metadata?: Record<string, string> } = {},
  ): FakeInstance {
    const inst = this.#newInstance(zone, {
      name,
      machineType: `zones/${zone}/machineTypes/e2-small`,
      labels: fields.labels ?? {},
      metadata: {
        items: Object.entries(fields.metadata ?? {}).map(([key, value]) => ({ key, value })),
      },
      networkInterfaces: [{}],
    });
    inst.status = "RUNNING";
    return structuredClone(inst);
  }

  /** Copies of the stored VMs, optionally of one zone. */
  instances(zone?: string): FakeInstance[] {
    return [...this.#instances.values()]
      .filter((i) => zone === undefined || this.#zoneOf(i) === zone)
      .map((i) => structuredClone(i));
  }

  instance(zone: string, name: string): FakeInstance | undefined {
    const i = this.#instances.get(`${zone}/${name}`);
    return i === undefined ? undefined : structuredClone(i);
  }

  /** Operations not yet done. */
  get pendingOperations(): number {
    return [...this.#operations.values()].filter((o) => o.json["status"] !== "DONE").length;
  }

  // ---- request handling ----

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.endpoint);
    const method = req.method ?? "GET";
    this.requests.push(`${method} ${url.pathname}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");

    const why = this.#keys.check(req.headers.authorization, Date.now());
    if (why !== undefined) return this.#send(res, gceErrors.unauthenticated(why));
    // Requests are the fake's clock: the cloud gets on with its work while it is talked to.
    this.#advanceOperations();

    const route = this.#route(method, url.pathname);
    if (route === undefined) {
      return this.#send(res, gceErrors.notFound(`${method} ${url.pathname}`));
    }
    if (route.project !== this.project && route.call !== "getImage") {
      return this.#send(res, gceErrors.notFound(`projects/${route.project}`));
    }
    for (const p of this.#parked) {
      if (!p.released && matches(p.match, route)) {
        await new Promise<void>((resolve) => {
          p.waiting.push(resolve);
          p.events.emit("change");
        });
      }
    }
    const fi = this.#failures.findIndex((f) => matches(f.match, route));
    const failure = fi < 0 ? undefined : this.#failures.splice(fi, 1)[0]!.failure;
    if (failure?.kind === "http") return this.#send(res, failure);
    const opFailure = failure?.kind === "operation" ? failure : undefined;
    const body = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);

    switch (route.call) {
      case "insert":
        return this.#insert(res, route.zone, body, opFailure);
      case "aggregatedList":
        return this.#list(res, url.searchParams);
      case "get": {
        const inst = this.#instances.get(`${route.zone}/${route.name}`);
        if (inst === undefined) return this.#send(res, this.#notFound(route));
        return this.#json(res, 200, inst);
      }
      case "setMetadata":
        return this.#setMetadata(res, route, body, opFailure);
      case "delete":
        return this.#delete(res, route, opFailure);
      case "waitOperation":
      case "getOperation": {
        const op = this.#operations.get(`${route.zone}/${route.name}`);
        if (op === undefined) {
          return this.#send(
            res,
            gceErrors.notFound(
              `projects/${route.project}/zones/${route.zone}/operations/${route.name}`,
            ),
          );
        }
        return this.#json(res, 200, op.json);
      }
      case "getImage": {
        const img = this.#images.get(`${route.project}/${route.name}`);
        if (img === undefined) {
          return this.#send(
            res,
            gceErrors.notFound(`projects/${route.project}/global/images/${route.name}`),
          );
        }
        return this.#json(res, 200, {
          kind: "compute#image",
          name: img.name,
          diskSizeGb: String(img.diskSizeGb),
          status: "READY",
        });
      }
    }
  }

  #route(method: string, path: string): Route | undefined {
    const base = /^\/compute\/v1\/projects\/([^/]+)\/(.*)$/.exec(path);
    if (base === null) return undefined;
    const project = decodeURIComponent(base[1]!);
    const rest = base[2]!.split("/").map(decodeURIComponent);
    const at = (call: FakeCall, zone = "", name = ""): Route => ({ call, project, zone, name });
    const [a, b, c, d, e, f] = rest;
    if (method === "GET" && a === "aggregated" && b === "instances" && rest.length === 2) {
      return at("aggregatedList");
    }
    if (method === "GET" && a === "global" && b === "images") {
      if (c === "family" && d !== undefined && rest.length === 4)
        return at("getImage", "", `family/${d}`);
      if (c !== undefined && rest.length === 3) return at("getImage", "", c);
    }
    if (a !== "zones" || b === undefined) return undefined;
    if (c === "instances") {
      if (d === undefined) return method === "POST" ? at("insert", b) : undefined;
      if (e === undefined) {
        if (method === "GET") return at("get", b, d);
        if (method === "DELETE") return at("delete", b, d);
      }
      if (method === "POST" && e === "setMetadata" && f === undefined)
        return at("setMetadata", b, d);
    }
    if (c === "operations" && d !== undefined) {
      if (method === "POST" && e === "wait" && f === undefined) return at("waitOperation", b, d);
      if (method === "GET" && e === undefined) return at("getOperation", b, d);
    }
    return undefined;
  }

  async #insert(
    res: http.ServerResponse,
    zone: string,
    body: Record<string, unknown>,
    failure: OperationFailure | undefined,
  ): Promise<void> {
    const problem = this.#checkInsert(zone, body);
    if (problem !== undefined) return this.#send(res, problem);
    const inst = this.#newInstance(zone, body);
    const key = `${zone}/${inst.name}`;
    await this.onInsert?.(structuredClone(inst));
    const op = this.#startOperation(zone, "insert", inst, failure, () => {
      if (failure !== undefined) this.#instances.delete(key);
      else if (this.#instances.get(key) === inst) inst.status = "RUNNING";
    });
    this.#json(res, 200, op);
  }

  /** What GCE would refuse in an insert body, as its error answer. */
  #checkInsert(zone: string, body: Record<string, unknown>): HttpErrorAnswer | undefined {
    const name = body["name"];
    if (typeof name !== "string" || !NAME_RE.test(name)) {
      return gceErrors.invalid(
        `Invalid value for field 'resource.name': '${String(name)}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`,
      );
    }
    if (this.#instances.has(`${zone}/${name}`)) {
      return gceErrors.alreadyExists(`projects/${this.project}/zones/${zone}/instances/${name}`);
    }
    const machineType = typeof body["machineType"] === "string" ? body["machineType"] : "";
    if (!machineType.startsWith(`zones/${zone}/machineTypes/`)) {
      return gceErrors.invalid(`Invalid value for field 'resource.machineType': '${machineType}'.`);
    }
    const items = (body["metadata"] as { items?: { key?: string }[] } | undefined)?.items ?? [];
    const keys = new Set<string>();
    for (const { key } of items) {
      if (typeof key !== "string" || !METADATA_KEY_RE.test(key) || keys.has(key)) {
        return gceErrors.invalid(
          `Invalid value for field 'resource.metadata': metadata key '${String(key)}'`,
        );
      }
      keys.add(key);
    }
    const disks = (body["disks"] as Record<string, unknown>[] | undefined) ?? [];
    const boot = disks.find((d) => d["boot"] === true);
    if (boot === undefined)
      return gceErrors.invalid(
        "Invalid value for field 'resource.disks': a boot disk is required.",
      );
    const params = boot["initializeParams"] as
      { sourceImage?: string; diskSizeGb?: string } | undefined;
    const image = /^projects\/([^/]+)\/global\/images\/(.+)$/.exec(params?.sourceImage ?? "");
    const known = image === null ? undefined : this.#images.get(`${image[1]}/${image[2]}`);
    if (
      known !== undefined &&
      params?.diskSizeGb !== undefined &&
      Number(params.diskSizeGb) < known.diskSizeGb
    ) {
      return gceErrors.invalid(
        `Invalid value for field 'resource.disks[0].initializeParams.diskSizeGb': '${params.diskSizeGb}'. Requested disk size cannot be smaller than the image size (${known.diskSizeGb} GB)`,
      );
    }
    return undefined;
  }

  #newInstance(zone: string, body: Record<string, unknown>): FakeInstance {
    this.#zones.add(zone);
    const base = `${this.endpoint}/compute/v1/projects/${this.project}`;
    const name = String(body["name"]);
    const nics = (body["networkInterfaces"] as Record<string, unknown>[] | undefined) ?? [{}];
    const inst: FakeInstance = {
      ...structuredClone(body),
      kind: "compute#instance",
      id: String(this.#nextId++),
      creationTimestamp: new Date().toISOString(),
      name,
      zone: `${base}/zones/${zone}`,
      machineType: `${base}/${String(body["machineType"])}`,
      status: "PROVISIONING",
      selfLink: `${base}/zones/${zone}/instances/${name}`,
      labels: { ...(body["labels"] as Record<string, string> | undefined) },
      labelFingerprint: fingerprint(),
      metadata: {
        kind: "compute#metadata",
        fingerprint: fingerprint(),
        items: [...((body["metadata"] as FakeInstance["metadata"] | undefined)?.items ?? [])],
      },
      networkInterfaces: nics.map((nic, i) => ({
        ...structuredClone(nic),
        name: `nic${i}`,
        network: `${base}/${typeof nic["network"] === "string" ? nic["network"] : "global/networks/default"}`,
        networkIP: this.#allocateAddress(),
      })),
    };
    this.#instances.set(`${zone}/${name}`, inst);
    return inst;
  }

  #list(res: http.ServerResponse, q: URLSearchParams): void {
    let keep: (i: FakeInstance) => boolean = () => true;
    const filter = q.get("filter");
    if (filter !== null && filter !== "") {
      try {
        keep = parseFilter(filter);
      } catch (err) {
        return this.#send(
          res,
          gceErrors.invalid(`Invalid value for field 'filter': '${filter}'. ${String(err)}`),
        );
      }
    }
    const all = [...this.#instances.values()].filter(keep);
    const token = q.get("pageToken");
    const offset =
      token === null || token === "" ? 0 : Number(/^page-(\d+)$/.exec(token)?.[1] ?? NaN);
    if (!Number.isInteger(offset)) {
      return this.#send(res, gceErrors.invalid(`Invalid value for field 'pageToken': '${token}'.`));
    }
    const size = Number(q.get("maxResults") ?? this.#pageSize) || this.#pageSize;
    const page = all.slice(offset, offset + size);
    const items: Record<string, unknown> = {};
    for (const zone of [...this.#zones].sort()) {
      const here = page.filter((i) => this.#zoneOf(i) === zone);
      items[`zones/${zone}`] =
        here.length > 0
          ? { instances: here }
          : {
              warning: {
                code: "NO_RESULTS_ON_PAGE",
                message: `There are no results for scope 'zones/${zone}' on this page.`,
                data: [{ key: "scope", value: `zones/${zone}` }],
              },
            };
    }
    this.#json(res, 200, {
      kind: "compute#instanceAggregatedList",
      id: `projects/${this.project}/aggregated/instances`,
      items,
      ...(offset + size < all.length ? { nextPageToken: `page-${offset + size}` } : {}),
    });
  }

  #setMetadata(
    res: http.ServerResponse,
    route: Route,
    body: Record<string, unknown>,
    failure: OperationFailure | undefined,
  ): void {
    const inst = this.#instances.get(`${route.zone}/${route.name}`);
    if (inst === undefined) return this.#send(res, this.#notFound(route));
    if (body["fingerprint"] !== inst.metadata.fingerprint) {
      return this.#send(res, gceErrors.fingerprintMismatch());
    }
    const items = (body["items"] as { key: string; value?: string }[] | undefined) ?? [];
    const keys = new Set<string>();
    for (const { key } of items) {
      if (!METADATA_KEY_RE.test(key) || keys.has(key)) {
        return this.#send(
          res,
          gceErrors.invalid(`Invalid value for field 'resource.items': metadata key '${key}'`),
        );
      }
      keys.add(key);
    }
    // Applied at once, so a concurrent writer with the old fingerprint is refused.
    if (failure === undefined) {
      inst.metadata = {
        kind: "compute#metadata",
        fingerprint: fingerprint(),
        items: items.map(({ key, value }) => ({ key, value: value ?? "" })),
      };
    }
    this.#json(
      res,
      200,
      this.#startOperation(route.zone, "setMetadata", inst, failure, () => undefined),
    );
  }

  #delete(res: http.ServerResponse, route: Route, failure: OperationFailure | undefined): void {
    const key = `${route.zone}/${route.name}`;
    const inst = this.#instances.get(key);
    if (inst === undefined) return this.#send(res, this.#notFound(route));
    if (failure === undefined) inst.status = "STOPPING";
    const op = this.#startOperation(route.zone, "delete", inst, failure, () => {
      if (failure !== undefined || this.#instances.get(key) !== inst) return;
      this.#instances.delete(key);
      this.deleted.push(key);
    });
    this.#json(res, 200, op);
  }

  #startOperation(
    zone: string,
    operationType: string,
    target: FakeInstance,
    failure: OperationFailure | undefined,
    onDone: () => void,
  ): Record<string, unknown> {
    const name = `operation-${Date.now()}-${randomBytes(6).toString("hex")}`;
    const base = `${this.endpoint}/compute/v1/projects/${this.project}/zones/${zone}`;
    const json: Record<string, unknown> = {
      kind: "compute#operation",
      id: String(this.#nextId++),
      name,
      zone: base,
      operationType,
      targetLink: String(target["selfLink"]),
      targetId: String(target["id"]),
      status: "PENDING",
      progress: 0,
      insertTime: new Date().toISOString(),
      selfLink: `${base}/operations/${name}`,
    };
    const op: Operation = {
      json,
      stepsLeft: this.#steps,
      held: this.#operationsHeld,
      onDone: () => {
        if (failure !== undefined) {
          json["error"] = { errors: failure.errors };
          json["httpErrorStatusCode"] = failure.httpErrorStatusCode;
          json["httpErrorMessage"] = failure.httpErrorMessage;
        }
        onDone();
      },
    };
    this.#operations.set(`${zone}/${name}`, op);
    return structuredClone(json);
  }

  #advanceOperations(): void {
    for (const op of this.#operations.values()) {
      if (op.held || op.json["status"] === "DONE") continue;
      op.stepsLeft--;
      if (op.stepsLeft > 0) {
        op.json["status"] = "RUNNING";
        op.json["progress"] = 50;
        continue;
      }
      op.json["status"] = "DONE";
      op.json["progress"] = 100;
      op.json["endTime"] = new Date().toISOString();
      op.onDone();
    }
  }

  #zoneOf(i: FakeInstance): string {
    return i.zone.replace(/.*\//, "");
  }

  #notFound(route: Route): HttpErrorAnswer {
    return gceErrors.notFound(
      `projects/${route.project}/zones/${route.zone}/instances/${route.name}`,
    );
  }

  /** Loopback addresses, so a test can stand up an SSH server as the VM. */
  #allocateAddress(): string {
    const n = this.#nextAddress++;
    const [a, b, c] = this.#addressPrefix.split(".").map(Number);
    return `${a}.${b}.${c! + Math.floor(n / 254)}.${(n % 254) + 1}`;
  }

  #release(p: Parked): void {
    p.released = true;
    for (const resume of p.waiting.splice(0)) resume();
    p.events.emit("change");
  }

  #send(res: http.ServerResponse, answer: HttpErrorAnswer): void {
    const headers: Record<string, string> = { "content-type": "application/json; charset=UTF-8" };
    if (answer.retryAfter !== undefined) headers["retry-after"] = answer.retryAfter;
    res.writeHead(answer.status, headers);
    res.end(JSON.stringify(answer.body));
  }

  #json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json; charset=UTF-8" });
    res.end(JSON.stringify(body));
  }
}

function matches(m: CallMatch, r: Route): boolean {
  return (m.call === undefined || m.call === r.call) && (m.zone === undefined || m.zone === r.zone);
}

function fingerprint(): string {
  return randomBytes(8).toString("base64");
}
