// The worked scheduler examples of the behaviour spec (§3.5), one table row or test each, run
// against the scheduler's own test doubles.
import type { ContainerState, InstanceType } from "@dispatch-cloud/arvados-types";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { SchedulerOptions } from "./scheduler.js";
import { fixtureType, fixtureUuid, testScheduler, type FakeContainer } from "./testing/index.js";

const GiB = 2 ** 30;

function setup(
  types: InstanceType[],
  factor: number,
  opts: Partial<SchedulerOptions<FakeContainer>> = {},
) {
  const registry = new Registry();
  const { clock, queue, pool, logger, sched } = testScheduler(types, {
    maxPriceFactor: factor,
    registry,
    ...opts,
  });
  const pass = async () => {
    await queue.update();
    await sched.runQueue();
    await sched.settled();
  };
  const add = (
    i: number,
    state: ContainerState,
    priority: number,
    vcpus: number,
    ramGiB: number,
    supervisor = false,
  ) =>
    queue.add({
      uuid: fixtureUuid(i),
      state,
      priority,
      runtime_constraints: { vcpus, ram: ramGiB * GiB },
      scheduling_parameters: { supervisor },
    });
  const status = (i: number) =>
    sched.lastQueue().find((e) => e.entry.container.uuid === fixtureUuid(i))?.schedulingStatus;
  const started = () => pool.starts.map((s) => s.uuid);
  const unlocks = () => queue.changes.filter((c) => c.to === "Queued").map((c) => c.uuid);
  return { clock, queue, pool, logger, registry, sched, pass, add, status, started, unlocks };
}

const types = (...ns: number[]) => ns.map((n) => fixtureType(n));

describe("UseIdleWorkers", () => {
  it("starts the top container on the idle type1 and creates type1 for the rest", async () => {
    const s = setup(types(1, 2, 3, 4), 1);
    for (let p = 1; p <= 4; p++) s.add(p, "Locked", p, 1, 1);
    const t1 = s.pool.addWorker(fixtureType(1));
    s.pool.addWorker(fixtureType(2));
    s.pool.addWorker(fixtureType(2));
    await s.pass();
    expect(s.pool.starts).toEqual([{ uuid: fixtureUuid(4), instance: t1.id }]);
    expect(s.pool.creates.map((t) => t.Name)).toEqual(["type1", "type1", "type1"]);
    expect(s.status(3)).toBe("Waiting for a type1 instance to boot and be ready to accept work.");
    expect(s.pool.shutdowns).toEqual([]);
  });
});

describe("PackContainers (type1 removed, factor 1.5, 4 Locked {1cpu,1GiB})", () => {
  const cases: {
    name: string;
    workers: { type: number; state?: "idle" | "unknown"; behavior?: "run" | "hold" }[];
    maxRun?: number;
    creates: string[];
    starts: number[];
  }[] = [
    {
      name: "no instances: two type2, each fits two",
      workers: [],
      creates: ["type2", "type2"],
      starts: [],
    },
    {
      name: "idle type3 takes three",
      workers: [{ type: 3 }],
      creates: ["type2"],
      starts: [4, 3, 2],
    },
    {
      name: "idle type4 is too expensive",
      workers: [{ type: 4 }],
      creates: ["type2", "type2"],
      starts: [],
    },
    {
      name: "type3 on hold is not used",
      workers: [{ type: 3, behavior: "hold" }],
      creates: ["type2", "type2"],
      starts: [],
    },
    {
      name: "MaxRunningContainersPerInstance=1",
      workers: [{ type: 3 }],
      maxRun: 1,
      creates: ["type2", "type2", "type2"],
      starts: [4],
    },
    {
      name: "unknown type2: reserved, not started",
      workers: [{ type: 2, state: "unknown" }],
      creates: ["type2"],
      starts: [],
    },
  ];
  it.each(cases)("$name", async ({ workers, maxRun, creates, starts }) => {
    const s = setup(
      types(2, 3, 4),
      1.5,
      maxRun === undefined ? {} : { maxRunningContainersPerInstance: maxRun },
    );
    for (let p = 1; p <= 4; p++) s.add(p, "Locked", p, 1, 1);
    for (const w of workers)
      s.pool.addWorker(fixtureType(w.type), w.state ?? "idle", w.behavior ?? "run");
    await s.pass();
    expect(s.pool.creates.map((t) => t.Name)).toEqual(creates);
    expect(s.started()).toEqual(starts.map(fixtureUuid));
  });

  it("once another instance becomes idle, the two highest priorities start there", async () => {
    const s = setup(types(2, 3, 4), 1.5);
    for (let p = 1; p <= 4; p++) s.add(p, "Locked", p, 1, 1);
    s.pool.addWorker(fixtureType(2), "unknown");
    await s.pass();
    expect(s.pool.creates).toHaveLength(1);
    expect(s.status(4)).toBe("Waiting for a type2 instance to boot and be ready to accept work.");
    const created = s.pool.workers[1];
    created.state = "idle";
    await s.pass();
    expect(s.pool.starts).toEqual([
      { uuid: fixtureUuid(4), instance: created.id },
      { uuid: fixtureUuid(3), instance: created.id },
    ]);
    expect(s.pool.creates).toHaveLength(1);
  });
});

