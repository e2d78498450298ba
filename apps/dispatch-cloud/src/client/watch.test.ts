import { describe, expect, test } from "vitest";
import {
  phaseOf,
  progressLine,
  watchContainer,
  type Observation,
  type WatchClock,
  verdict,
} from "./watch.js";

const base: Observation = {
  state: "Queued",
  exitCode: null,
  runtimeError: null,
  schedulingStatus: "",
  workerState: null,
};
const obs = (o: Partial<Observation>): Observation => ({ ...base, ...o });

/** Time that moves only when the watcher sleeps. */
function manualClock(): WatchClock & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: (ms, signal) => {
      if (signal?.aborted) return Promise.reject(new Error("aborted"));
      slept.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

describe("phaseOf", () => {
  test.each([
    [obs({ state: "Queued" }), "queued"],
    [obs({ state: "Locked" }), "locked"],
    [obs({ state: "Locked", workerState: "unknown" }), "instance booting"],
    [obs({ state: "Locked", workerState: "booting" }), "instance booting"],
    [obs({ state: "Locked", workerState: "idle" }), "starting"],
    [obs({ state: "Locked", workerState: "running" }), "starting"],
    [obs({ state: "Running", workerState: "running" }), "running"],
    [obs({ state: "Complete", exitCode: 0 }), "complete"],
    [obs({ state: "Cancelled" }), "cancelled"],
  ])("%o is %s", (o, phase) => {
    expect(phaseOf(o)).toBe(phase);
  });
});

describe("progressLine", () => {
  test("shows the scheduling status while waiting, the exit code at the end", () => {
    expect(
      progressLine(
        1234,
        obs({
          state: "Locked",
          workerState: "booting",
          schedulingStatus: "Waiting for a localhost instance to boot and be ready to accept work.",
        }),
      ),
    ).toBe(
      "[  1.2s]  instance booting  container Locked  instance booting — Waiting for a localhost instance to boot and be ready to accept work.",
    );
    expect(
      progressLine(
        5000,
        obs({ state: "Complete", exitCode: 0, workerState: "idle", schedulingStatus: "stale" }),
      ),
    ).toBe("[  5.0s]  complete          container Complete  instance idle  exit code 0");
    expect(
      progressLine(
        0,
        obs({
          state: "Cancelled",
          runtimeError: "constraints not satisfiable by any configured instance type",
        }),
      ),
    ).toBe(
      "[  0.0s]  cancelled         container Cancelled — constraints not satisfiable by any configured instance type",
    );
  });
});

describe("watchContainer", () => {
  test("prints a line per change, not per poll, and ends at a final state", async () => {
    const seq = [
      obs({}),
      obs({}),
      obs({ state: "Locked" }),
      obs({ state: "Locked", workerState: "booting" }),
      obs({ state: "Locked", workerState: "booting" }),
      obs({ state: "Running", workerState: "running" }),
      obs({ state: "Complete", exitCode: 0, workerState: "running" }),
    ];
    const lines: string[] = [];
    const clock = manualClock();
    const outcome = await watchContainer({
      observe: () => Promise.resolve(seq.shift()!),
      onProgress: (l) => lines.push(l),
      timeoutMs: 60_000,
      pollMs: 250,
      clock,
    });
    expect(outcome).toEqual({
      kind: "final",
      observation: obs({ state: "Complete", exitCode: 0, workerState: "running" }),
      elapsedMs: 1500,
    });
    expect(lines.map((l) => phaseOf(parse(l)))).toEqual([
      "queued",
      "locked",
      "instance booting",
      "running",
      "complete",
    ]);
    expect(lines[0]).toMatch(/^\[ {2}0\.0s\]/);
    expect(lines[4]).toMatch(/^\[ {2}1\.5s\]/);
    expect(clock.slept).toEqual([250, 250, 250, 250, 250, 250]);
  });

  test("times out with the last state seen; read errors are shown once and do not stop it", async () => {
    const lines: string[] = [];
    let calls = 0;
    const outcome = await watchContainer({
      observe: () => {
        calls++;
        if (calls <= 3) return Promise.reject(new Error("management API did not answer"));
        return Promise.resolve(obs({ state: "Locked" }));
      },
      onProgress: (l) => lines.push(l),
      timeoutMs: 2000,
      pollMs: 500,
      clock: manualClock(),
    });
    expect(outcome).toEqual({ kind: "timeout", last: obs({ state: "Locked" }), elapsedMs: 2000 });
    expect(lines).toEqual([
      "[  0.0s] (management API did not answer)",
      "[  1.5s]  locked            container Locked",
    ]);
  });

  test("an abort ends the watch", async () => {
    const abort = new AbortController();
    const outcome = await watchContainer({
      observe: () => {
        abort.abort();
        return Promise.resolve(obs({}));
      },
      onProgress: () => undefined,
      timeoutMs: 2000,
      pollMs: 500,
      clock: manualClock(),
      signal: abort.signal,
    });
    expect(outcome).toEqual({ kind: "aborted", last: obs({}) });
  });
});

describe("verdict", () => {
  const uuid = "zzzzz-dz642-000000000000001";
  test.each([
    [
      { kind: "final", observation: obs({ state: "Complete", exitCode: 0 }), elapsedMs: 1 },
      { ok: true },
    ],
    [
      { kind: "final", observation: obs({ state: "Complete", exitCode: 3 }), elapsedMs: 1 },
      { ok: false, reason: `container ${uuid} is Complete but exited 3` },
    ],
    [
      {
        kind: "final",
        observation: obs({ state: "Cancelled", runtimeError: "no space" }),
        elapsedMs: 1,
      },
      { ok: false, reason: `container ${uuid} was Cancelled: no space` },
    ],
    [
      {
        kind: "timeout",
        last: obs({ state: "Locked", schedulingStatus: "Waiting" }),
        elapsedMs: 120_000,
      },
      {
        ok: false,
        reason: `timed out after 120s waiting for container ${uuid}: it is still Locked (Waiting)`,
      },
    ],
    [
      { kind: "aborted", last: null },
      { ok: false, reason: `interrupted while waiting for container ${uuid}` },
    ],
  ] as const)("%o", (outcome, expected) => {
    expect(verdict(outcome, uuid, 120_000)).toEqual(expected);
  });
});

/** Reads the phase back from a line (its second column). */
function parse(line: string): Observation {
  const state = /container (\w+)/.exec(line)?.[1] as Observation["state"];
  const worker = /instance (\w+)/.exec(line)?.[1] ?? null;
  return obs({ state, workerState: worker });
}
