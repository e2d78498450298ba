import {
  type ActionResult,
  type IdleBehavior,
  type InstanceView,
  silentLogger as silent,
} from "@dispatch-cloud/arvados-types";
import { Counter, Gauge, Registry, Summary } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { createManagementApp, listen, type ListeningServer, type QueueEntryView } from "./index.js";

const TOKEN = "mgmt-token-0123456789";
const gpu = { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 };
const entry: QueueEntryView = {
  container: {
    uuid: "zzzzz-dz642-000000000000001",
    state: "Queued",
    priority: 1,
    container_image: "d41d8cd98f00b204e9800998ecf8427e+0",
    created_at: "2024-05-06T07:08:09.123456Z",
    runtime_constraints: { ram: 1073741824, vcpus: 2, API: true },
    scheduling_parameters: { preemptible: false, supervisor: true },
    locked_by_uuid: null,
    runtime_token: "v2/secret-should-never-show",
  },
  instanceTypes: [
    {
      Name: "small",
      ProviderType: "t3.small",
      VCPUs: 2,
      RAM: 2147483648,
      IncludedScratch: 0,
      AddedScratch: 1000,
      Scratch: 1000,
      Price: 0.02,
      Preemptible: false,
      GPU: gpu,
    },
  ],
  instanceResources: { VCPUs: 2, RAM: 1610612736, Scratch: 0, GPUs: 0, GPUVRAM: 0 },
  firstSeenAt: new Date("2024-05-06T07:08:10.120Z"),
  schedulingStatus: "Waiting for a t3.small instance to boot and be ready to accept work.",
};

function view(instance: string, type: string, running: string[] | null): InstanceView {
  return {
    instance,
    address: instance ? "10.0.0.1" : "",
    price: 0.02,
    arvados_instance_type: type,
    provider_instance_type: "t3.small",
    last_container_uuid: "",
    last_busy: "0001-01-01T00:00:00Z",
    running_container_uuids: running,
    worker_state: instance ? "idle" : "booting",
    idle_behavior: "run",
  };
}

/** A pool fake that records what the API asked of it. */
function fakePool(instances: InstanceView[]) {
  const calls: string[] = [];
  const known = (id: string) => instances.some((i) => i.instance === id);
  const miss: ActionResult = { ok: false, error: "not here" };
  return {
    calls,
    instances: () => instances,
    killContainer: (uuid: string, reason: string) => {
      calls.push(`killContainer ${uuid} ${reason}`);
      return uuid === entry.container.uuid;
    },
    setIdleBehavior: (id: string, b: IdleBehavior): ActionResult => {
      calls.push(`setIdleBehavior ${id} ${b}`);
      return known(id) ? { ok: true } : miss;
    },
    killInstance: (id: string, reason: string): ActionResult => {
      calls.push(`killInstance ${id} ${reason}`);
      return known(id) ? { ok: true } : miss;
    },
  };
}

