import type { ContainerState, ContainerUuid } from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import { fixtureType, fixtureUuid, testScheduler, type FakeContainer } from "./testing/index.js";

function setup() {
  return testScheduler([fixtureType(1)], { staleLockTimeoutMs: 60_000 });
}

/** Let pending promise callbacks and I/O-free tasks run (no time passes). */
async function flush() {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

type Run = "no" | "running" | "exited-fresh" | "exited-stale";
const u = fixtureUuid(1);

/** A container needing one VCPU and a byte of RAM: it fits the one fixture type. */
function oneVcpu(
  uuid: ContainerUuid,
  state: ContainerState,
  priority: number,
): Omit<FakeContainer, "scheduling_parameters" | "created_at"> {
  return { uuid, state, priority, runtime_constraints: { vcpus: 1, ram: 1 } };
}

describe("syncer action table", () => {
  const cases: {
    state: ContainerState;
    prio: number;
    run: Run;
    unknown?: boolean;
    want: string;
  }[] = [
    { state: "Running", prio: 1, run: "no", want: "cancel" },
    { state: "Running", prio: 1, run: "no", unknown: true, want: "none" },
    { state: "Running", prio: 1, run: "exited-fresh", want: "cancel" },
    { state: "Running", prio: 0, run: "running", want: "kill priority=0" },
    { state: "Running", prio: 1, run: "running", want: "none" },
    { state: "Complete", prio: 1, run: "running", want: "kill state=Complete" },
    { state: "Cancelled", prio: 1, run: "running", want: "kill state=Cancelled" },
    { state: "Complete", prio: 1, run: "no", want: "forget" },
    {
      state: "Queued",
      prio: 1,
      run: "running",
      want: "kill pool says running, but queue says state=Queued",
    },
    { state: "Queued", prio: 0, run: "no", want: "forget" },
    { state: "Locked", prio: 1, run: "exited-fresh", want: "requeue" },
    { state: "Locked", prio: 1, run: "exited-stale", want: "none" },
    { state: "Locked", prio: 0, run: "running", want: "kill priority=0" },
    { state: "Locked", prio: 0, run: "no", want: "requeue" },
  ];
  it.each(cases)(
    "$state prio $prio $run unknown=$unknown → $want",
    async ({ state, prio, run, unknown, want }) => {
      const s = setup();
      s.queue.add(oneVcpu(u, "Queued", prio));
      await s.queue.update();
      s.queue.set(u, { state });
      if (unknown) s.pool.addWorker(fixtureType(1), "unknown");
      if (run === "running") s.pool.addWorker(fixtureType(1), "running", "run", [u]);
      if (run === "exited-stale") s.pool.exit(u, new Date(s.clock.now() + 1000));
      await s.queue.update();
      if (run === "exited-fresh") {
        s.pool.exit(u, new Date(s.clock.now() - 1000));
        s.clock.advance(5000);
        await s.queue.update();
      }
      await s.sched.sync();
      await s.sched.settled();
      const kills = s.pool.kills.map((k) => `kill ${k.reason}`);
      const changes = s.queue.changes.map((c) =>
        c.to === "Cancelled" ? "cancel" : c.to === "Queued" ? "requeue" : c.to,
      );
      const forgot = s.queue.get(u) === undefined ? ["forget"] : [];
      const got = [...kills, ...changes, ...forgot];
      expect(got).toEqual(want === "none" ? [] : [want]);
    },
  );

  it("kills containers the pool runs that the queue does not know", async () => {
    const s = setup();
    s.pool.addWorker(fixtureType(1), "running", "run", [u]);
    await s.queue.update();
    await s.sched.sync();
    await s.sched.settled();
    expect(s.pool.kills).toEqual([{ uuid: u, reason: "not in queue" }]);
  });
});

describe("stale-lock fixer", () => {
  it("does nothing without unknown workers", async () => {
    const s = setup();
    s.queue.add(oneVcpu(u, "Locked", 1));
    await s.queue.update();
    await s.sched.fixStaleLocks();
    expect(s.queue.changes).toEqual([]);
  });

  it("waits for unknown workers, then unlocks what none of them runs", async () => {
    const s = setup();
    const v = fixtureUuid(2);
    s.queue.add(oneVcpu(u, "Locked", 1));
    s.queue.add(oneVcpu(v, "Locked", 1));
    const w1 = s.pool.addWorker(fixtureType(1), "unknown");
    const w2 = s.pool.addWorker(fixtureType(1), "unknown");
    await s.queue.update();
    const done = s.sched.fixStaleLocks();
    await flush();
    // One unknown worker reports that it runs v; later the other reports idle.
    w1.state = "running";
    w1.running = [v];
    s.pool.runningMap.set(v, null);
    s.pool.notify();
    await flush();
    w2.state = "idle";
    s.pool.notify();
    await done;
    expect(s.queue.changes).toEqual([{ uuid: u, from: "Locked", to: "Queued" }]);
  });

  it("gives up waiting after StaleLockTimeout", async () => {
    const s = setup();
    s.queue.add(oneVcpu(u, "Locked", 1));
    s.pool.addWorker(fixtureType(1), "unknown");
    await s.queue.update();
    const done = s.sched.fixStaleLocks();
    await flush();
    s.clock.advance(59_000);
    await flush();
    expect(s.queue.changes).toEqual([]);
    s.clock.advance(1000);
    await done;
    expect(s.queue.changes).toEqual([{ uuid: u, from: "Locked", to: "Queued" }]);
  });
});

describe("a lock already in flight", () => {
  it("is neither retried nor preceded by another kill check on the next pass", async () => {
    const s = setup();
    s.queue.add(oneVcpu(u, "Queued", 1));
    await s.queue.update();
    s.queue.hold();
    await s.sched.runQueue();
    expect(s.pool.kills.filter((k) => k.uuid === u)).toEqual([
      { uuid: u, reason: "about to lock" },
    ]);
    await s.sched.runQueue(); // the lock is still waiting on the controller
    expect(s.pool.kills.filter((k) => k.uuid === u)).toHaveLength(1);
    expect(s.logger.messages().filter((m) => m.startsWith("uuidLock not available"))).toEqual([]);
    s.queue.release();
    await s.sched.settled();
    expect(s.queue.changes).toEqual([{ uuid: u, from: "Queued", to: "Locked" }]);
  });
});

describe("run loop", () => {
  it("polls, fixes stale locks, locks, and starts the container on the pass after the lock", async () => {
    const s = setup();
    s.queue.add(oneVcpu(u, "Queued", 1));
    s.pool.addWorker(fixtureType(1));
    s.queue.hold();
    s.sched.start();
    await flush();
    expect(s.logger.messages()).toContain("FixStaleLocks starting.");
    expect(s.pool.starts).toEqual([]);
    s.queue.release();
    await s.sched.settled();
    await flush();
    expect(s.queue.changes).toEqual([{ uuid: u, from: "Queued", to: "Locked" }]);
    expect(s.pool.starts.map((x) => x.uuid)).toEqual([u]);
    await s.sched.stop();
  });
});
