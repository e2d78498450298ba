import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { goJsonLine, type IdleBehavior, type Logger } from "@dispatch-cloud/arvados-types";
import express, { type Express } from "express";
import {
  DASHBOARD_PATH,
  dashboardHeaders,
  defaultDashboardDir,
  loadDashboard,
  type DashboardFile,
} from "./dashboard.js";
import { instancesJson, metricFamiliesJson, queueEntJson } from "./json.js";
import { cleanPath } from "./path.js";
import { serviceFramework, type ServiceOptions } from "./service.js";
import type { ManagementPorts, MetricsSource } from "./ports.js";

export interface ManagementAppOptions {
  /** Clusters.<id>.ManagementToken. Empty: every request is refused (metrics too). */
  readonly managementToken: string;
  readonly ports: ManagementPorts;
  /** The metrics registry served at /metrics and /metrics.json (prom-client's Registry fits). */
  readonly registry: MetricsSource;
  readonly logger: Logger;
  /** Largest form body read, bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /**
   * The service framework's metrics registry and request limits (`API.MaxConcurrentRequests`,
   * `API.MaxQueuedRequests`, `API.MaxQueueTimeForLockRequests`). Without them requests still get
   * request IDs and /_inspect/requests, but no framework metrics and no limiter.
   */
  readonly service?: Omit<ServiceOptions, "managementToken">;
  /**
   * Where the dashboard's files are (default: beside this module); null serves no dashboard.
   * The production bundle passes its own copy's directory.
   */
  readonly dashboardDir?: string | null;
}

type Params = (name: string) => string;
type Handler = (req: IncomingMessage, res: ServerResponse, param: Params) => Promise<void> | void;
type Method = "GET" | "POST";

const PREFIX = "/arvados/v1/dispatch";

class BodyTooLarge extends Error {}

/**
 * The management API (dispatcher spec §4) as an express app. Routing is done here rather than
 * by express's router, to keep the Go dispatcher's exact-path, 405, 404 and cleaned-path
 * redirect behaviour that its clients (the admin CLI) rely on.
 */
