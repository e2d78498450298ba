import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Logger, silentLogger } from "@dispatch-cloud/arvados-types";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { DASHBOARD_CSP, defaultDashboardDir } from "./dashboard.js";
import { createManagementApp, listen, type ListeningServer } from "./index.js";

const TOKEN = "mgmt-token-0123456789";

let srv: ListeningServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function start(o: { token?: string; dashboardDir?: string | null; logger?: Logger } = {}) {
  const app = createManagementApp({
    managementToken: o.token ?? TOKEN,
    ports: {
      scheduler: { containers: () => [] },
      pool: {
        instances: () => [],
        killContainer: () => false,
        setIdleBehavior: () => ({ ok: true }),
        killInstance: () => ({ ok: true }),
      },
    },
    registry: new Registry(),
    logger: o.logger ?? silentLogger,
    ...(o.dashboardDir === undefined ? {} : { dashboardDir: o.dashboardDir }),
  });
  srv = await listen(app, "127.0.0.1", 0);
  const base = `http://127.0.0.1:${srv.address.port}`;
  return (p: string, init: RequestInit = {}) => fetch(base + p, { ...init, redirect: "manual" });
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

describe("the dashboard's files", () => {
  it("are served without a token, each with its type, a strict CSP and no framing", async () => {
    const get = await start();
    const files = readdirSync(defaultDashboardDir());
    expect(files.sort()).toEqual([
      "charts.js",
      "dashboard.css",
      "dashboard.js",
      "index.html",
      "panels.js",
    ]);
    for (const name of files) {
      const res = await get(`/dashboard/${name}`);
      expect({ name, status: res.status }).toEqual({ name, status: 200 });
      expect(res.headers.get("content-type")).toBe(TYPES[path.extname(name)]);
      expect(res.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(await res.text()).toBe(readFileSync(path.join(defaultDashboardDir(), name), "utf8"));
    }
    expect(DASHBOARD_CSP).toContain("default-src 'none'");
    expect(DASHBOARD_CSP).toContain("script-src 'self';");
    expect(DASHBOARD_CSP).toContain("connect-src 'self';");
  });

  it("index.html at /dashboard/, a redirect from /dashboard, and HEAD without a body", async () => {
    const get = await start();
    const index = await get("/dashboard/");
    expect(await index.text()).toContain('<script type="module" src="dashboard.js"></script>');
    const bare = await get("/dashboard");
    expect(bare.status).toBe(301);
    expect(bare.headers.get("location")).toBe("/dashboard/");
    const head = await get("/dashboard/dashboard.js", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(1000);
    expect(await head.text()).toBe("");
  });

  it("load nothing from elsewhere and run no inline code", () => {
    for (const name of readdirSync(defaultDashboardDir())) {
      const text = readFileSync(path.join(defaultDashboardDir(), name), "utf8");
      // The SVG namespace is a name, not a fetch.
      const urls = [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/gi)].map((m) => m[0]);
      expect({ name, urls: urls.filter((u) => u !== "http://www.w3.org") }).toEqual({
        name,
        urls: [],
      });
    }
    const html = readFileSync(path.join(defaultDashboardDir(), "index.html"), "utf8");
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/);
  });

  it("only the listed files: anything else under /dashboard/ is a 404, traversal included", async () => {
    const get = await start();
    for (const p of [
      "/dashboard/nope.js",
      "/dashboard/..%2fdashboard.ts",
      "/dashboard/%2e%2e%2f%2e%2e%2fpackage.json",
      "/dashboard/dashboard/index.html",
    ]) {
      const res = await get(p);
      expect({ p, status: res.status }).toEqual({ p, status: 404 });
      expect(await res.text()).toBe("404 page not found\n");
    }
  });

  it("the API behind it still wants the token; POST to the page is an API request", async () => {
    const get = await start();
    expect((await get("/arvados/v1/dispatch/instances")).status).toBe(401);
    expect((await get("/dashboard/", { method: "POST" })).status).toBe(401);
  });

  it("is refused like everything else when no ManagementToken is configured", async () => {
    const get = await start({ token: "" });
    expect((await get("/dashboard/")).status).toBe(403);
  });

  it("is not served with dashboardDir null, nor when its files are missing (with a warning)", async () => {
    let get = await start({ dashboardDir: null });
    expect((await get("/dashboard/")).status).toBe(404);
    await srv?.close();

    const empty = mkdtempSync(path.join(tmpdir(), "dashboard-test-"));
    const warnings: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (fields, msg) => warnings.push(`${msg} ${JSON.stringify(fields)}`),
    };
    try {
      get = await start({ dashboardDir: empty, logger });
      expect((await get("/dashboard/")).status).toBe(404);
      expect(warnings).toEqual([
        expect.stringMatching(/^dashboard files missing: \/dashboard\/ is not served .*ENOENT/),
      ]);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
