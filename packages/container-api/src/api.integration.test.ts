import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { ArvadosApiError, ArvadosClient } from "@dispatch-cloud/arvados-client";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ContainerApi, startContainerApi } from "./server.js";
import { seedContainers } from "./testing/index.js";

const TOKEN = "systemroottoken0123456789";
let api: ContainerApi;
let client: ArvadosClient;

beforeEach(async () => {
  api = await startContainerApi({
    dbPath: ":memory:",
    systemRootToken: TOKEN,
    clusterId: "zzzzz",
    maxDispatchAttempts: 10,
  });
  client = new ArvadosClient({ apiHost: api.url, token: TOKEN });
});
afterEach(async () => {
  await api.stop();
});

const fail = async (p: Promise<unknown>): Promise<ArvadosApiError> => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  if (!(e instanceof ArvadosApiError))
    throw new Error(`expected ArvadosApiError, got ${String(e)}`);
  return e;
};

const request = {
  state: "Committed" as const,
  priority: 500,
  container_image: "d41d8cd98f00b204e9800998ecf8427e+0",
  command: ["echo", "Hello, Crunch!"],
  output_path: "/mnt/output",
  mounts: { "/mnt/output": { kind: "collection", writable: true } },
  runtime_constraints: { API: true, vcpus: 1, ram: 134217728, keep_cache_ram: 67108864 },
  use_existing: false,
};

