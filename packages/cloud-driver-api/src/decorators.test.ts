import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  decorateInstanceSet,
  instrumented,
  rateLimited,
  tagFiltered,
  withDefaultTags,
} from "./decorators.js";
import { CapacityError, QuotaError, RateLimitError } from "./errors.js";
import { FakeInstanceSet, ManualClock, testInstanceType } from "./testing/index.js";
import type { CreateRequest, Logger } from "./types.js";

const req = (tags: Record<string, string> = {}): CreateRequest => ({
  instanceType: testInstanceType(),
  imageId: "img",
  tags,
  initCommand: "",
  publicKey: null,
});

function captureLogger() {
  const lines: { fields: Record<string, unknown>; msg: string }[] = [];
  const logger: Logger = {
    debug: (fields, msg) => lines.push({ fields, msg }),
    info: () => {},
    warn: () => {},
    error: () => {},
    child: () => logger,
  };
  return { logger, lines };
}

async function counts(registry: Registry): Promise<Record<string, number>> {
  const m = await registry.getSingleMetric("arvados_dispatchcloud_driver_operations")!.get();
  return Object.fromEntries(
    m.values.map((v) => [`${v.labels["operation"]}/${v.labels["error"]}`, v.value]),
  );
}

describe("instrumented", () => {
  it("pre-creates all eight series and counts every call, failed ones too", async () => {
    const registry = new Registry();
    const inner = new FakeInstanceSet();
    const set = instrumented(inner, registry);
    expect(await counts(registry)).toEqual({
      "Create/0": 0,
      "Create/1": 0,
      "List/0": 0,
      "List/1": 0,
      "Destroy/0": 0,
      "Destroy/1": 0,
      "SetTags/0": 0,
      "SetTags/1": 0,
    });
    const a = await set.create(req());
    inner.failNext("create", new Error("boom"));
    await expect(set.create(req())).rejects.toThrow("boom");
    inner.failNext("list", new Error("list boom"));
    await expect(set.instances({})).rejects.toThrow("list boom");
    const [listed] = await set.instances({});
    await listed?.setTags({ a: "b" });
    inner.failNext("setTags", new Error("tag boom"));
    await expect(a.setTags({})).rejects.toThrow("tag boom");
    await a.destroy();
    expect(await counts(registry)).toEqual({
      "Create/0": 1,
      "Create/1": 1,
      "List/0": 1,
      "List/1": 1,
      "Destroy/0": 1,
      "Destroy/1": 0,
      "SetTags/0": 1,
      "SetTags/1": 1,
    });
  });

  it("passes error kinds through unchanged", async () => {
    const inner = new FakeInstanceSet();
    const set = instrumented(inner, new Registry());
    const errs = [
      new RateLimitError("slow down", new Date(5)),
      new QuotaError("full"),
      new CapacityError("none", "instance-type"),
    ];
    for (const e of errs) {
      inner.failNext("create", e);
      await expect(set.create(req())).rejects.toBe(e);
    }
  });

  it("reuses the counter when the same registry is used twice", () => {
    const registry = new Registry();
    instrumented(new FakeInstanceSet(), registry);
    expect(() => instrumented(new FakeInstanceSet(), registry)).not.toThrow();
  });

  it("returns the set unchanged with a null registry", () => {
    const inner = new FakeInstanceSet();
    expect(instrumented(inner, null)).toBe(inner);
  });
});

describe("rateLimited", () => {
  it("shares one budget across create, list, destroy and setTags, first call immediate", async () => {
    const clock = new ManualClock(10_000);
    const inner = new FakeInstanceSet();
    const set = rateLimited(inner, 2, clock); // one call per 500 ms
    const started: string[] = [];
    const track = <T>(label: string, p: Promise<T>) =>
      p.then((v) => (started.push(`${label}@${clock.now()}`), v));
    const inst = await track("create", set.create(req()));
    const p1 = track("list", set.instances({}));
    const p2 = track("setTags", inst.setTags({ x: "y" }));
    const p3 = track("destroy", inst.destroy());
    await clock.advance(0);
    expect(started).toEqual(["create@10000"]);
    await clock.advance(499);
    expect(started).toEqual(["create@10000"]);
    await clock.advance(1);
    expect(started).toEqual(["create@10000", "list@10500"]);
    await clock.advance(1000);
    await Promise.all([p1, p2, p3]);
    expect(started).toEqual(["create@10000", "list@10500", "setTags@11000", "destroy@11500"]);
    // after a quiet spell the next call goes at once
    await clock.advance(5000);
    await track("list", set.instances({}));
    expect(started.at(-1)).toBe("list@16500");
  });

  it("lets a waiting call abort without using the slot", async () => {
    const clock = new ManualClock(0);
    const inner = new FakeInstanceSet();
    const set = rateLimited(inner, 1, clock);
    await set.instances({});
    const ac = new AbortController();
    const aborted = set.instances({}, ac.signal);
    const next = set.instances({});
    ac.abort(new Error("gave up"));
    await expect(aborted).rejects.toThrow("gave up");
    await clock.advance(1000);
    await next;
    expect(inner.calls.filter((c) => c.op === "list")).toHaveLength(2);
  });

  it("is a no-op at 0 ops per second", () => {
    const inner = new FakeInstanceSet();
    expect(rateLimited(inner, 0, new ManualClock())).toBe(inner);
  });
});

describe("withDefaultTags", () => {
  it("adds resource tags and lets the caller's tags win", async () => {
    const inner = new FakeInstanceSet();
    const set = withDefaultTags(inner, { team: "ops", ArvadosIdleBehavior: "hold" });
    await set.create(req({ ArvadosIdleBehavior: "run", ArvadosInstanceSetID: "x" }));
    expect(inner.calls[0]?.tags).toEqual({
      team: "ops",
      ArvadosIdleBehavior: "run",
      ArvadosInstanceSetID: "x",
    });
  });
});

describe("tagFiltered", () => {
  it("drops instances lacking any filter tag or value and logs the counts", async () => {
    const inner = new FakeInstanceSet();
    await inner.create(req({ set: "mine", kind: "a" }));
    await inner.create(req({ set: "other", kind: "a" }));
    await inner.create(req({ kind: "a" }));
    await inner.create(req({ set: "mine" }));
    const { logger, lines } = captureLogger();
    const set = tagFiltered(inner, logger);
    const got = await set.instances({ set: "mine", kind: "a" });
    expect(got.map((i) => i.id)).toEqual(["fake-1"]);
    expect(lines[0]?.fields).toEqual({ returning: 1, skipped: 3 });
  });
});

describe("decorateInstanceSet", () => {
  it("stacks all four decorators", async () => {
    const registry = new Registry();
    const inner = new FakeInstanceSet();
    await inner.create(req({ other: "1" }));
    const { logger } = captureLogger();
    const set = decorateInstanceSet(inner, {
      registry,
      maxCloudOpsPerSecond: 0,
      resourceTags: { rt: "1" },
      logger,
    });
    const inst = await set.create(req({ id: "me" }));
    expect(inst.tags).toEqual({ rt: "1", id: "me" });
    expect((await set.instances({ id: "me" })).map((i) => i.id)).toEqual([inst.id]);
    expect((await counts(registry))["List/0"]).toBe(1);
  });
});
