import type { ContainerState } from "@dispatch-cloud/arvados-types";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "./errors.js";
import { TRANSITIONS, normaliseRuntimeConstraints, rubyInspect } from "./rules.js";
import { type Actor, Store } from "./store.js";
import { seedContainer } from "./testing/index.js";

const STATES: ContainerState[] = ["Queued", "Locked", "Running", "Complete", "Cancelled"];
let store: Store;
let admin: Actor;
const otherAdmin: Actor = {
  uuid: "zzzzz-gj3su-otherdispatcher",
  ownerUuid: "zzzzz-tpzed-000000000000000",
  isAdmin: true,
  containerUuid: null,
};

beforeEach(() => {
  store = new Store({
    dbPath: ":memory:",
    systemRootToken: "roottoken",
    clusterId: "zzzzz",
    maxDispatchAttempts: 3,
    maxRetryAttempts: 3,
    maxItemsPerResponse: 1000,
    now: Date.now,
  });
  const a = store.authenticate("roottoken");
  if (!a) throw new Error("root token not accepted");
  admin = a;
});
afterEach(() => store.close());

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error("expected an ApiError");
}

/** A container in `state` as the dispatcher `admin` would have left it. */
function inState(state: ContainerState): string {
  const locked = state === "Locked" || state === "Running";
  return seedContainer(store, {
    state,
    priority: 10,
    lock_count: locked ? 1 : 0,
    locked_by_uuid: locked ? admin.uuid : null,
  });
}

describe("state transitions (every pair)", () => {
  const pairs = STATES.flatMap((from) =>
    STATES.filter((to) => to !== from).map((to) => ({ from, to })),
  );
  const allowed = pairs.filter(({ from, to }) => TRANSITIONS[from].includes(to));
  const refused = pairs.filter(({ from, to }) => !TRANSITIONS[from].includes(to));

  it.each(allowed)("allows $from -> $to", ({ from, to }) => {
    const uuid = inState(from);
    expect(store.updateContainer(admin, uuid, { state: to })["state"]).toBe(to);
    expect(store.getContainer(admin, uuid)["state"]).toBe(to);
  });

  it.each(refused)("refuses $from -> $to with 422", ({ from, to }) => {
    const uuid = inState(from);
    const e = apiError(() => store.updateContainer(admin, uuid, { state: to }));
    expect(e.status).toBe(422);
    expect(e.errors).toEqual([`state cannot change from ${from} to ${to}`]);
    expect(store.getContainer(admin, uuid)["state"]).toBe(from);
  });

  it("allows exactly the controller's transitions", () => {
    expect(TRANSITIONS).toEqual({
      Queued: ["Locked", "Cancelled"],
      Locked: ["Queued", "Running", "Cancelled"],
      Running: ["Complete", "Cancelled"],
      Complete: ["Cancelled"],
      Cancelled: [],
    });
  });
});

describe("lock and unlock", () => {
  it("locks a Queued container: Locked, lock_count+1, locked_by_uuid, a runtime token", () => {
    const uuid = inState("Queued");
    const out = store.lock(admin, uuid);
    expect(Object.keys(out).sort()).toEqual([
      "auth_uuid",
      "kind",
      "locked_by_uuid",
      "priority",
      "state",
      "uuid",
    ]);
    expect(out["state"]).toBe("Locked");
    expect(out["locked_by_uuid"]).toBe("zzzzz-gj3su-000000000000000");
    expect(out["auth_uuid"]).toMatch(/^zzzzz-gj3su-[0-9a-z]{15}$/);
    expect(store.getContainer(admin, uuid)["lock_count"]).toBe(1);
    const token = store.runtimeToken(uuid);
    expect(store.authenticate(token ?? "")?.containerUuid).toBe(uuid);
  });

  it.each(["Locked", "Running", "Complete", "Cancelled"] as const)(
    "refuses to lock when %s",
    (state) => {
      const e = apiError(() => store.lock(admin, inState(state)));
      expect([e.status, e.errors]).toEqual([422, [`cannot lock when ${state}`]]);
    },
  );

  it("refuses to lock at priority 0", () => {
    const uuid = seedContainer(store, { priority: 0 });
    const e = apiError(() => store.lock(admin, uuid));
    expect([e.status, e.errors]).toEqual([422, ["cannot lock when priority<=0"]]);
  });

  it.each(["Queued", "Running", "Complete", "Cancelled"] as const)(
    "refuses to unlock when %s",
    (state) => {
      const e = apiError(() => store.unlock(admin, inState(state)));
      expect([e.status, e.errors]).toEqual([422, [`cannot unlock when ${state}`]]);
    },
  );

  it("refuses an unlock by a different token with 403", () => {
    const uuid = inState("Locked");
    const e = apiError(() => store.unlock(otherAdmin, uuid));
    expect([e.status, e.errors]).toEqual([403, ["locked by a different token"]]);
  });

  it("requeues on unlock: clears runtime_status and locked_by_uuid, expires the runtime token", () => {
    const uuid = inState("Queued");
    store.lock(admin, uuid);
    const token = store.runtimeToken(uuid) ?? "";
    store.updateContainer(admin, uuid, { runtime_status: { warning: "slow" } });
    const out = store.unlock(admin, uuid);
    expect(out).toMatchObject({ state: "Queued", locked_by_uuid: null, auth_uuid: null });
    const c = store.getContainer(admin, uuid);
    expect(c["runtime_status"]).toEqual({});
    expect(c["lock_count"]).toBe(1);
    expect(store.authenticate(token)).toBeNull();
  });

  it("cancels on unlock once lock_count reaches MaxDispatchAttempts", () => {
    const uuid = inState("Queued");
    for (let i = 1; i <= 2; i++) {
      store.lock(admin, uuid);
      expect(store.unlock(admin, uuid)["state"]).toBe("Queued");
    }
    store.lock(admin, uuid);
    const out = store.unlock(admin, uuid);
    expect(out["state"]).toBe("Cancelled");
    expect(store.getContainer(admin, uuid)["runtime_status"]).toEqual({
      error:
        "Failed to start container.  Cancelled after exceeding 'Containers.MaxDispatchAttempts' (lock_count=3)",
    });
  });
});