async function raw(
  method: string,
  p: string,
  init: { token?: string | null; body?: string; type?: string } = {},
) {
  const headers: Record<string, string> = {};
  if (init.token !== null) headers["Authorization"] = `Bearer ${init.token ?? TOKEN}`;
  if (init.type) headers["Content-Type"] = init.type;
  const res = await fetch(api.url + p, {
    method,
    headers,
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { errors?: string[] } & Record<string, unknown>,
  };
}

describe("the dispatcher's and crunch-run's conversation over HTTP", () => {
  it("runs a request from submit to Final", async () => {
    const me = await client.apiClientAuthorizations.current();
    expect(me.uuid).toBe("zzzzz-gj3su-000000000000000");

    const cr = await client.containerRequests.create(request);
    expect(cr.state).toBe("Committed");
    expect(cr.container_uuid).toMatch(/^zzzzz-dz642-[0-9a-z]{15}$/);
    const uuid = cr.container_uuid ?? "";

    const select = [
      "uuid",
      "state",
      "priority",
      "runtime_constraints",
      "container_image",
      "scheduling_parameters",
      "created_at",
    ] as const;
    const avail = await client.containers.list({
      select: [...select],
      order: "priority desc",
      limit: 1000,
      count: "none",
      filters: [
        ["state", "=", "Queued"],
        ["priority", ">", "0"],
      ],
    });
    expect(avail.items_available).toBeUndefined();
    expect(avail.items.map((c) => c.uuid)).toEqual([uuid]);
    expect(Object.keys(avail.items[0] ?? {}).sort()).toEqual(["kind", ...select].sort());
    expect(avail.items[0]?.priority).toBe(
      Number(500n * (1n << 50n) - BigInt(Date.parse(cr.created_at))),
    );

    const mounts = await client.containers.get(uuid, { select: ["mounts"] });
    expect(mounts.mounts).toEqual(request.mounts);

    const locked = await client.containers.lock(uuid);
    expect(locked).toMatchObject({ uuid, state: "Locked", locked_by_uuid: me.uuid });
    const mine = await client.containers.list({
      filters: [["locked_by_uuid", "=", me.uuid]],
      order: "uuid",
      count: "none",
    });
    expect(mine.items.map((c) => [c.uuid, c.lock_count])).toEqual([[uuid, 1]]);

    // crunch-run: Running with the dispatcher's token, progress and logs with its own.
    await client.containers.update(uuid, { state: "Running" });
    const runtime = new ArvadosClient({
      apiHost: api.url,
      token: api.store.runtimeToken(uuid) ?? "",
    });
    expect((await runtime.apiClientAuthorizations.current()).uuid).toBe(locked.auth_uuid);
    await runtime.logs.create({
      object_uuid: uuid,
      event_type: "stdout",
      properties: { text: "Hello, Crunch!\n" },
    });
    await runtime.logs.create({
      object_uuid: uuid,
      event_type: "crunch-run",
      properties: { text: "complete\n" },
    });
    expect((await fail(runtime.containers.lock(uuid))).status).toBe(403);
    await runtime.containers.update(uuid, {
      state: "Complete",
      exit_code: 0,
      output: "out+0",
      log: undefined,
    });

    const done = await client.containers.get(uuid);
    expect([done.state, done.exit_code, done.locked_by_uuid]).toEqual(["Complete", 0, null]);
    expect(done.started_at).not.toBeNull();
    expect(done.finished_at).not.toBeNull();
    expect((await client.containerRequests.get(cr.uuid)).state).toBe("Final");
    const logs = await client.logs.list({ filters: [["object_uuid", "=", uuid]], order: "id" });
    expect(logs.items.map((l) => [l.event_type, l.properties.text])).toEqual([
      ["stdout", "Hello, Crunch!\n"],
      ["crunch-run", "complete\n"],
    ]);
    // The runtime token expires with the container.
    expect((await fail(runtime.containers.get(uuid))).status).toBe(401);
  });

  it("gives the controller's errors for refused operations", async () => {
    const cr = await client.containerRequests.create(request);
    const uuid = cr.container_uuid ?? "";
    const e = await fail(client.containers.unlock(uuid));
    expect([e.status, e.errors]).toEqual([422, ["cannot unlock when Queued"]]);
    expect(e.message).toBe(
      `request failed: ${api.url}arvados/v1/containers/${uuid}/unlock: 422 Unprocessable Entity: cannot unlock when Queued`,
    );
    const bad = await fail(client.containers.update(uuid, { state: "Complete" }));
    expect(bad.errors).toEqual(["state cannot change from Queued to Complete"]);
    expect((await fail(client.containers.get("zzzzz-dz642-nonexistent0000"))).status).toBe(404);
  });

  it("lets exactly one of 20 simultaneous lock calls succeed", async () => {
    const cr = await client.containerRequests.create(request);
    const uuid = cr.container_uuid ?? "";
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => client.containers.lock(uuid)),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(refused).toHaveLength(19);
    for (const r of refused)
      expect((r.reason as ArvadosApiError).errors).toEqual(["cannot lock when Locked"]);
    expect((await client.containers.get(uuid)).lock_count).toBe(1);
  });

  it("drops a container's priority to 0 when its request is cancelled", async () => {
    const cr = await client.containerRequests.create(request);
    await client.containerRequests.update(cr.uuid, { priority: 0 });
    const c = await client.containers.get(cr.container_uuid ?? "", {
      select: ["priority", "state"],
    });
    expect(c).toEqual({ kind: "arvados#container", priority: 0, state: "Queued" });
    expect((await fail(client.containers.lock(cr.container_uuid ?? ""))).errors).toEqual([
      "cannot lock when priority<=0",
    ]);
  });

  it("answers a long query sent as POST with X-Http-Method-Override: GET", async () => {
    const uuids = seedContainers(api.store, 40, (i) => ({ priority: i + 1 }));
    seedContainers(api.store, 10, () => ({}));
    const res = await client.containers.list({
      filters: [["uuid", "in", uuids]],
      order: "uuid",
      count: "none",
    });
    expect(
      new URLSearchParams({ filters: JSON.stringify([["uuid", "in", uuids]]) }).toString().length,
    ).toBeGreaterThan(1000);
    expect(res.items.map((c) => c.uuid)).toEqual([...uuids].sort());
  });

  it("records a 503 from the server in the client", async () => {
    api.faults.add({
      method: "POST",
      pathIncludes: "/lock",
      status: 503,
      errors: ["queue timeout"],
    });
    const e = await fail(client.containers.lock("zzzzz-dz642-000000000000001"));
    expect(e.status).toBe(503);
    expect(client.lastServerError503()).not.toBeNull();
  });
});

