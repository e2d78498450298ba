// The operator's dashboards against the daemon (built CLI, child process) on the stub cloud,
// with a VM running a container and another container waiting:
// - the page in a real browser: Debian's chromium, headless, driven by playwright-core. The
//   events and holds endpoints are answered by fixtures shaped as their documented JSON (and by
//   404, as a dispatcher without them answers), so their panels are checked whatever this build
//   serves. Screenshots go to test-artifacts/dashboard/ (git-ignored);
// - the Grafana example: every metric and label its queries name is one this daemon exports.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page, type Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  APP_DIR,
  MANAGEMENT_TOKEN,
  instances,
  mgmt,
  startStack,
  stopStack,
  submit,
  type Stack,
} from "./harness.js";

const ARTIFACTS = path.join(APP_DIR, "../../test-artifacts/dashboard");
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const EVENTS_PATH = "/arvados/v1/dispatch/events";
/** Room for a refresh (every 5 s) on a busy machine. */
const POLL = { timeout: 15_000, interval: 100 };
const HOLDS_PATH = "/arvados/v1/dispatch/holds";

/** Events as GET /arvados/v1/dispatch/events serves them: every field present, null if n/a. */
function eventsFixture(instanceId: string, containerUuid: string) {
  const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toISOString();
  return [
    {
      seq: 41,
      time: at(300),
      kind: "create_failed",
      instance_id: null,
      instance_type: "small",
      container_uuid: null,
      reason: "quota",
      message: "InstanceLimitExceeded: You have requested more instances than your limit allows",
      details: {},
    },
    {
      seq: 42,
      time: at(200),
      kind: "shutdown_requested",
      instance_id: "i-0abc",
      instance_type: "small",
      container_uuid: null,
      reason: "idle",
      message: "idle for 60s",
      details: { idle_seconds: 60 },
    },
    {
      seq: 43,
      time: at(100),
      kind: "container_started",
      instance_id: instanceId,
      instance_type: "small",
      container_uuid: containerUuid,
      reason: null,
      message: null,
      details: {},
    },
  ];
}

function holdsFixture() {
  const now = Date.now();
  return [
    {
      kind: "quota",
      scope: "all",
      since: new Date(now - 60_000).toISOString(),
      until: new Date(now + 90_000).toISOString(),
      message: "InstanceLimitExceeded: You have requested more instances than your limit allows",
    },
  ];
}

/** The metric names and label names a PromQL expression mentions. */
function promqlNames(expr: string): { metrics: string[]; labels: string[] } {
  const labels: string[] = [];
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  s = s.replace(/\{([^}]*)\}/g, (_all, inner: string) => {
    for (const m of inner.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.push(m[1] ?? "");
    return " ";
  });
  s = s.replace(
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_all, inner: string) => {
      labels.push(
        ...inner
          .split(",")
          .map((l) => l.trim())
          .filter((l) => l !== ""),
      );
      return " ";
    },
  );
  s = s.replace(/\[[^\]]*\]/g, " ");
  const keywords = new Set(["and", "or", "unless", "bool", "offset"]);
  const metrics = [...s.matchAll(/[a-zA-Z_:][\w:]*(?!\w|\s*\()/g)]
    .map((m) => m[0])
    .filter((n) => !keywords.has(n));
  return { metrics, labels };
}

/** Prometheus text exposition: each sample's name with the label names it carries. */
function exported(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!m?.[1]) continue;
    const names = out.get(m[1]) ?? new Set<string>();
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="/g)) names.add(l[1] ?? "");
    out.set(m[1], names);
  }
  return out;
}

function json(route: Route, body: unknown): Promise<void> {
  return route.fulfill({
    status: 200,
    contentType: "application/json",
    body: JSON.stringify(body),
  });
}

