import type { IncomingMessage } from "node:http";
import net from "node:net";
import type { Logger } from "@dispatch-cloud/arvados-types";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import {
  MIN_PRIORITY,
  RequestLimiter,
  arvadosPriority,
  createManagementApp,
  listen,
  newRequestId,
  type ListeningServer,
} from "./index.js";

const TOKEN = "mgmt-token-0123456789";
const silent: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silent,
};

let srv: ListeningServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function start(registry = new Registry()) {
  const app = createManagementApp({
    managementToken: TOKEN,
    ports: {
      scheduler: { containers: () => [] },
      pool: {
        instances: () => [],
        killContainer: () => false,
        setIdleBehavior: () => ({ ok: false, error: "no" }),
        killInstance: () => ({ ok: false, error: "no" }),
      },
    },
    registry,
    logger: silent,
    service: {
      registry,
      limits: { maxConcurrent: 64, maxQueue: 128, maxQueueTimeForMinPriorityMs: 2000 },
    },
  });
  srv = await listen(app, "127.0.0.1", 0);
  const base = `http://127.0.0.1:${srv.address.port}`;
  return { base, registry, port: srv.address.port };
}

const auth = { Authorization: `Bearer ${TOKEN}` };

describe("X-Request-Id", () => {
  it("is on every response, in Arvados's format, and an incoming one is kept", async () => {
    const { base } = await start();
    for (const [path, headers] of [
      ["/arvados/v1/dispatch/instances", auth],
      ["/arvados/v1/dispatch/instances", {}],
      ["/nowhere", auth],
      ["/_health/ping", auth],
      ["/metrics", auth],
    ] as const) {
      const res = await fetch(base + path, { headers });
      expect({ path, id: res.headers.get("x-request-id") }).toEqual({
        path,
        id: expect.stringMatching(/^req-[0-9a-z]{20}$/),
      });
    }
    const res = await fetch(`${base}/arvados/v1/dispatch/instances`, {
      headers: { ...auth, "X-Request-Id": "req-fromtheclient" },
    });
    expect(res.headers.get("x-request-id")).toBe("req-fromtheclient");
    expect(new Set(Array.from({ length: 50 }, newRequestId)).size).toBe(50);
  });
});