describe("what may change in which state", () => {
  it.each([
    ["Queued", { priority: 5 }],
    ["Locked", { runtime_status: { error: "x" } }],
    ["Locked", { log: "abc+1" }],
    ["Locked", { lock_count: 7 }],
    ["Running", { exit_code: 0, progress: 0.5, output: "pdh+1", cost: 1.5 }],
    ["Running", { gateway_address: "1.2.3.4:5" }],
  ] as const)("%s: allows %j", (state, attrs) => {
    const out = store.updateContainer(admin, inState(state), attrs);
    expect(Object.fromEntries(Object.keys(attrs).map((k) => [k, out[k]]))).toEqual(attrs);
  });

  it.each([
    ["Queued", { runtime_status: { error: "x" } }],
    ["Queued", { log: "abc" }],
    ["Locked", { exit_code: 0 }],
    ["Running", { lock_count: 2 }],
    ["Running", { command: ["x"] }],
    ["Complete", { exit_code: 1 }],
    ["Complete", { priority: 1 }],
    ["Cancelled", { runtime_status: { error: "x" } }],
  ] as const)("%s: refuses %j", (state, attrs) => {
    const e = apiError(() => store.updateContainer(admin, inState(state), attrs));
    expect(e.status).toBe(422);
    expect(e.errors[0]).toMatch(
      new RegExp(`^${Object.keys(attrs)[0]} cannot be modified in state '${state}' \\(`),
    );
  });

  it("names old and new values as the controller does", () => {
    const uuid = inState("Queued");
    const e = apiError(() => store.updateContainer(admin, uuid, { log: "abc" }));
    expect(e.errors).toEqual([`log cannot be modified in state 'Queued' (nil, "abc")`]);
    expect(rubyInspect({ error: "x", n: [1, null] })).toBe('{"error" => "x", "n" => [1, nil]}');
  });

  it("allows finishing attributes only on the transition out of Running", () => {
    const run = inState("Running");
    expect(
      store.updateContainer(admin, run, { state: "Complete", exit_code: 0, output: "o+1" })[
        "exit_code"
      ],
    ).toBe(0);
    const q = inState("Queued");
    expect(
      apiError(() => store.updateContainer(admin, q, { state: "Cancelled", exit_code: 1 })).status,
    ).toBe(422);
    const l = inState("Locked");
    const out = store.updateContainer(admin, l, {
      state: "Cancelled",
      runtime_status: { error: "unsatisfiable" },
    });
    expect(out["runtime_status"]).toEqual({ error: "unsatisfiable" });
    expect(out["finished_at"]).not.toBeNull();
  });

  it("removes progress attributes when another dispatcher holds the lock", () => {
    const uuid = inState("Running");
    const e = apiError(() => store.updateContainer(otherAdmin, uuid, { progress: 0.5 }));
    expect(e.errors[0]).toMatch(/^progress cannot be modified in state 'Running'/);
    expect(store.updateContainer(otherAdmin, uuid, { state: "Cancelled" })["state"]).toBe(
      "Cancelled",
    );
  });

  it("requires string values for runtime_status message keys", () => {
    const uuid = inState("Locked");
    const e = apiError(() => store.updateContainer(admin, uuid, { runtime_status: { error: 5 } }));
    expect(e.errors).toEqual(["runtime_status 'error' value must be a string"]);
  });

  it("lets a container's own token update it only while Running, and never its priority or log", () => {
    const uuid = inState("Queued");
    store.lock(admin, uuid);
    const self = store.authenticate(store.runtimeToken(uuid) ?? "");
    if (!self) throw new Error("no runtime token");
    expect(apiError(() => store.updateContainer(self, uuid, { state: "Running" })).status).toBe(
      403,
    );
    store.updateContainer(admin, uuid, { state: "Running" });
    expect(store.updateContainer(self, uuid, { progress: 0.3 })["progress"]).toBe(0.3);
    expect(apiError(() => store.updateContainer(self, uuid, { priority: 1 })).status).toBe(422);
    expect(apiError(() => store.updateContainer(self, uuid, { log: "x" })).status).toBe(422);
    expect(store.updateContainer(self, uuid, { state: "Complete", exit_code: 0 })["state"]).toBe(
      "Complete",
    );
    // Another container is invisible to it, and it may not lock.
    const other = inState("Queued");
    expect(apiError(() => store.getContainer(self, other)).status).toBe(404);
  });

  it("rejects unknown attributes and wrong types, naming them", () => {
    const uuid = inState("Running");
    expect(apiError(() => store.updateContainer(admin, uuid, { bogus: 1 })).errors).toEqual([
      "unknown attribute 'bogus' for Container.",
    ]);
    expect(
      apiError(() => store.updateContainer(admin, uuid, { exit_code: "zero" })).errors,
    ).toEqual(["exit_code must be an integer >= -9007199254740991"]);
    expect(apiError(() => store.updateContainer(admin, uuid, { state: "Done" })).errors[0]).toMatch(
      /^state must be one of/,
    );
  });
});

