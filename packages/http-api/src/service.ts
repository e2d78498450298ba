/*
 * What Arvados's service framework (lib/service, sdk/go/httpserver) wraps around every
 * service's handler, in its order: request duration metrics, X-Request-Id, /_inspect/requests
 * with the active and abandoned request ages, time-to-status metrics, the health-check
 * interception, and the incoming request limiter.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { goJsonLine } from "@dispatch-cloud/arvados-types";
import { Gauge, Summary, type Registry } from "prom-client";
import { RequestLimiter, type LimiterOptions } from "./limiter.js";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** Arvados's request IDs: `req-` and 20 base-36 characters. */
export function newRequestId(): string {
  const b = randomBytes(16);
  const part = (o: number) => (b.readBigUInt64BE(o) & 0x7fff_ffff_ffff_ffffn).toString(36);
  return `req-${(part(0) + part(8)).slice(0, 20)}`;
}

/** promhttp's method label: known methods lowercased (anything else lowercased too). */
function methodLabel(method: string | undefined): string {
  return (method ?? "GET").toLowerCase();
}

interface Active {
  readonly id: string;
  readonly req: IncomingMessage;
  readonly start: number;
  hangup: number | null;
}

/** A query string's api_token values, replaced: the inspect report must not leak tokens. */
function redactTokens(url: string): string {
  return url.replace(/([?&]api_token=)[^&#]*/gi, "$1[REDACTED]");
}

export interface ServiceOptions {
  /** `ManagementToken`: guards /_inspect/requests ("" refuses it). */
  readonly managementToken: string;
  /** Where the framework's metrics go; none registered without one. */
  readonly registry?: Registry;
  /** The incoming request limiter (`API.MaxConcurrentRequests` etc.); none without it. */
  readonly limits?: Omit<LimiterOptions, "registry">;
}

export type Handle = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** The framework around a handler. */
export interface ServiceFramework {
  /**
   * Serves one request: `intercept` (the health check) runs before the limiter and returns
   * true when it answered; `bypass` requests (metrics) skip everything but the request ID.
   */
  serve(
    req: IncomingMessage,
    res: ServerResponse,
    h: { handle: Handle; intercept: Handle | null; bypass: boolean },
  ): Promise<void>;
}

export function serviceFramework(o: ServiceOptions): ServiceFramework {
  const registers = o.registry === undefined ? [] : [o.registry];
  const active = new Set<Active>();
  const limiter =
    o.limits === undefined
      ? undefined
      : new RequestLimiter({ ...o.limits, ...(o.registry ? { registry: o.registry } : {}) });
  // Go summaries without objectives: only _sum and _count.
  const byStatus = (name: string, help: string) =>
    new Summary({ name, help, labelNames: ["code", "method"], percentiles: [], registers });
  const duration = byStatus("request_duration_seconds", "Summary of request duration.");
  const ttfb = byStatus("time_to_status_seconds", "Summary of request TTFB.");
  const oldest = (pick: (a: Active) => number | null) => () => {
    let min: number | null = null;
    for (const a of active) {
      const t = pick(a);
      if (t !== null && (min === null || t < min)) min = t;
    }
    return min === null ? 0 : (Date.now() - min) / 1000;
  };
  const ageGauge = (name: string, help: string, value: () => number): void => {
    const gauge = new Gauge({
      name,
      help,
      registers: [],
      collect() {
        this.set(value());
      },
    });
    for (const r of registers) r.registerMetric(gauge);
  };
  ageGauge(
    "arvados_max_active_request_age_seconds",
    "Age of oldest active request",
    oldest((a) => (a.hangup === null ? a.start : null)),
  );
  ageGauge(
    "arvados_max_abandoned_request_age_seconds",
    "Maximum time since client hung up on a request whose processing thread is still running",
    oldest((a) => a.hangup),
  );

  const inspect = (req: IncomingMessage, res: ServerResponse): void => {
    if (o.managementToken === "" || req.headers.authorization !== `Bearer ${o.managementToken}`) {
      const body = goJsonLine({ errors: ["unauthorized"] });
      res.writeHead(401, {
        "Content-Type": "application/json",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
    const now = Date.now();
    const report = [...active]
      .map((a) => ({
        RequestID: a.id,
        Method: a.req.method ?? "",
        Host: a.req.headers.host ?? "",
        URL: redactTokens(a.req.url ?? ""),
        RemoteAddr: `${a.req.socket.remoteAddress ?? ""}:${a.req.socket.remotePort ?? 0}`,
        Elapsed: (now - a.start) / 1000,
      }))
      .sort((x, y) => x.Elapsed - y.Elapsed);
    const body = goJsonLine(report);
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(body),
    });
    res.end(body);
  };

  return {
    async serve(req, res, h) {
      const start = Date.now();
      const incoming = req.headers["x-request-id"];
      const id = typeof incoming === "string" && incoming !== "" ? incoming : newRequestId();
      req.headers["x-request-id"] = id;
      res.setHeader(REQUEST_ID_HEADER, id);
      if (h.bypass) return h.handle(req, res);

      let statusAt: number | null = null;
      const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => ServerResponse;
      res.writeHead = (...args: unknown[]) => {
        statusAt ??= Date.now();
        return writeHead(...args);
      };
      const done = new Promise<void>((resolve) => res.once("close", () => resolve()));
      void done.then(() => {
        const labels = { code: String(res.statusCode), method: methodLabel(req.method) };
        duration.observe(labels, (Date.now() - start) / 1000);
      });

      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && path === "/_inspect/requests") return inspect(req, res);

      const entry: Active = { id, req, start, hangup: null };
      active.add(entry);
      const gone = new AbortController();
      // The client hung up before we answered: the request is abandoned but may still run.
      res.once("close", () => {
        if (!res.writableFinished) {
          entry.hangup = Date.now();
          gone.abort();
        }
      });
      try {
        if (h.intercept !== null) {
          await h.intercept(req, res);
          if (res.headersSent || res.writableEnded) return;
        }
        const slot =
          limiter === undefined
            ? { release: () => undefined }
            : await limiter.admit(req, gone.signal);
        if (slot === null) {
          if (!res.headersSent) {
            res.writeHead(503, { "Content-Length": 0 });
            res.end();
          }
          return;
        }
        try {
          await h.handle(req, res);
          if (!res.writableEnded) await done;
        } finally {
          slot.release();
        }
      } finally {
        active.delete(entry);
        const labels = { code: String(res.statusCode), method: methodLabel(req.method) };
        ttfb.observe(labels, ((statusAt ?? Date.now()) - start) / 1000);
      }
    },
  };
}