describe("/_inspect/requests", () => {
  it("needs the exact management token header, answering as Arvados's httpserver.Error", async () => {
    const { base } = await start();
    for (const headers of [{}, { Authorization: `OAuth2 ${TOKEN}` }]) {
      const res = await fetch(`${base}/_inspect/requests`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(await res.text()).toBe('{"errors":["unauthorized"]}\n');
    }
  });

  it("lists requests in progress, newest first, without their tokens", async () => {
    const { base, port, registry } = await start();
    // A form POST whose body never completes stays in progress.
    const slow = net.connect(port, "127.0.0.1");
    slow.on("error", () => undefined);
    await new Promise<void>((r) => slow.once("connect", () => r()));
    slow.write(
      "POST /arvados/v1/dispatch/instances/hold?api_token=secret&x=<1> HTTP/1.1\r\nHost: dispatch.example:9006\r\n" +
        "X-Request-Id: req-slowslowslowslowslow\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
        "Content-Length: 100\r\n\r\ninstance_id=",
    );
    // The request shows up once its headers are read (no sleeping: ask until it is there).
    let text = "[]";
    while (text === "[]\n" || text === "[]") {
      text = await (await fetch(`${base}/_inspect/requests`, { headers: auth })).text();
    }
    expect(text).toContain("\\u003c1\\u003e");
    const report = JSON.parse(text) as Record<string, unknown>[];
    expect(report).toEqual([
      {
        RequestID: "req-slowslowslowslowslow",
        Method: "POST",
        Host: "dispatch.example:9006",
        URL: "/arvados/v1/dispatch/instances/hold?api_token=[REDACTED]&x=<1>",
        RemoteAddr: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        Elapsed: expect.any(Number),
      },
    ]);
    const age = await registry.getSingleMetricAsString("arvados_max_active_request_age_seconds");
    expect(age).toMatch(/\narvados_max_active_request_age_seconds \d/);
    slow.destroy();
  });
});

describe("framework metrics", () => {
  it("registers Arvados's names, help texts, types and labels", async () => {
    const { base, registry } = await start();
    await fetch(`${base}/arvados/v1/dispatch/instances`, { headers: auth });
    await fetch(`${base}/_health/ping`, { headers: auth });
    const text = await registry.metrics();
    for (const line of [
      "# HELP request_duration_seconds Summary of request duration.",
      "# TYPE request_duration_seconds summary",
      'request_duration_seconds_count{code="200",method="get"} 2',
      "# HELP time_to_status_seconds Summary of request TTFB.",
      'time_to_status_seconds_count{code="200",method="get"} 2',
      "# HELP arvados_concurrent_requests Number of requests in progress",
      "# TYPE arvados_concurrent_requests gauge",
      'arvados_concurrent_requests{queue="api"} 0',
      "# HELP arvados_max_concurrent_requests Maximum number of concurrent requests",
      'arvados_max_concurrent_requests{queue="api"} 64',
      "# HELP arvados_max_queued_requests Maximum number of queued requests",
      'arvados_max_queued_requests{queue="api"} 128',
      "# HELP arvados_queued_requests Number of requests in queue",
      'arvados_queued_requests{queue="api",priority="normal"} 0',
      'arvados_queued_requests{queue="api",priority="low"} 0',
      "# HELP arvados_queue_delay_seconds Time spent in the incoming request queue before start of processing",
      "# TYPE arvados_queue_delay_seconds summary",
      // The health check is answered before the limiter: one request went through it.
      'arvados_queue_delay_seconds_count{queue="api",priority="normal"} 1',
      "# HELP arvados_queue_timeout_seconds Time spent in the incoming request queue before client timed out or disconnected",
      "# HELP arvados_max_active_request_age_seconds Age of oldest active request",
      "# TYPE arvados_max_active_request_age_seconds gauge",
      "# HELP arvados_max_abandoned_request_age_seconds Maximum time since client hung up on a request whose processing thread is still running",
      "arvados_max_abandoned_request_age_seconds 0",
    ]) {
      expect(text.split("\n")).toContain(line);
    }
    expect(text).toMatch(
      /\narvados_queue_delay_seconds\{quantile="0\.5",queue="api",priority="normal"\} /,
    );
  });
});

function request(method: string, url: string, headers: Record<string, string> = {}) {
  return { method, url, headers } as unknown as IncomingMessage;
}

describe("RequestLimiter", () => {
  const never = new AbortController().signal;

  it("queues beyond the concurrency limit, by priority then arrival, and 503s the worst past the queue limit", async () => {
    const registry = new Registry();
    const rl = new RequestLimiter({
      maxConcurrent: 1,
      maxQueue: 2,
      maxQueueTimeForMinPriorityMs: 60_000,
      registry,
    });
    const first = await rl.admit(request("GET", "/a"), never);
    expect(first).not.toBeNull();
    const order: string[] = [];
    const track = (name: string, p: Promise<{ release: () => void } | null>) =>
      p.then((slot) => {
        order.push(slot === null ? `${name}:503` : name);
        return slot;
      });
    const normal = track("normal", rl.admit(request("GET", "/b"), never));
    const low = track("low", rl.admit(request("POST", "/arvados/v1/logs"), never));
    const high = track("high", rl.admit(request("GET", "/c", { origin: "https://wb" }), never));
    // Three waiters for two places: the low-priority one is refused at once.
    expect(await low).toBeNull();
    expect(rl.queued).toBe(2);
    expect(await registry.getSingleMetricAsString("arvados_queued_requests")).toContain(
      'arvados_queued_requests{queue="api",priority="high"} 1',
    );
    first?.release();
    (await high)?.release();
    (await normal)?.release();
    expect(order).toEqual(["low:503", "high", "normal"]);
    expect(rl.handling).toBe(0);
    expect(await registry.getSingleMetricAsString("arvados_queue_timeout_seconds")).toContain(
      'arvados_queue_timeout_seconds_count{queue="api",priority="low"} 1',
    );
  });

  it("gives a container lock request 503 after MaxQueueTimeForLockRequests, and a waiter whose client left", async () => {
    const rl = new RequestLimiter({
      maxConcurrent: 1,
      maxQueue: 10,
      maxQueueTimeForMinPriorityMs: 10,
    });
    const lock = request("POST", "/arvados/v1/containers/zzzzz-dz642-000000000000000/lock");
    expect(arvadosPriority(lock)).toBe(MIN_PRIORITY);
    const busy = await rl.admit(request("GET", "/"), never);
    expect(await rl.admit(lock, never)).toBeNull();
    const gone = new AbortController();
    const waiting = rl.admit(request("GET", "/x"), gone.signal);
    gone.abort();
    expect(await waiting).toBeNull();
    expect(rl.queued).toBe(0);
    busy?.release();
  });
});
