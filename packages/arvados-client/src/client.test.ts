import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { selfSignedCertificate } from "@dispatch-cloud/arvados-types/testing";
import { afterEach, describe, expect, it } from "vitest";
import { ArvadosClient } from "./client.js";
import type { Clock } from "./clock.js";
import { encodeParams } from "./encode.js";
import { ArvadosApiError } from "./errors.js";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Handler = (req: Seen, res: http.ServerResponse) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const s = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body };
      seen.push(s);
      handler(s, res);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, seen };
}

const json = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
};

/** A clock whose timers fire only when the test says so. */
function manualClock(start = 1_000_000): Clock & { advance(ms: number): void; pending(): number } {
  let now = start;
  let timers: Array<{ at: number; fn: () => void }> = [];
  return {
    now: () => now,
    setTimer(ms, fn) {
      const t = { at: now + ms, fn };
      timers.push(t);
      return () => {
        timers = timers.filter((x) => x !== t);
      };
    },
    advance(ms) {
      now += ms;
      const due = timers.filter((t) => t.at <= now);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
    },
    pending: () => timers.length,
  };
}

describe("encodeParams", () => {
  it("encodes each top-level value the Arvados way", () => {
    const p = encodeParams({
      s: "priority desc",
      n: 562948375092493200,
      t: true,
      f: false,
      z: null,
      u: undefined,
      a: [["state", "=", "Queued"]],
      o: { state: "Cancelled" },
    });
    expect([...p.entries()]).toEqual([
      ["s", "priority desc"],
      ["n", "562948375092493184"],
      ["t", "true"],
      ["a", '[["state","=","Queued"]]'],
      ["o", '{"state":"Cancelled"}'],
    ]);
  });
});

