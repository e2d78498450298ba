import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { Logger } from "@dispatch-cloud/arvados-types";
import express, { type NextFunction, type Request, type Response } from "express";
import { ApiError, badRequest, notFound } from "./errors.js";
import { jsonParam, parseListQuery, parseSelect } from "./query.js";
import { containerRequestsSpec, containersSpec, logsSpec, type Row } from "./schema.js";
import { type Actor, randomString, Store } from "./store.js";

export interface ContainerApiOptions {
  /** SQLite file, or ":memory:". */
  dbPath: string;
  /** The admin token (`SystemRootToken`). */
  systemRootToken: string;
  /** Five characters, e.g. "zzzzz"; prefixes every UUID. */
  clusterId: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  logger?: Logger;
  /** `Containers.MaxDispatchAttempts` (default 10). */
  maxDispatchAttempts?: number;
  /** `Containers.MaxRetryAttempts`: default container_count_max of requests (default 3). */
  maxRetryAttempts?: number;
  /** `API.MaxItemsPerResponse` (default 1000). */
  maxItemsPerResponse?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export interface ContainerApi {
  /** Base URL, e.g. `http://127.0.0.1:41234/`. */
  readonly url: string;
  /** Direct access to the data, for tests and the demo. */
  readonly store: Store;
  /** Faults to inject, for clients' tests (e.g. a 503 on the next lock). */
  readonly faults: FaultInjector;
  stop(): Promise<void>;
}

export interface Fault {
  method?: string;
  /** Matches when the request path contains this string. */
  pathIncludes: string;
  status: 400 | 401 | 403 | 404 | 422 | 503;
  errors?: string[];
  /** How many matching requests fail (default 1). */
  times?: number;
}

export class FaultInjector {
  private faults: Array<Fault & { left: number }> = [];
  add(f: Fault): void {
    this.faults.push({ ...f, left: f.times ?? 1 });
  }
  clear(): void {
    this.faults = [];
  }
  /** The fault that applies to this request, consuming one use. */
  take(method: string, path: string): Fault | null {
    const f = this.faults.find(
      (x) => x.left > 0 && (!x.method || x.method === method) && path.includes(x.pathIncludes),
    );
    if (!f) return null;
    f.left--;
    return f;
  }
}

type Params = Record<string, unknown>;

function params(req: Request): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(req.query)) out[k] = v;
  const body: unknown = req.body;
  if (body && typeof body === "object" && !Array.isArray(body)) Object.assign(out, body as Params);
  for (const [k, v] of Object.entries(out)) {
    if (Array.isArray(v) && req.is("application/json") !== "application/json") {
      throw badRequest(`parameter '${k}' given more than once`);
    }
  }
  return out;
}

function tokenOf(req: Request, p: Params): string | null {
  const h = req.get("authorization");
  if (h) {
    const m = /^(?:Bearer|OAuth2)\s+(\S+)\s*$/i.exec(h);
    return m?.[1] ?? null;
  }
  const t = p["api_token"];
  return typeof t === "string" && t !== "" ? t : null;
}

/** A JSON object parameter such as `container` (JSON-encoded in forms, plain in JSON bodies). */
function objectParam(p: Params, name: string): Row {
  const v = p[name];
  if (v === undefined) throw badRequest(`missing parameter '${name}'`);
  const parsed = jsonParam(name, v);
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw badRequest(`parameter '${name}' must be a JSON object`);
  }
  return parsed as Row;
}