describe("paging over 5,000 containers", () => {
  beforeEach(() => {
    seedContainers(api.store, 5000, (i) => ({
      priority: 1 + (i % 97),
      locked_by_uuid: i % 2 ? "zzzzz-gj3su-000000000000000" : null,
    }));
  });

  it("pages by keyset (uuid >) with order=uuid", async () => {
    const seen: string[] = [];
    const base = [["locked_by_uuid", "=", "zzzzz-gj3su-000000000000000"]] as const;
    let filters: Array<readonly [string, "=" | ">", string]> = [...base];
    for (;;) {
      const page = await client.containers.list({
        filters,
        order: "uuid",
        limit: 1000,
        count: "none",
        select: ["uuid"],
      });
      if (page.items.length === 0) break;
      seen.push(...page.items.map((c) => c.uuid));
      filters = [...base, ["uuid", ">", page.items.at(-1)?.uuid ?? ""]];
    }
    expect(seen).toHaveLength(2500);
    expect(new Set(seen).size).toBe(2500);
    expect(seen).toEqual([...seen].sort());
  });

  it("pages by offset with order=priority desc, capped at MaxItemsPerResponse", async () => {
    const seen: Array<{ uuid: string; priority: number }> = [];
    for (let offset = 0; ;) {
      const page = await client.containers.list({
        filters: [
          ["state", "=", "Queued"],
          ["priority", ">", "0"],
        ],
        order: ["priority desc"],
        limit: 5000,
        ...(offset ? { offset } : {}),
        select: ["uuid", "priority"],
      });
      expect(page.items.length).toBeLessThanOrEqual(1000);
      expect(page.items_available).toBe(5000);
      if (page.items.length === 0) break;
      seen.push(...page.items);
      offset += page.items.length;
    }
    expect(new Set(seen.map((c) => c.uuid)).size).toBe(5000);
    for (let i = 1; i < seen.length; i++)
      expect((seen[i - 1]?.priority ?? 0) >= (seen[i]?.priority ?? 0)).toBe(true);
  });
});

describe("bad input gets a 4xx naming the problem", () => {
  it("refuses a single filter not wrapped in a list, with the API server's error body", async () => {
    await client.containerRequests.create(request);
    const q = (filters: string) =>
      raw("GET", `arvados/v1/containers?filters=${encodeURIComponent(filters)}`);
    const flat = await q('["state","=","Queued"]');
    expect(flat.status).toBe(422);
    expect(Object.keys(flat.body).sort()).toEqual(["error_token", "errors"]);
    expect(flat.body.errors).toEqual([
      '#<ArgumentError: Invalid element in filters array: "state" is not an array>',
    ]);
    expect(flat.body["error_token"]).toMatch(/^\d+\+[0-9a-z]{8}$/);
    // Any element that is not a list is refused the same way, wherever it is.
    const mixed = await q('[["state","=","Queued"],null]');
    expect([mixed.status, mixed.body.errors]).toEqual([
      422,
      ["#<ArgumentError: Invalid element in filters array: nil is not an array>"],
    ]);
    // The wrapped form answers.
    const wrapped = await q('[["state","=","Queued"]]');
    expect([wrapped.status, (wrapped.body["items"] as unknown[]).length]).toEqual([200, 1]);
  });

  it.each([
    ["no token", "GET", "arvados/v1/containers", { token: null }, 401, "Not logged in"],
    ["wrong token", "GET", "arvados/v1/containers", { token: "nope" }, 401, "Not logged in"],
    ["unknown path", "GET", "arvados/v1/widgets", {}, 404, "Path not found"],
    [
      "malformed JSON body",
      "POST",
      "arvados/v1/container_requests",
      { body: "{not json", type: "application/json" },
      400,
      "malformed JSON",
    ],
    [
      "container param not JSON",
      "PUT",
      "arvados/v1/containers/zzzzz-dz642-000000000000000",
      { body: "container=%7Bx", type: "application/x-www-form-urlencoded" },
      400,
      "container: not valid JSON",
    ],
    [
      "missing container param",
      "PUT",
      "arvados/v1/containers/zzzzz-dz642-000000000000000",
      { body: "", type: "application/x-www-form-urlencoded" },
      400,
      "missing parameter 'container'",
    ],
    [
      "filters not JSON",
      "GET",
      "arvados/v1/containers?filters=%5B",
      {},
      400,
      "filters: not valid JSON",
    ],
    [
      "filters not an array",
      "GET",
      "arvados/v1/containers?filters=%7B%7D",
      {},
      422,
      "filters: must be an array",
    ],
    [
      "bad filter operator",
      "GET",
      `arvados/v1/containers?filters=${encodeURIComponent('[["state","~","x"]]')}`,
      {},
      422,
      "Invalid operator '~'",
    ],
    [
      "bad filter attribute",
      "GET",
      `arvados/v1/containers?filters=${encodeURIComponent('[["nope","=","x"]]')}`,
      {},
      422,
      "Invalid attribute 'nope' in filters",
    ],
    [
      "bad filter arity",
      "GET",
      `arvados/v1/containers?filters=${encodeURIComponent('[["state","="]]')}`,
      {},
      422,
      "Invalid filter",
    ],
    [
      "non-numeric operand",
      "GET",
      `arvados/v1/containers?filters=${encodeURIComponent('[["priority",">","x"]]')}`,
      {},
      422,
      "numeric attribute 'priority'",
    ],
    [
      "in without array",
      "GET",
      `arvados/v1/containers?filters=${encodeURIComponent('[["uuid","in","x"]]')}`,
      {},
      422,
      "must be an array",
    ],
    [
      "bad order attribute",
      "GET",
      "arvados/v1/containers?order=nope",
      {},
      422,
      "Invalid attribute 'nope' in order",
    ],
    [
      "bad order direction",
      "GET",
      "arvados/v1/containers?order=uuid%20sideways",
      {},
      422,
      "Invalid order direction",
    ],
    [
      "bad select",
      "GET",
      `arvados/v1/containers?select=${encodeURIComponent('["nope"]')}`,
      {},
      422,
      "Invalid attribute 'nope' in select",
    ],
    ["bad limit", "GET", "arvados/v1/containers?limit=-1", {}, 400, "limit: must be an integer"],
    ["bad offset", "GET", "arvados/v1/containers?offset=x", {}, 400, "offset: must be an integer"],
    ["bad count", "GET", "arvados/v1/containers?count=some", {}, 422, "count: must be"],
    [
      "repeated parameter",
      "GET",
      "arvados/v1/containers?limit=1&limit=2",
      {},
      400,
      "given more than once",
    ],
    [
      "unknown CR field",
      "POST",
      "arvados/v1/container_requests",
      { body: JSON.stringify({ container_request: { bogus: 1 } }), type: "application/json" },
      422,
      "unknown attribute 'bogus' for ContainerRequest.",
    ],
    [
      "CR wrong type",
      "POST",
      "arvados/v1/container_requests",
      {
        body: JSON.stringify({ container_request: { command: "echo" } }),
        type: "application/json",
      },
      422,
      "command must be an array of strings",
    ],
    [
      "log without event_type",
      "POST",
      "arvados/v1/logs",
      { body: JSON.stringify({ log: { properties: {} } }), type: "application/json" },
      422,
      "event_type must be a non-empty string",
    ],
  ] as const)("%s", async (_name, method, p, init, status, text) => {
    const res = await raw(method, p, init);
    expect(res.status).toBe(status);
    expect(res.body.errors?.join("\n")).toContain(text);
  });
});