describe("0-VCPU packing", () => {
  it("one 1-VCPU and four 0-VCPU containers share a type2; a 2-VCPU one gets its own", async () => {
    const s = setup(types(2, 3, 4), 1.5);
    s.add(6, "Locked", 6, 1, 1);
    for (let p = 2; p <= 5; p++) s.add(p, "Locked", p, 0, 0.125);
    s.add(1, "Locked", 1, 2, 1);
    await s.pass();
    expect(s.pool.creates.map((t) => t.Name)).toEqual(["type2", "type2"]);
    for (let p = 2; p <= 6; p++) s.pool.workers[0].state = "idle";
    s.pool.workers[1].state = "idle";
    await s.pass();
    const first = s.pool.workers[0].id;
    const second = s.pool.workers[1].id;
    const placement = new Map(s.pool.starts.map((x) => [x.uuid, x.instance]));
    const onFirst = [...placement].filter(([, i]) => i === first).map(([u]) => u);
    const onSecond = [...placement].filter(([, i]) => i === second).map(([u]) => u);
    expect(new Set([onFirst, onSecond].map((l) => l.length))).toEqual(new Set([5, 1]));
    const lone = onFirst.length === 1 ? onFirst : onSecond;
    expect(lone).toEqual([fixtureUuid(1)]);
  });
});

describe("ShutdownAtQuota", () => {
  it.each([1, 2])(
    "quota %i: nothing starts, both idle shut down, only prio 2 unlocked",
    async (quota) => {
      const s = setup(types(1, 2, 3, 4), 1.5);
      s.add(3, "Locked", 3, 3, 3);
      s.add(2, "Locked", 2, 2, 2);
      const a = s.pool.addWorker(fixtureType(2));
      const b = s.pool.addWorker(fixtureType(2));
      s.pool.quota = quota;
      await s.pass();
      expect(s.pool.starts).toEqual([]);
      expect(s.pool.creates).toEqual([]);
      expect(s.pool.shutdowns.sort()).toEqual([a.id, b.id].sort());
      expect(s.unlocks()).toEqual([fixtureUuid(2)]);
      expect(s.queue.get(fixtureUuid(2))?.state).toBe("Queued");
      expect(s.status(3)).toBe(
        "Waiting in queue at position 1.  Cluster is at cloud account limits and cannot start any new instances right now.",
      );
    },
  );

  it("quota 3: prio 2 starts on a type2, a type3 is created, no unlocks", async () => {
    const s = setup(types(1, 2, 3, 4), 1.5);
    s.add(3, "Locked", 3, 3, 3);
    s.add(2, "Locked", 2, 2, 2);
    s.pool.addWorker(fixtureType(2));
    s.pool.addWorker(fixtureType(2));
    s.pool.quota = 3;
    await s.pass();
    expect(s.started()).toEqual([fixtureUuid(2)]);
    expect(s.pool.creates.map((t) => t.Name)).toEqual(["type3"]);
    expect(s.unlocks()).toEqual([]);
    expect(s.pool.shutdowns).toEqual([]);
  });
});

describe("InstanceCapacity", () => {
  it("type4 at capacity: prio 4 starts, prio 3 waits for the type, prio 2 not locked, prio 1 gets a type1", async () => {
    const s = setup(types(1, 2, 3, 4), 1);
    s.add(4, "Locked", 4, 4, 4);
    s.add(3, "Locked", 3, 4, 4);
    s.add(2, "Queued", 2, 4, 4);
    s.add(1, "Locked", 1, 1, 1);
    const t4 = s.pool.addWorker(fixtureType(4));
    s.pool.capacity.set("providertype4", 1);
    await s.pass();
    expect(s.pool.starts).toEqual([{ uuid: fixtureUuid(4), instance: t4.id }]);
    expect(s.status(3)).toBe(
      "Waiting in queue at position 1.  Cluster is at capacity for all eligible instance types (type4) and cannot start a new instance right now.",
    );
    expect(s.queue.changes.filter((c) => c.uuid === fixtureUuid(2))).toEqual([]);
    expect(s.queue.get(fixtureUuid(2))?.state).toBe("Queued");
    expect(s.status(2)).toBe(
      "Waiting in queue at position 2.  Cluster is at capacity and cannot start any new instances right now.",
    );
    expect(s.pool.creates.map((t) => t.Name)).toEqual(["type1"]);
    expect(s.status(1)).toBe("Waiting for a type1 instance to boot and be ready to accept work.");
  });
});