describe("ArvadosClient wire conventions", () => {
  it("sends GET with query, bearer token and a request id", async () => {
    const srv = await serve((_, res) => json(res, 200, { items: [], items_available: 0 }));
    const c = new ArvadosClient({ apiHost: srv.url, token: "secret-token" });
    await c.containers.list({
      filters: [
        ["state", "=", "Queued"],
        ["priority", ">", "0"],
      ],
      order: "priority desc",
      limit: 1000,
      count: "none",
      select: ["uuid", "state"],
    });
    const r = srv.seen[0];
    expect(r.method).toBe("GET");
    const u = new URL(r.url, "http://x");
    expect(u.pathname).toBe("/arvados/v1/containers");
    expect(u.searchParams.get("filters")).toBe('[["state","=","Queued"],["priority",">","0"]]');
    expect(u.searchParams.get("order")).toBe("priority desc");
    expect(u.searchParams.get("limit")).toBe("1000");
    expect(u.searchParams.get("count")).toBe("none");
    expect(u.searchParams.get("select")).toBe('["uuid","state"]');
    expect(u.searchParams.has("offset")).toBe(false);
    expect(r.headers.authorization).toBe("Bearer secret-token");
    expect(r.headers["x-request-id"]).toMatch(/^req-[0-9a-z]{20}$/);
  });

  it("reads the dispatcher's queue from its management API", async () => {
    const entry = {
      container: { uuid: "zzzzz-dz642-000000000000001", state: "Locked", priority: 5 },
      scheduling_status: "Waiting for a small instance to boot and be ready to accept work.",
      first_seen_at: "2026-01-01T00:00:00Z",
      instance_types: [],
    };
    let n = 0;
    const srv = await serve((req, res) => {
      if (req.url.startsWith("/arvados/v1/dispatch/containers"))
        json(res, 200, { items: n++ === 0 ? null : [entry] });
      else if (req.url.includes("000000000000001")) json(res, 200, entry);
      else json(res, 404, { errors: ["container not found"] });
    });
    const c = new ArvadosClient({ apiHost: srv.url, token: "management-token" });
    expect(await c.dispatch.containers()).toEqual([]); // null before the first pass
    expect(await c.dispatch.containers()).toEqual([entry]);
    expect(await c.dispatch.container("zzzzz-dz642-000000000000001")).toEqual(entry);
    const miss = await c.dispatch.container("zzzzz-dz642-000000000000002").catch((e: unknown) => e);
    expect(miss).toBeInstanceOf(ArvadosApiError);
    expect((miss as ArvadosApiError).isNotFound).toBe(true);
    expect(srv.seen.map((r) => r.url)).toEqual([
      "/arvados/v1/dispatch/containers",
      "/arvados/v1/dispatch/containers",
      "/arvados/v1/dispatch/container?container_uuid=zzzzz-dz642-000000000000001",
      "/arvados/v1/dispatch/container?container_uuid=zzzzz-dz642-000000000000002",
    ]);
    expect(srv.seen.every((r) => r.headers.authorization === "Bearer management-token")).toBe(true);
  });

  it("switches a GET to POST + X-Http-Method-Override at 1000 characters", async () => {
    const srv = await serve((_, res) => json(res, 200, { items: null }));
    const c = new ArvadosClient({ apiHost: srv.url, token: "t" });
    // Find a filter size whose encoded query is exactly 999 and exactly 1000 characters.
    const queryFor = (pad: string): string =>
      encodeParams({ filters: [["uuid", "=", pad]] }).toString();
    let pad = "";
    while (queryFor(pad).length < 999) pad += "a";
    expect(queryFor(pad).length).toBe(999);
    const short = await c.containers.list({ filters: [["uuid", "=", pad]] });
    expect(short.items).toEqual([]); // null items normalised
    await c.containers.list({ filters: [["uuid", "=", pad + "a"]] });
    expect(srv.seen[0].method).toBe("GET");
    expect(srv.seen[0].body).toBe("");
    const long = srv.seen[1];
    expect(long.method).toBe("POST");
    expect(long.headers["x-http-method-override"]).toBe("GET");
    expect(long.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(long.url).toBe("/arvados/v1/containers");
    expect(new URLSearchParams(long.body).get("filters")).toBe(
      JSON.stringify([["uuid", "=", pad + "a"]]),
    );
  });

  it("form-encodes update bodies, lock and unlock", async () => {
    const srv = await serve((r, res) =>
      json(res, 200, { uuid: "zzzzz-dz642-000000000000001", state: "Locked", url: r.url }),
    );
    const c = new ArvadosClient({ apiHost: srv.url, token: "t" });
    await c.containers.update(
      "zzzzz-dz642-000000000000001",
      { runtime_status: { error: "x" } },
      { select: ["uuid"] },
    );
    await c.containers.lock("zzzzz-dz642-000000000000001");
    await c.containers.unlock("zzzzz-dz642-000000000000001");
    const [put, lock, unlock] = srv.seen;
    expect(put.method).toBe("PUT");
    const form = new URLSearchParams(put.body);
    expect(form.get("container")).toBe('{"runtime_status":{"error":"x"}}');
    expect(form.get("select")).toBe('["uuid"]');
    expect([lock.method, lock.url]).toEqual([
      "POST",
      "/arvados/v1/containers/zzzzz-dz642-000000000000001/lock",
    ]);
    expect(unlock.url).toBe("/arvados/v1/containers/zzzzz-dz642-000000000000001/unlock");
  });

  it("reports errors with the status line and the server's errors array", async () => {
    const srv = await serve((_, res) =>
      json(res, 422, { errors: ["cannot lock when Running", "second"], error_token: "x" }),
    );
    const c = new ArvadosClient({ apiHost: srv.url, token: "t" });
    const err = await c.containers.lock("zzzzz-dz642-000000000000001").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArvadosApiError);
    const e = err as ArvadosApiError;
    expect(e.kind).toBe("http");
    expect(e.status).toBe(422);
    expect(e.statusLine).toBe("422 Unprocessable Entity");
    expect(e.errors).toEqual(["cannot lock when Running", "second"]);
    expect(e.message).toBe(
      `request failed: ${srv.url}arvados/v1/containers/zzzzz-dz642-000000000000001/lock: 422 Unprocessable Entity: cannot lock when Running; second`,
    );
    expect(e.message).not.toContain("Bearer");
  });

  it("reports a non-JSON error body and a non-JSON success body", async () => {
    let n = 0;
    const srv = await serve((_, res) => {
      n++;
      res.writeHead(n === 1 ? 502 : 200);
      res.end("<html>bad gateway</html>");
    });
    const c = new ArvadosClient({ apiHost: srv.url, token: "t" });
    const e1 = (await c.apiClientAuthorizations
      .current()
      .catch((e: unknown) => e)) as ArvadosApiError;
    expect([e1.kind, e1.status, e1.errors]).toEqual(["http", 502, []]);
    const e2 = (await c.apiClientAuthorizations
      .current()
      .catch((e: unknown) => e)) as ArvadosApiError;
    expect(e2.kind).toBe("decode");
  });

  it("reports a refused connection as a network error", async () => {
    const srv = await serve(() => {});
    const url = srv.url;
    const s = servers.pop()!;
    await new Promise((r) => s.close(r));
    const c = new ArvadosClient({ apiHost: url, token: "t" });
    const e = (await c.containers.get("x").catch((err: unknown) => err)) as ArvadosApiError;
    expect(e.kind).toBe("network");
    expect(e.status).toBeNull();
  });
});