describe("the dashboard in chromium", () => {
  let stack: Stack;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  let running = "";
  let queued = "";
  let instanceId = "";
  /** Every URL the browser asked for, and every console error and page error. */
  const requested: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    stack = await startStack({
      // One VM only: the first container runs on it, the second waits in the queue.
      cloudVMs: { MaxInstances: 1 },
      driverParameters: { ContainerRunTime: "600s" },
    });
    running = await submit(stack.peer, ["sleep", "600"]);
    await vi.waitFor(
      async () => {
        const [inst] = await instances(stack.cfg.url);
        if (inst?.running_container_uuids?.[0] !== running) throw new Error("not running yet");
        instanceId = inst.instance;
      },
      { timeout: 30_000, interval: 100 },
    );
    queued = await submit(stack.peer, ["true"]);

    profile = mkdtempSync(path.join(tmpdir(), "dashboard-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1360, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("request", (r) => requested.push(r.url()));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
  });

  afterAll(async () => {
    await context?.close();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
    await stopStack(stack ?? {});
  });

  it("asks for the token, shows nothing without it, and rejects a wrong one", async () => {
    // A dispatcher without the events and holds endpoints.
    await page.route(`**${EVENTS_PATH}*`, (r) =>
      r.fulfill({ status: 404, body: "404 page not found\n" }),
    );
    await page.route(`**${HOLDS_PATH}*`, (r) =>
      r.fulfill({ status: 404, body: "404 page not found\n" }),
    );
    await page.goto(new URL("dashboard/", stack.cfg.url).href);
    await expect.poll(() => page.locator("#login").isVisible(), POLL).toBe(true);
    expect(await page.locator("#board").isVisible()).toBe(false);
    expect(requested.filter((u) => u.includes("/arvados/"))).toEqual([]);

    await page.fill("#token", "not-the-token");
    await page.click("#login-form button[type=submit]");
    await expect
      .poll(() => page.textContent("#login-error"), POLL)
      .toBe("the dispatcher refused the token (HTTP 403)");
    expect(await page.locator("#board").isVisible()).toBe(false);
    expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
    await page.screenshot({ path: path.join(ARTIFACTS, "1-wrong-token.png") });
  });

  it("shows the queue, the instances and the cost; events and holds say they are not provided", async () => {
    await page.fill("#token", MANAGEMENT_TOKEN);
    await page.click("#login-form button[type=submit]");
    const row = page.locator(`#instances tr[data-instance="${instanceId}"]`);
    await expect.poll(() => row.locator(".state").textContent(), POLL).toBe("running");
    expect(await row.locator(".idle-behavior").textContent()).toBe("run");
    expect(await row.textContent()).toContain(running);
    expect(await page.textContent("#summary-cost .value")).toBe("$0.100");
    expect(await page.textContent("#summary-running .value")).toBe("1");

    // The waiting container, with the scheduling status the API gives for it.
    await expect
      .poll(() => page.locator(`#queue tr[data-container="${queued}"]`).count(), POLL)
      .toBe(1);
    const statusFromApi = async (): Promise<string> =>
      (
        (await mgmt(stack.cfg.url, "arvados/v1/dispatch/containers")).json() as {
          items: { container: { uuid: string }; scheduling_status: string }[];
        }
      ).items.find((e) => e.container.uuid === queued)?.scheduling_status ?? "";
    const shown = () =>
      page.textContent(`#queue tr[data-container="${queued}"] .scheduling-status`);
    // The page shows what the API says (both settle within a scheduler pass and a refresh).
    await expect
      .poll(async () => {
        const api = await statusFromApi();
        return api !== "" && api === (await shown());
      }, POLL)
      .toBe(true);
    expect(await page.textContent("#summary-queued .value")).toBe("1");

    expect(await page.textContent("#events")).toBe(
      `This dispatcher does not provide an events journal (GET ${EVENTS_PATH} is not found).`,
    );
    expect(await page.textContent("#holds")).toBe(
      `This dispatcher does not provide create holds (GET ${HOLDS_PATH} is not found).`,
    );
    expect(await page.locator("#chart-states polyline").count()).toBe(5);
    // The token stays in this tab's session storage, and nowhere else the page can write.
    expect(await page.evaluate<number>("sessionStorage.length")).toBe(1);
    expect(await page.evaluate<number>("localStorage.length + document.cookie.length")).toBe(0);
  });

  it("holds the instance after confirmation; the API agrees", async () => {
    const row = page.locator(`#instances tr[data-instance="${instanceId}"]`);
    await row.locator('button[data-action="hold"]').click();
    await expect.poll(() => page.locator("#confirm").isVisible(), POLL).toBe(true);
    expect(await page.textContent("#confirm-text")).toContain(`hold instance ${instanceId}`);
    await page.screenshot({ path: path.join(ARTIFACTS, "2-confirm-hold.png") });
    await page.click("#confirm-cancel");
    expect((await instances(stack.cfg.url))[0]?.idle_behavior).toBe("run");

    await row.locator('button[data-action="hold"]').click();
    await page.click("#confirm-ok");
    await expect.poll(() => row.locator(".idle-behavior").textContent(), POLL).toBe("hold");
    expect((await instances(stack.cfg.url))[0]?.idle_behavior).toBe("hold");
    expect(await row.locator('button[data-action="hold"]').isDisabled()).toBe(true);
  });

  it("renders the events journal and the create holds from their endpoints' JSON", async () => {
    await page.unrouteAll();
    await page.route(`**${EVENTS_PATH}*`, (r) => {
      const since = Number(new URL(r.request().url()).searchParams.get("since_seq") ?? "0");
      const items = eventsFixture(instanceId, running).filter((e) => e.seq > since);
      return json(r, { items, next_seq: 44 });
    });
    await page.route(`**${HOLDS_PATH}*`, (r) => json(r, { items: holdsFixture() }));
    // The token survives a reload of the tab.
    await page.reload();
    await expect.poll(() => page.locator("#events tr[data-seq]").count(), POLL).toBe(3);
    expect(await page.locator("#login").isVisible()).toBe(false);

    const seqs = await page
      .locator("#events tr[data-seq]")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-seq")));
    expect(seqs).toEqual(["43", "42", "41"]);
    const failed = page.locator('#events tr[data-seq="41"]');
    expect(await failed.locator(".kind").textContent()).toBe("create failed");
    expect(await failed.locator(".reason").textContent()).toBe("quota");
    expect(await page.textContent('#events tr[data-seq="42"] .message')).toBe("idle for 60s");
    await page.check("#events-problems");
    expect(
      await page
        .locator("#events tr[data-seq]")
        .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-seq"))),
    ).toEqual(["42", "41"]);
    await page.uncheck("#events-problems");
    expect(await page.locator("#events tr[data-seq]").count()).toBe(3);

    const hold = page.locator('#holds tr[data-hold="quota"]');
    expect(await hold.locator(".hold-kind").textContent()).toBe("quota");
    expect(await hold.locator(".next-try").textContent()).toMatch(/^in 1m \d\ds$/);
    expect(await hold.locator(".message").textContent()).toContain("InstanceLimitExceeded");

    // Time in state of the running instance comes from its container_started event.
    const inState = await page
      .locator(`#instances tr[data-instance="${instanceId}"] td:nth-child(6)`)
      .textContent();
    expect(inState).toMatch(/^1m \d\ds$/);
    await page.screenshot({ path: path.join(ARTIFACTS, "3-dashboard.png"), fullPage: true });

    // Nothing but this dispatcher was asked for anything, and the CSP blocked nothing.
    const origin = new URL(stack.cfg.url).origin;
    expect(requested.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
    expect(problems.filter((p) => !p.includes("403") && !p.includes("404"))).toEqual([]);
  });

  it("Grafana example: queries only metrics and labels this daemon exports", async () => {
    const file = path.join(APP_DIR, "../../examples/grafana/dispatch-cloud.json");
    const dash = JSON.parse(readFileSync(file, "utf8")) as {
      panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[];
      templating: { list: { query?: string | { query: string } }[] };
    };
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(25);
    for (const v of dash.templating.list) {
      const q = typeof v.query === "string" ? v.query : v.query?.query;
      const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q ?? "");
      if (m) exprs.push(`${m[1]}{${m[2]}=""}`);
    }
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
    expect(dash.panels.filter((p) => p.type !== "row" && (p.targets ?? []).length === 0)).toEqual(
      [],
    );

    const scrape = await mgmt(stack.cfg.url, "metrics");
    expect(scrape.status).toBe(200);
    const metrics = exported(scrape.body);
    const missing: string[] = [];
    for (const expr of exprs) {
      const names = promqlNames(expr);
      if (names.metrics.length === 0) missing.push(`no metric in ${expr}`);
      const labels = new Set(names.metrics.flatMap((n) => [...(metrics.get(n) ?? [])]));
      // Prometheus adds the job label itself at scrape time.
      labels.add("job");
      for (const n of names.metrics) if (!metrics.has(n)) missing.push(`${n} in ${expr}`);
      for (const l of names.labels) if (!labels.has(l)) missing.push(`label ${l} in ${expr}`);
    }
    expect(missing).toEqual([]);
    // The parser itself: functions, groupings, strings and ranges are not metric names.
    expect(
      promqlNames('sum by (a) (rate(x_total{b="c{d}"}[5m])) / on (e) y or time() - z_sum > 0'),
    ).toEqual({ metrics: ["x_total", "y", "z_sum"], labels: ["b", "a", "e"] });
  });

  it("forgets the token and the data on request", async () => {
    await page.click("#sign-out");
    expect(await page.locator("#login").isVisible()).toBe(true);
    expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
    expect(await page.textContent("#instances")).toBe("");
  });
});