describe("EqualPriority", () => {
  it("8 equal Queued {3cpu}, 2 idle type3, quota 2: over 30 passes exactly 2 start", async () => {
    const s = setup(types(1, 2, 3, 4), 1);
    for (let i = 1; i <= 8; i++) s.add(i, "Queued", 100, 3, 1);
    s.pool.addWorker(fixtureType(3));
    s.pool.addWorker(fixtureType(3));
    s.pool.quota = 2;
    for (let n = 0; n < 30; n++) {
      await s.pass();
      s.clock.advance(1000);
    }
    expect(s.pool.starts).toHaveLength(2);
    expect(new Set(s.started()).size).toBe(2);
    expect(s.pool.shutdowns).toEqual([]);
    const unlocked = s.unlocks();
    expect(new Set(unlocked).size).toBe(unlocked.length);
  });
});

describe("Supervisors (SupervisorFraction 0.2, MaxInstances 10)", () => {
  const opts = { supervisorFraction: 0.2, maxInstances: 10 };

  it("Locked supervisors prio 2,3,4 and a worker prio 1 on 8 idle: starts 4, 3, 1", async () => {
    const s = setup(types(1, 2), 1, opts);
    for (const p of [2, 3, 4]) s.add(p, "Locked", p, 1, 1, true);
    s.add(1, "Locked", 1, 1, 1);
    for (let i = 0; i < 8; i++) s.pool.addWorker(fixtureType(1));
    await s.pass();
    expect(s.started()).toEqual([4, 3, 1].map(fixtureUuid));
    expect(s.status(2)).toBe(
      "Waiting in workflow queue at position 1.  Cluster is at capacity and cannot start any new workflows right now.",
    );
    expect(s.pool.shutdowns).toEqual([]);
  });

  it("six Locked supervisors with four running: the other two are unlocked, no shutdowns", async () => {
    const s = setup(types(1, 2), 1, opts);
    for (let p = 1; p <= 6; p++) s.add(p, "Locked", p, 1, 1, true);
    for (let p = 3; p <= 6; p++)
      s.pool.addWorker(fixtureType(1), "running", "run", [fixtureUuid(p)]);
    for (let i = 0; i < 4; i++) s.pool.addWorker(fixtureType(1));
    await s.pass();
    expect(s.started()).toEqual([]);
    expect(s.unlocks().sort()).toEqual([fixtureUuid(1), fixtureUuid(2)].sort());
    expect(s.pool.shutdowns).toEqual([]);
  });

  it("eight Queued/Locked supervisors, not at quota: 2 start, no unlocks, no shutdowns", async () => {
    const s = setup(types(1, 2), 1, opts);
    for (let p = 1; p <= 8; p++) s.add(p, p > 6 ? "Locked" : "Queued", p, 1, 1, true);
    for (let i = 0; i < 8; i++) s.pool.addWorker(fixtureType(1));
    await s.pass();
    await s.pass();
    expect(s.started()).toEqual([8, 7].map(fixtureUuid));
    expect(s.queue.changes.filter((c) => c.to === "Locked")).toEqual([]);
    expect(s.unlocks()).toEqual([]);
    expect(s.pool.shutdowns).toEqual([]);
  });
});

describe("503 quiet period", () => {
  /** Four containers running on four instances, and a 503 seen just before the first pass. */
  async function fourRunningAfter503() {
    const last503 = new Date(0);
    const s = setup(types(1, 2), 1, { maxInstances: 10, last503: () => last503 });
    for (let p = 1; p <= 4; p++) {
      s.add(10 + p, "Running", 1, 1, 1);
      s.pool.addWorker(fixtureType(1), "running", "run", [fixtureUuid(10 + p)]);
    }
    last503.setTime(s.clock.now());
    await s.pass();
    return { s, last503 };
  }

  it("with maxContainers 3 after a recent 503 and 2 already running, the third starts", async () => {
    const { s, last503 } = await fourRunningAfter503();
    expect(s.sched.maxConcurrentContainers()).toBe(3);
    // Two finish; a Locked container waits on an idle instance, 30 s later (still quiet).
    for (const p of [13, 14]) {
      s.queue.set(fixtureUuid(p), { state: "Complete" });
      s.pool.runningMap.delete(fixtureUuid(p));
      s.pool.workers.find((w) => w.running.includes(fixtureUuid(p)))!.running = [];
    }
    s.add(1, "Locked", 5, 1, 1);
    s.pool.addWorker(fixtureType(1));
    s.clock.advance(30_000);
    await s.pass();
    expect(s.started()).toEqual([fixtureUuid(1)]);
    expect(s.sched.maxConcurrentContainers()).toBe(3);
    expect(s.unlocks()).toEqual([]);
    expect(s.pool.shutdowns).toEqual([]);
    const metric = await s.registry.getSingleMetricAsString("arvados_dispatchcloud_last_503_time");
    expect(metric).toContain(`arvados_dispatchcloud_last_503_time ${last503.getTime() / 1000}`);
  });

  it("a fourth would not start within the quiet minute, and the cap rises after it", async () => {
    const { s } = await fourRunningAfter503();
    s.add(1, "Locked", 5, 1, 1);
    s.pool.addWorker(fixtureType(1));
    await s.pass();
    expect(s.started()).toEqual([]);
    s.clock.advance(61_000);
    await s.pass();
    expect(s.sched.maxConcurrentContainers()).toBe(5);
    expect(s.started()).toEqual([fixtureUuid(1)]);
  });
});