/** Builds the express app over a store (exported for tests that want no socket). */
export function createApp(
  store: Store,
  opts: { maxItemsPerResponse: number; logger?: Logger; faults: FaultInjector },
): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");

  // POST with X-Http-Method-Override: GET is a GET whose parameters are in the body.
  app.use((req, _res, next) => {
    const override = req.get("x-http-method-override");
    if (req.method === "POST" && override?.toUpperCase() === "GET") req.method = "GET";
    next();
  });
  app.use(express.urlencoded({ extended: false, limit: "16mb" }));
  app.use(express.json({ limit: "16mb" }));

  const handle =
    (fn: (actor: Actor, p: Params, req: Request) => unknown) =>
    (req: Request, res: Response): void => {
      const p = params(req);
      const fault = opts.faults.take(req.method, req.path);
      if (fault) throw new ApiError(fault.status, ...(fault.errors ?? ["injected fault"]));
      const token = tokenOf(req, p);
      if (token === null) throw new ApiError(401, "Not logged in");
      const actor = store.authenticate(token);
      if (!actor) throw new ApiError(401, "Not logged in");
      const out = fn(actor, p, req);
      res.status(200).json(out);
    };
  const uuidParam = (req: Request): string => String(req.params["uuid"]);

  const r = express.Router();
  r.get(
    "/arvados/v1/api_client_authorizations/current",
    handle((a) => store.currentAuthorization(a)),
  );
  r.get(
    "/arvados/v1/containers",
    handle((a, p) =>
      store.listContainers(a, parseListQuery(containersSpec, p, opts.maxItemsPerResponse)),
    ),
  );
  r.get(
    "/arvados/v1/containers/current",
    handle((a, p) => {
      if (!a.containerUuid) throw notFound("token is not a container token");
      return store.getContainer(a, a.containerUuid, parseSelect(containersSpec, p["select"]));
    }),
  );
  r.get(
    "/arvados/v1/containers/:uuid",
    handle((a, p, req) =>
      store.getContainer(a, uuidParam(req), parseSelect(containersSpec, p["select"])),
    ),
  );
  for (const method of ["put", "patch"] as const) {
    r[method](
      "/arvados/v1/containers/:uuid",
      handle((a, p, req) =>
        store.updateContainer(
          a,
          uuidParam(req),
          objectParam(p, "container"),
          parseSelect(containersSpec, p["select"]),
        ),
      ),
    );
    r[method](
      "/arvados/v1/container_requests/:uuid",
      handle((a, p, req) =>
        store.updateContainerRequest(a, uuidParam(req), objectParam(p, "container_request")),
      ),
    );
  }
  r.post(
    "/arvados/v1/containers/:uuid/lock",
    handle((a, _p, req) => store.lock(a, uuidParam(req))),
  );
  r.post(
    "/arvados/v1/containers/:uuid/unlock",
    handle((a, _p, req) => store.unlock(a, uuidParam(req))),
  );
  r.post(
    "/arvados/v1/container_requests",
    handle((a, p) => store.createContainerRequest(a, objectParam(p, "container_request"))),
  );
  r.get(
    "/arvados/v1/container_requests",
    handle((a, p) =>
      store.listContainerRequests(
        a,
        parseListQuery(containerRequestsSpec, p, opts.maxItemsPerResponse),
      ),
    ),
  );
  r.get(
    "/arvados/v1/container_requests/:uuid",
    handle((a, p, req) =>
      store.getContainerRequest(a, uuidParam(req), parseSelect(containerRequestsSpec, p["select"])),
    ),
  );
  r.post(
    "/arvados/v1/logs",
    handle((a, p) => {
      const log = objectParam(p, "log");
      const bad: string[] = [];
      if (typeof log["event_type"] !== "string" || log["event_type"] === "")
        bad.push("event_type must be a non-empty string");
      if (
        "object_uuid" in log &&
        log["object_uuid"] !== null &&
        typeof log["object_uuid"] !== "string"
      )
        bad.push("object_uuid must be a string");
      if (
        "properties" in log &&
        (typeof log["properties"] !== "object" ||
          log["properties"] === null ||
          Array.isArray(log["properties"]))
      )
        bad.push("properties must be a JSON object");
      if ("summary" in log && log["summary"] !== null && typeof log["summary"] !== "string")
        bad.push("summary must be a string");
      if (
        "event_at" in log &&
        (typeof log["event_at"] !== "string" || Number.isNaN(Date.parse(log["event_at"])))
      )
        bad.push("event_at must be an RFC 3339 time");
      for (const k of Object.keys(log)) {
        if (!["event_type", "object_uuid", "properties", "summary", "event_at"].includes(k))
          bad.push(`unknown attribute '${k}' for Log.`);
      }
      if (bad.length) throw new ApiError(422, ...bad);
      return store.createLog(a, log);
    }),
  );
  r.get(
    "/arvados/v1/logs",
    handle((a, p) => store.listLogs(a, parseListQuery(logsSpec, p, opts.maxItemsPerResponse))),
  );
  app.use(r);

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ errors: ["Path not found"], error_token: errorToken() });
  });
  // Every failure becomes `{"errors":[...]}`; nothing reaches the client as a stack trace.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let status = 500;
    let errors = ["internal error"];
    if (err instanceof ApiError) {
      status = err.status;
      errors = err.errors;
    } else if (isHttpError(err)) {
      status = err.status;
      errors = [
        err.type === "entity.parse.failed"
          ? `malformed JSON request body: ${err.message}`
          : err.message,
      ];
    } else {
      opts.logger?.error(
        { error: String(err), path: req.path, method: req.method },
        "request failed",
      );
    }
    res.status(status).json({ errors, error_token: errorToken() });
  });
  return app;
}

function isHttpError(e: unknown): e is { status: number; type?: string; message: string } {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { status?: unknown }).status === "number" &&
    (e as { status: number }).status >= 400 &&
    (e as { status: number }).status < 500
  );
}

const errorToken = (): string => `${Math.floor(Date.now() / 1000)}+${randomString(8)}`;

/** Starts the server; resolves once it is listening. */
export async function startContainerApi(options: ContainerApiOptions): Promise<ContainerApi> {
  const store = new Store({
    dbPath: options.dbPath,
    systemRootToken: options.systemRootToken,
    clusterId: options.clusterId,
    maxDispatchAttempts: options.maxDispatchAttempts ?? 10,
    maxRetryAttempts: options.maxRetryAttempts ?? 3,
    maxItemsPerResponse: options.maxItemsPerResponse ?? 1000,
    now: options.now ?? Date.now,
  });
  const faults = new FaultInjector();
  const appOpts: { maxItemsPerResponse: number; logger?: Logger; faults: FaultInjector } = {
    maxItemsPerResponse: options.maxItemsPerResponse ?? 1000,
    faults,
  };
  if (options.logger) appOpts.logger = options.logger;
  const app = createApp(store, appOpts);
  const host = options.host ?? "127.0.0.1";
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(options.port ?? 0, host, (err?: Error) =>
      err ? reject(err) : resolve(s),
    );
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}/`;
  options.logger?.info({ url }, "container API listening");
  return {
    url,
    store,
    faults,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.close();
    },
  };
}