describe("requests and priority", () => {
  const cr = {
    state: "Committed",
    priority: 500,
    container_image: "img+1",
    command: ["echo", "hi"],
    output_path: "/out",
    runtime_constraints: { vcpus: 1, ram: 134217728, keep_cache_ram: 67108864, API: true },
  };

  it("creates a Queued container whose priority is request priority × 2^50 − created ms", () => {
    const r = store.createContainerRequest(admin, cr);
    const c = store.getContainer(admin, r["container_uuid"] as string);
    const expected = Number(500n * (1n << 50n) - BigInt(Date.parse(r["created_at"] as string)));
    expect(c["state"]).toBe("Queued");
    expect(c["priority"]).toBe(expected);
    expect(c["runtime_constraints"]).toEqual({
      vcpus: 1,
      ram: 134217728,
      keep_cache_ram: 67108864,
      keep_cache_disk: 0,
      API: true,
      gpu: { stack: "", driver_version: "", hardware_target: [], device_count: 0, vram: 0 },
    });
  });

  it("maps the deprecated cuda constraint to gpu", () => {
    expect(
      normaliseRuntimeConstraints({
        vcpus: 1,
        ram: 1,
        cuda: { device_count: 1, driver_version: "11.0", hardware_capability: "7.5" },
      }),
    ).toEqual({
      vcpus: 1,
      ram: 1,
      API: false,
      keep_cache_ram: 0,
      keep_cache_disk: 2 * 1024 ** 3,
      gpu: {
        stack: "cuda",
        driver_version: "11.0",
        hardware_target: ["7.5"],
        device_count: 1,
        vram: 0,
      },
    });
  });

  it("drops the container's priority to 0 when its request is cancelled, and finalises the request when it ends", () => {
    const r = store.createContainerRequest(admin, cr);
    const uuid = r["container_uuid"] as string;
    store.updateContainerRequest(admin, r["uuid"] as string, { priority: 0 });
    expect(store.getContainer(admin, uuid)["priority"]).toBe(0);
    expect(store.getContainer(admin, uuid)["state"]).toBe("Queued");
    store.updateContainer(admin, uuid, { state: "Cancelled" });
    expect(store.getContainerRequest(admin, r["uuid"] as string)["state"]).toBe("Final");
  });

  it("retries a cancelled container while the request still wants it, up to container_count_max", () => {
    const r = store.createContainerRequest(admin, { ...cr, container_count_max: 2 });
    const first = r["container_uuid"] as string;
    store.updateContainer(admin, first, { state: "Cancelled" });
    const again = store.getContainerRequest(admin, r["uuid"] as string);
    expect(again["state"]).toBe("Committed");
    expect(again["container_count"]).toBe(2);
    const second = again["container_uuid"] as string;
    expect(second).not.toBe(first);
    expect(store.getContainer(admin, second)["state"]).toBe("Queued");
    store.updateContainer(admin, second, { state: "Cancelled" });
    expect(store.getContainerRequest(admin, r["uuid"] as string)["state"]).toBe("Final");
  });

  it("finalises the request when its container completes", () => {
    const r = store.createContainerRequest(admin, cr);
    const uuid = r["container_uuid"] as string;
    store.lock(admin, uuid);
    store.updateContainer(admin, uuid, { state: "Running" });
    store.updateContainer(admin, uuid, { state: "Complete", exit_code: 0 });
    expect(store.getContainerRequest(admin, r["uuid"] as string)["state"]).toBe("Final");
  });

  it("validates requests, naming every problem", () => {
    const e = apiError(() =>
      store.createContainerRequest(admin, {
        state: "Committed",
        priority: 5000,
        runtime_constraints: { vcpus: "2", gpus: 1 },
      }),
    );
    expect(e.status).toBe(422);
    expect(e.errors).toEqual([
      "priority must be an integer from 0 to 1000",
      "runtime_constraints.vcpus must be an integer >= 1",
      "runtime_constraints: unknown key 'gpus'",
    ]);
    const e2 = apiError(() => store.createContainerRequest(admin, { state: "Committed" }));
    expect(e2.errors).toContain("container_image must be set when state is Committed");
  });
});
