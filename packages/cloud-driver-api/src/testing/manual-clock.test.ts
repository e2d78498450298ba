import { describe, expect, it } from "vitest";
import { ManualClock } from "./manual-clock.js";

describe("ManualClock", () => {
  it("wakes sleepers in due order, at their due time, only when advanced", async () => {
    const clock = new ManualClock(100);
    const woke: string[] = [];
    void clock.sleep(50).then(() => woke.push(`b@${clock.now()}`));
    void clock.sleep(10).then(() => woke.push(`a@${clock.now()}`));
    void clock.sleep(50).then(() => woke.push(`c@${clock.now()}`));
    await clock.advance(9);
    expect(woke).toEqual([]);
    await clock.advance(100);
    expect(woke).toEqual(["a@110", "b@150", "c@150"]);
    expect(clock.now()).toBe(209);
  });

  it("lets a loop see every tick within one advance", async () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    const stop = new AbortController();
    const loop = (async () => {
      try {
        for (;;) {
          await clock.sleep(100, stop.signal);
          ticks.push(clock.now());
        }
      } catch {
        // stopped
      }
    })();
    await clock.advance(350);
    expect(ticks).toEqual([100, 200, 300]);
    stop.abort();
    await loop;
    expect(clock.pendingSleepers).toBe(0);
  });

  it("rejects an aborted sleep and waits for sleepers", async () => {
    const clock = new ManualClock();
    const ac = new AbortController();
    const waiting = clock.waitForSleepers(1);
    const s = clock.sleep(1000, ac.signal);
    await waiting;
    ac.abort(new Error("cancelled"));
    await expect(s).rejects.toThrow("cancelled");
    expect(clock.nextDue()).toBeUndefined();
  });
});