describe("503 tracking and the adaptive concurrency limit", () => {
  it("records the time of the last 503 and halves the limit once per quiet period", async () => {
    const clock = manualClock();
    const srv = await serve((_, res) => json(res, 503, { errors: ["overloaded"] }));
    const c = new ArvadosClient({ apiHost: srv.url, token: "t", clock, timeoutMs: 0 });
    expect(c.lastServerError503()).toBeNull();
    expect(c.concurrency().limit).toBe(8);
    const e = (await c.containers.lock("u").catch((err: unknown) => err)) as ArvadosApiError;
    expect(e.isServiceUnavailable).toBe(true);
    expect(c.lastServerError503()).toBe(1_000_000);
    expect(c.concurrency().limit).toBe(4);

    // During the quiet period no request starts: it waits for the clock.
    let settled = false;
    const p = c.containers.lock("u").finally(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(srv.seen.length).toBe(1);
    expect(settled).toBe(false);
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    expect(srv.seen.length).toBe(1);
    clock.advance(1);
    await p.catch(() => {});
    expect(srv.seen.length).toBe(2);
    expect(c.concurrency().limit).toBe(2);
    expect(c.lastServerError503()).toBe(1_001_000);
  });

  it("raises the limit on success up to twice the concurrency seen and MaxConcurrentRequests/4", async () => {
    const clock = manualClock();
    const srv = await serve((_, res) => json(res, 200, { uuid: "x" }));
    const c = new ArvadosClient({
      apiHost: srv.url,
      token: "t",
      clock,
      timeoutMs: 0,
      maxConcurrentRequests: 64,
    });
    await c.apiClientAuthorizations.current();
    // 8 + max(1, 0) = 9, capped at 2 × 1 in flight.
    expect(c.concurrency()).toEqual({ limit: 2, current: 0 });

    // Without MaxConcurrentRequests the limit never rises.
    const c2 = new ArvadosClient({ apiHost: srv.url, token: "t", clock, timeoutMs: 0 });
    await c2.apiClientAuthorizations.current();
    expect(c2.concurrency().limit).toBe(8);
  });

  it("holds requests beyond the limit until one finishes", async () => {
    const clock = manualClock();
    const held: http.ServerResponse[] = [];
    let first = true;
    const srv = await serve((_, res) => {
      if (first) {
        first = false;
        json(res, 503, {});
        return;
      }
      held.push(res);
    });
    const c = new ArvadosClient({ apiHost: srv.url, token: "t", clock, timeoutMs: 0 });
    await c.containers.get("a").catch(() => {});
    expect(c.concurrency().limit).toBe(4);
    clock.advance(1000);
    const calls = Array.from({ length: 6 }, (_, i) => c.containers.get(`c${i}`));
    while (held.length < 4) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(held.length).toBe(4);
    expect(c.concurrency().current).toBe(4);
    json(held[0], 200, {});
    while (held.length < 5) await new Promise((r) => setImmediate(r));
    for (const r of held.slice(1)) json(r, 200, {});
    while (held.length < 6) await new Promise((r) => setImmediate(r));
    json(held[5], 200, {});
    await Promise.all(calls);
    expect(c.concurrency().current).toBe(0);
  });
});

describe("timeouts and cancellation", () => {
  it("fails a request the server never answers when the timeout fires", async () => {
    const clock = manualClock();
    const srv = await serve(() => {}); // never answers
    const c = new ArvadosClient({ apiHost: srv.url, token: "t", clock, timeoutMs: 30_000 });
    const p = c.containers.list().catch((e: unknown) => e);
    while (srv.seen.length === 0) await new Promise((r) => setImmediate(r));
    clock.advance(29_999);
    clock.advance(1);
    const e = (await p) as ArvadosApiError;
    expect(e.kind).toBe("timeout");
    expect(e.message).toContain("no answer within 30000ms");
    expect(c.concurrency().current).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it("stops when the caller's signal aborts", async () => {
    const srv = await serve(() => {});
    const c = new ArvadosClient({ apiHost: srv.url, token: "t" });
    const ac = new AbortController();
    const p = c.containers.get("x", {}, { signal: ac.signal }).catch((e: unknown) => e);
    while (srv.seen.length === 0) await new Promise((r) => setImmediate(r));
    ac.abort();
    expect(((await p) as ArvadosApiError).kind).toBe("aborted");
  });
});

describe("TLS", () => {
  it("accepts a self-signed certificate only when insecure or given as a root (--ca-certs)", async () => {
    const tls = selfSignedCertificate();
    const server = https.createServer(tls, (_, res) =>
      json(res, 200, { uuid: "zzzzz-gj3su-000000000000000" }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    try {
      const strict = new ArvadosClient({ apiHost: `127.0.0.1:${port}`, token: "t" });
      const e = (await strict.apiClientAuthorizations
        .current()
        .catch((x: unknown) => x)) as ArvadosApiError;
      expect(e.kind).toBe("network");
      const lax = new ArvadosClient({ apiHost: `127.0.0.1:${port}`, token: "t", insecure: true });
      expect((await lax.apiClientAuthorizations.current()).uuid).toBe(
        "zzzzz-gj3su-000000000000000",
      );
      await lax.close();
      const rooted = new ArvadosClient({
        apiHost: `127.0.0.1:${port}`,
        token: "t",
        caCerts: tls.cert,
      });
      expect((await rooted.apiClientAuthorizations.current()).uuid).toBe(
        "zzzzz-gj3su-000000000000000",
      );
      await rooted.close();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