let srv: ListeningServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function start(opts: {
  token?: string;
  entries?: QueueEntryView[] | null;
  instances?: InstanceView[];
  healthy?: boolean;
  registry?: Registry;
}) {
  const pool = fakePool(
    opts.instances ?? [view("i-b", "small", ["c2", "c1"]), view("i-a", "small", [])],
  );
  const app = createManagementApp({
    managementToken: opts.token ?? TOKEN,
    ports: {
      scheduler: { containers: () => (opts.entries === undefined ? [entry] : opts.entries) },
      pool,
      health: {
        check: () =>
          opts.healthy === false
            ? { healthy: false, error: "runner binary <missing>" }
            : { healthy: true },
      },
    },
    registry: opts.registry ?? new Registry(),
    logger: silent,
  });
  srv = await listen(app, "127.0.0.1", 0);
  const base = `http://127.0.0.1:${srv.address.port}`;
  const call = (path: string, init: RequestInit & { auth?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    const auth = init.auth === undefined ? `Bearer ${TOKEN}` : init.auth;
    if (auth !== null) headers.set("Authorization", auth);
    return fetch(base + path, { ...init, headers, redirect: "manual" });
  };
  return { pool, call, base };
}

describe("authentication", () => {
  it.each([
    ["no token", null, 401, "Unauthorized\n"],
    ["a wrong bearer token", "Bearer nope", 403, "Forbidden\n"],
  ])("%s → %i", async (_name, auth, status, body) => {
    const { call } = await start({});
    const res = await call("/arvados/v1/dispatch/instances", { auth });
    expect(res.status).toBe(status);
    expect(await res.text()).toBe(body);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
  });

  it.each([
    ["the right bearer token", `Bearer ${TOKEN}`],
    ["the right OAuth2 token", `OAuth2 ${TOKEN}`],
    ["the token as a Basic password", `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}`],
  ])("accepts %s", async (_name, auth) => {
    const { call } = await start({});
    expect((await call("/arvados/v1/dispatch/instances", { auth })).status).toBe(200);
  });

  it("takes api_token from the query and from a form body", async () => {
    const { call } = await start({});
    expect(
      (await call(`/arvados/v1/dispatch/instances?api_token=${TOKEN}`, { auth: null })).status,
    ).toBe(200);
    const res = await call("/arvados/v1/dispatch/instances/hold", {
      method: "POST",
      auth: null,
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: `api_token=${TOKEN}&instance_id=i-a`,
    });
    expect(res.status).toBe(200);
  });

  it("refuses every request, metrics included, when no token is configured", async () => {
    const { call } = await start({ token: "" });
    for (const path of [
      "/arvados/v1/dispatch/instances",
      "/metrics",
      "/metrics.json",
      "/nowhere",
    ]) {
      const res = await call(path, { auth: "Bearer " });
      expect(res.status).toBe(403);
      expect(await res.text()).toBe("Management API authentication is not configured\n");
    }
  });

  it("authenticates metrics like the rest", async () => {
    const { call } = await start({});
    expect((await call("/metrics", { auth: null })).status).toBe(401);
    expect((await call("/metrics", { auth: "Bearer wrong" })).status).toBe(403);
  });
});

describe("containers", () => {
  it("serves queue entries in the Go dispatcher's JSON shape", async () => {
    const { call } = await start({});
    const res = await call("/arvados/v1/dispatch/containers");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.endsWith("}\n")).toBe(true);
    const body = JSON.parse(text) as { items: Record<string, unknown>[] };
    const item = body.items[0] ?? {};
    expect(Object.keys(item)).toEqual([
      "container",
      "instance_resources",
      "instance_types",
      "first_seen_at",
      "scheduling_status",
    ]);
    const c = item["container"] as Record<string, unknown>;
    expect(c).toMatchObject({
      uuid: entry.container.uuid,
      etag: "",
      created_at: "2024-05-06T07:08:09.123456Z",
      modified_at: "0001-01-01T00:00:00Z",
      command: null,
      locked_by_uuid: "",
      state: "Queued",
      priority: 1,
      runtime_token: "",
      runtime_constraints: {
        API: true,
        ram: 1073741824,
        vcpus: 2,
        keep_cache_ram: 0,
        keep_cache_disk: 0,
        gpu: { stack: "", driver_version: "", hardware_target: null, device_count: 0, vram: 0 },
      },
      scheduling_parameters: {
        partitions: null,
        preemptible: false,
        max_run_time: 0,
        supervisor: true,
      },
      started_at: null,
      published_ports: null,
    });
    expect(Object.keys(c)).toHaveLength(35);
    expect(text).not.toContain("secret-should-never-show");
    expect(item["instance_types"]).toEqual([
      {
        ProviderType: "t3.small",
        VCPUs: 2,
        RAM: 2147483648,
        IncludedScratch: 0,
        AddedScratch: 1000,
        Price: 0.02,
        Preemptible: false,
        GPU: gpu,
      },
    ]);
    expect(item["first_seen_at"]).toBe("2024-05-06T07:08:10.12Z");
    expect(item["scheduling_status"]).toBe(entry.schedulingStatus);
  });

  it("serves null before the first pass and [] for an empty queue", async () => {
    const before = await start({ entries: null });
    expect(await (await before.call("/arvados/v1/dispatch/containers")).text()).toBe(
      '{"items":null}\n',
    );
    await srv?.close();
    const empty = await start({ entries: [] });
    expect(await (await empty.call("/arvados/v1/dispatch/containers")).text()).toBe(
      '{"items":[]}\n',
    );
  });

  it("finds one container, or answers a JSON 404", async () => {
    const { call } = await start({});
    const ok = await call(`/arvados/v1/dispatch/container?container_uuid=${entry.container.uuid}`);
    expect(((await ok.json()) as { container: { uuid: string } }).container.uuid).toBe(
      entry.container.uuid,
    );
    for (const q of ["?container_uuid=zzzzz-dz642-nope", ""]) {
      const miss = await call(`/arvados/v1/dispatch/container${q}`);
      expect(miss.status).toBe(404);
      expect(miss.headers.get("content-type")).toBe("application/json");
      expect(miss.headers.get("x-content-type-options")).toBe("nosniff");
      expect(await miss.text()).toBe('{"errors":["container not found"]}\n');
    }
  });

  it("kills a container with the reason prefixed", async () => {
    const { call, pool } = await start({});
    const ok = await call(
      `/arvados/v1/dispatch/containers/kill?container_uuid=${entry.container.uuid}&reason=stuck`,
      {
        method: "POST",
      },
    );
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("");
    expect(pool.calls).toEqual([`killContainer ${entry.container.uuid} via management API: stuck`]);
    const missing = await call("/arvados/v1/dispatch/containers/kill", { method: "POST" });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toBe('{"errors":["container_uuid parameter not provided"]}\n');
    const unknown = await call("/arvados/v1/dispatch/containers/kill?container_uuid=x", {
      method: "POST",
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toBe('{"errors":["container not found"]}\n');
  });
});

describe("instances", () => {
  it("lists instances sorted, pending creates first, null when none", async () => {
    const { call } = await start({
      instances: [
        view("i-b", "small", ["c2", "c1"]),
        view("", "small", null),
        view("i-a", "big", []),
      ],
    });
    const body = (await (await call("/arvados/v1/dispatch/instances")).json()) as {
      items: InstanceView[];
    };
    expect(body.items.map((i) => i.instance)).toEqual(["", "i-a", "i-b"]);
    expect(body.items[2]?.running_container_uuids).toEqual(["c1", "c2"]);
    expect(body.items[0]?.running_container_uuids).toBeNull();
    expect(Object.keys(body.items[0] ?? {})).toEqual([
      "instance",
      "address",
      "price",
      "arvados_instance_type",
      "provider_instance_type",
      "last_container_uuid",
      "last_busy",
      "running_container_uuids",
      "worker_state",
      "idle_behavior",
    ]);
    await srv?.close();
    const none = await start({ instances: [] });
    expect(await (await none.call("/arvados/v1/dispatch/instances")).text()).toBe(
      '{"items":null}\n',
    );
  });

  it.each(["hold", "drain", "run"] as const)("%s sets the idle behavior", async (action) => {
    const { call, pool } = await start({});
    const ok = await call(`/arvados/v1/dispatch/instances/${action}?instance_id=i-a`, {
      method: "POST",
    });
    expect(ok.status).toBe(200);
    expect(pool.calls).toEqual([`setIdleBehavior i-a ${action}`]);
    const missing = await call(`/arvados/v1/dispatch/instances/${action}`, { method: "POST" });
    expect(await missing.text()).toBe('{"errors":["instance_id parameter not provided"]}\n');
    expect(missing.status).toBe(400);
    const unknown = await call(`/arvados/v1/dispatch/instances/${action}?instance_id=i-zz`, {
      method: "POST",
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toBe('{"errors":["requested instance does not exist"]}\n');
  });

  it("kills an instance; ids with / and , arrive decoded; body params win over the query", async () => {
    const id = "/subscriptions/x/vm1,type1";
    const { call, pool } = await start({ instances: [view(id, "small", [])] });
    const res = await call(`/arvados/v1/dispatch/instances/kill?instance_id=ignored`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ instance_id: id, reason: "broken disk" }).toString(),
    });
    expect(res.status).toBe(200);
    expect(pool.calls).toEqual([`killInstance ${id} via management API: broken disk`]);
    const unknown = await call("/arvados/v1/dispatch/instances/kill?instance_id=i-zz", {
      method: "POST",
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toBe('{"errors":["instance not found"]}\n');
  });
});

describe("routing", () => {
  it("redirects non-canonical paths: 301 for GET, 307 for POST, query kept", async () => {
    const { call, pool } = await start({});
    const get = await call("//arvados/v1/dispatch/instances");
    expect(get.status).toBe(301);
    expect(get.headers.get("location")).toBe("/arvados/v1/dispatch/instances");
    const slash = await call("/arvados/v1/dispatch/instances/");
    expect(slash.status).toBe(301);
    expect(slash.headers.get("location")).toBe("/arvados/v1/dispatch/instances");
    const post = await call("//arvados/v1/dispatch/instances/hold?instance_id=i-a", {
      method: "POST",
    });
    expect(post.status).toBe(307);
    expect(post.headers.get("location")).toBe(
      "/arvados/v1/dispatch/instances/hold?instance_id=i-a",
    );
    expect(pool.calls).toEqual([]);
  });

  it("answers 405 for a wrong method and 404 for an unknown path", async () => {
    const { call, pool } = await start({});
    const wrong = await call("/arvados/v1/dispatch/instances/kill?instance_id=i-a");
    expect(wrong.status).toBe(405);
    expect(await wrong.text()).toBe("Method Not Allowed\n");
    expect(wrong.headers.get("allow")).toBeNull();
    expect(pool.calls).toEqual([]);
    const unknown = await call("/arvados/v1/dispatch/nothing");
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toBe("404 page not found\n");
  });
});

describe("health", () => {
  it.each([
    ["healthy", `Bearer ${TOKEN}`, true, 200, "application/json", '{"health":"OK"}\n'],
    [
      "unhealthy (Go's map encoding: keys sorted)",
      `Bearer ${TOKEN}`,
      false,
      200,
      "application/json",
      '{"error":"runner binary \\u003cmissing\\u003e","health":"ERROR"}\n',
    ],
    ["no header", null, true, 401, "text/plain; charset=utf-8", "authorization required\n"],
    [
      "OAuth2 is not accepted here",
      `OAuth2 ${TOKEN}`,
      true,
      403,
      "text/plain; charset=utf-8",
      "authorization error\n",
    ],
  ])("ping %s", async (_name, auth, healthy, status, type, body) => {
    const { call } = await start({ healthy });
    const res = await call("/_health/ping", { auth });
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe(type);
    expect(await res.text()).toBe(body);
  });

  it("is disabled without a token, and other checks are unknown paths", async () => {
    const off = await start({ token: "" });
    const res = await off.call("/_health/ping");
    expect(res.status).toBe(404);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await res.text()).toBe("disabled\n");
    await srv?.close();
    const on = await start({});
    const other = await on.call("/_health/other");
    expect([other.status, await other.text()]).toEqual([404, "404 page not found\n"]);
  });
});

describe("metrics", () => {
  it("serves the registry as Prometheus text and protobuf-style JSON", async () => {
    const registry = new Registry();
    new Gauge({
      name: "arvados_dispatchcloud_containers_running",
      help: "running",
      registers: [registry],
    }).set(3);
    const ops = new Counter({
      name: "arvados_dispatchcloud_driver_operations",
      help: "ops",
      labelNames: ["operation", "error"],
      registers: [registry],
    });
    ops.inc({ operation: "Create", error: "0" }, 2);
    new Summary({
      name: "t_seconds",
      help: "t",
      percentiles: [0.5],
      registers: [registry],
    }).observe(4);
    const { call } = await start({ registry });
    const text = await call("/metrics");
    expect(text.status).toBe(200);
    expect(text.headers.get("content-type")).toContain("text/plain");
    expect(await text.text()).toContain("arvados_dispatchcloud_containers_running 3");
    const json = await call("/metrics.json");
    const raw = await json.text();
    expect(raw).toContain('\n  {\n    "name"');
    const families = JSON.parse(raw) as { name: string; type: string; metric: unknown[] }[];
    expect(families.find((f) => f.name === "arvados_dispatchcloud_driver_operations")).toEqual({
      name: "arvados_dispatchcloud_driver_operations",
      help: "ops",
      type: "COUNTER",
      metric: [
        {
          label: [
            { name: "error", value: "0" },
            { name: "operation", value: "Create" },
          ],
          counter: { value: 2 },
        },
      ],
    });
    expect(families.find((f) => f.name === "t_seconds")?.metric).toEqual([
      { summary: { sampleCount: "1", sampleSum: 4, quantile: [{ quantile: 0.5, value: 4 }] } },
    ]);
  });
});

describe("failures", () => {
  it("turns a failing port into a JSON 500 and keeps serving", async () => {
    const app = createManagementApp({
      managementToken: TOKEN,
      ports: {
        scheduler: { containers: () => null },
        pool: {
          ...fakePool([]),
          instances: () => {
            throw new Error("pool exploded");
          },
        },
      },
      registry: new Registry(),
      logger: silent,
    });
    srv = await listen(app, "127.0.0.1", 0);
    const base = `http://127.0.0.1:${srv.address.port}`;
    const headers = { Authorization: `Bearer ${TOKEN}` };
    const bad = await fetch(`${base}/arvados/v1/dispatch/instances`, { headers });
    expect(bad.status).toBe(500);
    expect(await bad.text()).toBe('{"errors":["internal error"]}\n');
    expect((await fetch(`${base}/arvados/v1/dispatch/containers`, { headers })).status).toBe(200);
  });
});