const PKG = path.resolve(import.meta.dirname, "..");
const MAIN = path.join(PKG, "dist", "main.js");

describe("as a child process", () => {
  let dir: string;
  // The child runs the built entry point (Node 20 cannot run TypeScript directly).
  beforeAll(() => {
    execFileSync(path.resolve(PKG, "../../node_modules/.bin/tsc"), ["-b", PKG], {
      stdio: "inherit",
    });
  });
  let child: ChildProcess | null = null;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "container-api-"));
    fs.writeFileSync(path.join(dir, "token"), `${TOKEN}\n`);
  });
  afterEach(() => {
    child?.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function startChild(): Promise<{ url: string; proc: ChildProcess }> {
    const proc = spawn(
      process.execPath,
      [MAIN, "--db", path.join(dir, "db.sqlite"), "--token-file", path.join(dir, "token")],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    child = proc;
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: proc.stdout ?? process.stdin });
      rl.once("line", resolve);
      proc.once("exit", (code) => reject(new Error(`container-api exited ${String(code)}`)));
    });
    return { url: (JSON.parse(line) as { url: string }).url, proc };
  }

  it("keeps every answered change across a SIGKILL", async () => {
    const first = await startChild();
    const c1 = new ArvadosClient({ apiHost: first.url, token: TOKEN });
    const cr = await c1.containerRequests.create(request);
    const uuid = cr.container_uuid ?? "";
    await c1.containers.lock(uuid);
    const exited = new Promise((r) => first.proc.once("exit", r));
    first.proc.kill("SIGKILL");
    await exited;

    const second = await startChild();
    const c2 = new ArvadosClient({ apiHost: second.url, token: TOKEN });
    const c = await c2.containers.get(uuid);
    expect([c.state, c.lock_count, c.locked_by_uuid]).toEqual([
      "Locked",
      1,
      "zzzzz-gj3su-000000000000000",
    ]);
    expect((await c2.containerRequests.get(cr.uuid)).container_uuid).toBe(uuid);
  });
});
