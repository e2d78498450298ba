import type { Clock, Logger } from "@dispatch-cloud/arvados-types";
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
import type { CreateRequest } from "./types.js";

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

/**
 * Real time as the rate limiter sees it: `now()` in whole milliseconds (like Date.now()) and
 * timers that fire up to 1 ms early by that reading, as Node's setTimeout may. Sleeps of 1 ms or
 * less run their full length, so time always moves on.
 */
class EarlyTimerClock implements Clock {
  constructor(readonly manual: ManualClock) {}
  now(): number {
    return Math.floor(this.manual.now());
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.manual.sleep(ms > 1 ? ms - 1 : ms, signal);
  }
}

/** The most grants in any window [t, t + 1000) that starts at a grant. */
function busiestSecond(times: readonly number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return Math.max(0, ...sorted.map((t) => sorted.filter((u) => u >= t && u < t + 1000).length));
}

/** A FakeInstanceSet that notes the clock reading at which each call reached it. */
function timedFakeSet(clock: Clock): { inner: FakeInstanceSet; times: number[] } {
  const inner = new FakeInstanceSet();
  const times: number[] = [];
  const push = inner.calls.push.bind(inner.calls);
  inner.calls.push = (...calls) => {
    for (const _ of calls) times.push(clock.now());
    return push(...calls);
  };
  return { inner, times };
}

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

  for (const perSecond of [10, 3, 7]) {
    it(`never grants more than ${perSecond} calls in any 1 s window when timers fire early`, async () => {
      const manual = new ManualClock(50_000);
      const clock = new EarlyTimerClock(manual);
      const { inner, times } = timedFakeSet(clock);
      const set = rateLimited(inner, perSecond, clock);
      /** Advance the clock from sleeper to sleeper until every call has gone through. */
      const drive = async <T>(calls: Promise<T>[]): Promise<T[]> => {
        let done = 0;
        for (const c of calls) void c.then(() => done++);
        while (done < calls.length) {
          expect(manual.pendingSleepers).toBeGreaterThan(0);
          await manual.advanceToNext();
        }
        return Promise.all(calls);
      };
      const insts = await drive(Array.from({ length: 20 }, () => set.create(req())));
      await drive<unknown>([
        ...insts.map((i) => i.setTags({ n: "1" })),
        ...Array.from({ length: 10 }, () => set.instances({})),
        ...insts.map((i) => i.destroy()),
      ]);
      // A quiet spell: the next call goes at once, and the second burst is paced again.
      await manual.advance(3000);
      const quietAt = clock.now();
      const second = [
        ...Array.from({ length: 15 }, () => set.instances({})),
        ...Array.from({ length: 15 }, () => set.create(req())),
      ];
      await manual.advance(0);
      expect(times.at(-1)).toBe(quietAt);
      await drive<unknown>(second);

      expect(times).toHaveLength(20 + 50 + 30);
      expect(busiestSecond(times)).toBe(perSecond);
      // The exact period, not rounded down: neighbours never closer than 1000/N ms.
      const gaps = times.slice(1).map((t, i) => t - (times[i] ?? Number.NEGATIVE_INFINITY));
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(Math.ceil(1000 / perSecond));
    });
  }

  it("lets a waiting call abort while the queue sleeps on an early timer", async () => {
    const manual = new ManualClock(0);
    const clock = new EarlyTimerClock(manual);
    const { inner, times } = timedFakeSet(clock);
    const set = rateLimited(inner, 10, clock);
    await set.instances({});
    const ac = new AbortController();
    const aborted = set.instances({}, ac.signal);
    const next = set.instances({});
    await manual.advance(99); // the early timer fired: still too soon for anyone
    expect(times).toEqual([0]);
    ac.abort(new Error("gave up"));
    await expect(aborted).rejects.toThrow("gave up");
    await manual.advance(1);
    await next;
    expect(times).toEqual([0, 100]);
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