export function createManagementApp(options: ManagementAppOptions): Express {
  const { ports, registry, logger } = options;
  const maxBody = options.maxBodyBytes ?? 1 << 20;
  const tokenDigest = options.managementToken === "" ? undefined : digest(options.managementToken);
  const tokenMatches = (t: string): boolean =>
    tokenDigest !== undefined && timingSafeEqual(digest(t), tokenDigest);
  const dashboard = dashboardFiles(options.dashboardDir, logger);

  const serveMetrics = async (res: ServerResponse, asJson: boolean, head: boolean) => {
    if (asJson) {
      const body = JSON.stringify(metricFamiliesJson(await registry.getMetricsAsJSON()), null, 2);
      send(res, 200, "application/json", head ? "" : body);
    } else {
      const body = await registry.metrics();
      send(res, 200, registry.contentType, head ? "" : body);
    }
  };

  const setIdle =
    (behavior: IdleBehavior): Handler =>
    (_req, res, param) => {
      const id = param("instance_id");
      if (id === "") return jsonError(res, 400, "instance_id parameter not provided");
      const result = ports.pool.setIdleBehavior(id, behavior);
      if (!result.ok) return jsonError(res, 404, "requested instance does not exist");
      logger.info({ Instance: id, IdleBehavior: behavior }, "idle behavior set via management API");
      send(res, 200, undefined, "");
    };

  const routes = new Map<string, Partial<Record<Method, Handler>>>([
    [
      `${PREFIX}/containers`,
      {
        GET: (_req, res) => {
          const entries = ports.scheduler.containers();
          sendJson(res, { items: entries === null ? null : entries.map(queueEntJson) });
        },
      },
    ],
    [
      `${PREFIX}/container`,
      {
        GET: (_req, res, param) => {
          const uuid = param("container_uuid");
          const entry =
            uuid === ""
              ? undefined
              : ports.scheduler.containers()?.find((e) => e.container.uuid === uuid);
          if (!entry) return jsonError(res, 404, "container not found");
          sendJson(res, queueEntJson(entry));
        },
      },
    ],
    [
      `${PREFIX}/containers/kill`,
      {
        POST: (_req, res, param) => {
          const uuid = param("container_uuid");
          if (uuid === "") return jsonError(res, 400, "container_uuid parameter not provided");
          const reason = `via management API: ${param("reason")}`;
          if (!ports.pool.killContainer(uuid, reason))
            return jsonError(res, 404, "container not found");
          logger.info({ ContainerUUID: uuid, reason }, "container kill requested");
          send(res, 200, undefined, "");
        },
      },
    ],
    [
      `${PREFIX}/instances`,
      { GET: (_req, res) => sendJson(res, instancesJson(ports.pool.instances())) },
    ],
    [`${PREFIX}/instances/hold`, { POST: setIdle("hold") }],
    [`${PREFIX}/instances/drain`, { POST: setIdle("drain") }],
    [`${PREFIX}/instances/run`, { POST: setIdle("run") }],
    [
      `${PREFIX}/instances/kill`,
      {
        POST: (_req, res, param) => {
          const id = param("instance_id");
          if (id === "") return jsonError(res, 400, "instance_id parameter not provided");
          const reason = `via management API: ${param("reason")}`;
          if (!ports.pool.killInstance(id, reason).ok)
            return jsonError(res, 404, "instance not found");
          logger.info({ Instance: id, reason }, "instance kill requested");
          send(res, 200, undefined, "");
        },
      },
    ],
    // The dispatcher's own routes serve text at both; the GET/HEAD interception below shadows them.
    ["/metrics", { GET: (_req, res) => serveMetrics(res, false, false) }],
    ["/metrics.json", { GET: (_req, res) => serveMetrics(res, false, false) }],
  ]);

  /** The route for an exact path, including the one pattern route `/_health/:check`. */
  const routeAt = (path: string): Partial<Record<Method, Handler>> | undefined => {
    const exact = routes.get(path);
    if (exact) return exact;
    if (/^\/_health\/[^/]+$/.test(path)) {
      // Only ping exists (and is answered before routing); other checks are unknown paths.
      return { GET: (_req, res) => text(res, 404, "404 page not found") };
    }
    return undefined;
  };

  /** httprouter's fixed-path lookup: cleaned, trailing slash dropped, case-insensitive. */
  const fixedPath = (path: string, method: Method): string | undefined => {
    let fixed = cleanPath(path);
    if (fixed.length > 1 && fixed.endsWith("/")) fixed = fixed.slice(0, -1);
    if (routeAt(fixed)?.[method]) return fixed;
    const lower = fixed.toLowerCase();
    for (const [p, handlers] of routes) if (p.toLowerCase() === lower && handlers[method]) return p;
    if (lower.startsWith("/_health/") && routeAt(fixed)) return `/_health/${fixed.slice(9)}`;
    return undefined;
  };

  /** Arvados's health handler: stricter auth (only this exact header), plain-text refusals. */
  const ping = (req: IncomingMessage, res: ServerResponse) => {
    if (tokenDigest === undefined) return text(res, 404, "disabled");
    const auth = req.headers.authorization;
    if (auth === undefined || auth === "") return text(res, 401, "authorization required");
    if (!auth.startsWith("Bearer ") || !tokenMatches(auth.slice(7)))
      return text(res, 403, "authorization error");
    const state = ports.health?.check() ?? { healthy: true };
    // Go encodes the error as a map: keys sorted.
    const body = state.healthy ? { health: "OK" } : { error: state.error, health: "ERROR" };
    send(res, 200, "application/json", goJsonLine(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? "" : url.slice(q + 1);
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      return text(res, 400, "Bad Request");
    }
    const method = req.method ?? "GET";

    if (tokenDigest === undefined) {
      // Unlike Arvados, metrics are not served unauthenticated when no token is configured.
      return text(res, 403, "Management API authentication is not configured");
    }

    if ((method === "GET" || method === "HEAD") && isDashboardPath(path)) {
      return serveDashboard(res, dashboard, path, method === "HEAD");
    }

    const query = new URLSearchParams(rawQuery);
    let form = new URLSearchParams();
    if (method === "POST" && isForm(req)) {
      try {
        form = new URLSearchParams(await readBody(req, maxBody));
      } catch (err) {
        if (err instanceof BodyTooLarge) return text(res, 413, "Request Entity Too Large");
        throw err;
      }
    }

    const tokens = credentials(req, query, form);
    if (tokens.length === 0) return text(res, 401, "Unauthorized");
    // Check every candidate so the time taken does not depend on which one matched.
    let ok = false;
    for (const t of tokens) ok = tokenMatches(t) || ok;
    if (!ok) return text(res, 403, "Forbidden");

    if (
      (method === "GET" || method === "HEAD") &&
      (path === "/metrics" || path === "/metrics.json")
    ) {
      return serveMetrics(res, path === "/metrics.json", method === "HEAD");
    }

    // Body values first, then the query, as Go's Request.FormValue.
    const param: Params = (name) => form.get(name) ?? query.get(name) ?? "";
    const route = routeAt(path);
    const handler = method === "GET" || method === "POST" ? route?.[method] : undefined;
    if (handler) return handler(req, res, param);

    if (method === "GET" || method === "POST") {
      const fixed = fixedPath(path, method);
      if (fixed !== undefined && fixed !== path) {
        const location = rawQuery === "" ? fixed : `${fixed}?${rawQuery}`;
        return redirect(res, method === "GET" ? 301 : 307, location, method === "GET");
      }
    }
    if (route) return text(res, 405, "Method Not Allowed");
    return text(res, 404, "404 page not found");
  };

  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  const framework = serviceFramework({
    managementToken: options.managementToken,
    ...options.service,
  });
  const pathOf = (req: IncomingMessage): string => (req.url ?? "/").split("?")[0] ?? "/";
  app.use((req, res) => {
    const started = Date.now();
    const path = pathOf(req);
    framework
      .serve(req, res, {
        handle,
        // Health is answered before the limiter, with its own rules (as the Go framework does).
        intercept:
          req.method === "GET" && path === "/_health/ping"
            ? (rq, rs) => Promise.resolve(ping(rq, rs))
            : null,
        // Metrics are served beside the framework's stack, as Arvados's ServeAPI does.
        bypass:
          (req.method === "GET" || req.method === "HEAD") &&
          (path === "/metrics" || path === "/metrics.json"),
      })
      .catch((err: unknown) => {
        logger.error(
          { error: err instanceof Error ? err.message : String(err), method: req.method },
          "management API request failed",
        );
        if (!res.headersSent) jsonError(res, 500, "internal error");
        else res.destroy();
      })
      .finally(() => {
        // The query string may carry api_token: log the path only.
        logger.debug(
          {
            method: req.method,
            path: (req.url ?? "").split("?")[0],
            status: res.statusCode,
            durationMs: Date.now() - started,
          },
          "management API request",
        );
      });
  });
  return app;
}

function dashboardFiles(
  dir: string | null | undefined,
  logger: Logger,
): ReadonlyMap<string, DashboardFile> {
  if (dir === null) return new Map();
  const from = dir ?? defaultDashboardDir();
  try {
    return loadDashboard(from);
  } catch (err) {
    logger.warn(
      { error: err instanceof Error ? err.message : String(err) },
      "dashboard files missing: /dashboard/ is not served",
    );
    return new Map();
  }
}

function isDashboardPath(path: string): boolean {
  return path === DASHBOARD_PATH.slice(0, -1) || path.startsWith(DASHBOARD_PATH);
}

/**
 * The page's static files, before any token check: they carry no data (the page asks for the
 * token and sends it with each API call). Only the listed files; anything else is a 404.
 */
function serveDashboard(
  res: ServerResponse,
  files: ReadonlyMap<string, DashboardFile>,
  path: string,
  head: boolean,
): void {
  if (files.size === 0) return text(res, 404, "404 page not found");
  // The page's relative links need the trailing slash.
  if (!path.startsWith(DASHBOARD_PATH)) return redirect(res, 301, DASHBOARD_PATH, !head);
  const name = path.slice(DASHBOARD_PATH.length) || "index.html";
  const file = files.get(name);
  if (!file) return text(res, 404, "404 page not found");
  for (const [k, v] of Object.entries(dashboardHeaders(file.type))) res.setHeader(k, v);
  res.setHeader("Content-Length", file.body.length);
  res.statusCode = 200;
  res.end(head ? undefined : file.body);
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

function isForm(req: IncomingMessage): boolean {
  const ct = req.headers["content-type"] ?? "";
  return ct.split(";")[0]?.trim().toLowerCase() === "application/x-www-form-urlencoded";
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (b: Buffer) => {
      size += b.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(b);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** Every token the request offers: Authorization (Bearer, OAuth2, Basic password), api_token, cookie. */
function credentials(
  req: IncomingMessage,
  query: URLSearchParams,
  form: URLSearchParams,
): string[] {
  const out: string[] = [];
  const auth = req.headers.authorization ?? "";
  const m = /^(Bearer|OAuth2|Basic)\s+(.+)$/i.exec(auth);
  if (m) {
    const scheme = (m[1] ?? "").toLowerCase();
    const value = m[2] ?? "";
    if (scheme === "basic") {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i >= 0 && i < decoded.length - 1) out.push(decoded.slice(i + 1));
    } else {
      out.push(value);
    }
  }
  out.push(...form.getAll("api_token"), ...query.getAll("api_token"));
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, v] = part.trim().split("=", 2);
    if (k === "arvados_api_token" && v) out.push(Buffer.from(v, "base64url").toString("utf8"));
  }
  return out.filter((t) => t !== "");
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string | undefined,
  body: string,
  nosniff = false,
): void {
  const buf = Buffer.from(body, "utf8");
  if (contentType) res.setHeader("Content-Type", contentType);
  if (nosniff) res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Content-Length", buf.length);
  res.statusCode = status;
  res.end(buf);
}

/** Success bodies: JSON and a newline, as Go's json.Encoder writes them. */
function sendJson(res: ServerResponse, value: unknown): void {
  send(res, 200, "application/json", `${JSON.stringify(value)}\n`);
}

/** The API's own errors: `{"errors":[msg]}`. */
function jsonError(res: ServerResponse, status: number, message: string): void {
  send(res, status, "application/json", `${JSON.stringify({ errors: [message] })}\n`, true);
}

/** Plain-text errors as Go's http.Error writes them (auth, 404 page, 405). */
function text(res: ServerResponse, status: number, message: string): void {
  send(res, status, "text/plain; charset=utf-8", `${message}\n`, true);
}

function redirect(
  res: ServerResponse,
  status: 301 | 307,
  location: string,
  withBody: boolean,
): void {
  res.setHeader("Location", location);
  const label = status === 301 ? "Moved Permanently" : "Temporary Redirect";
  const href = location.replaceAll("&", "&amp;").replaceAll('"', "&#34;").replaceAll("<", "&lt;");
  send(
    res,
    status,
    withBody ? "text/html; charset=utf-8" : undefined,
    withBody ? `<a href="${href}">${label}</a>.\n\n` : "",
  );
}
