import { afterEach, describe, expect, test } from "vitest";
import {
  ProfilerAddressError,
  parseProfilerAddress,
  startProfiler,
  type Profiler,
} from "./pprof.js";

describe("-pprof address", () => {
  test.each([
    ["localhost:6060", { host: "localhost", port: 6060 }],
    [":6060", { port: 6060 }],
    ["[::1]:0", { host: "::1", port: 0 }],
    ["127.0.0.1:65535", { host: "127.0.0.1", port: 65535 }],
  ])("%s", (addr, want) => {
    expect(parseProfilerAddress(addr)).toEqual(want);
  });

  test.each(["6060", "localhost", "host:port", "localhost:70000", "::1:6060"])(
    "%s is refused",
    (addr) => {
      expect(() => parseProfilerAddress(addr)).toThrow(ProfilerAddressError);
    },
  );
});

describe("the profiler", () => {
  let profiler: Profiler | undefined;
  afterEach(async () => {
    await profiler?.close();
    profiler = undefined;
  });

  test("serves an index, the sampling heap profile and a CPU profile; nothing else", async () => {
    profiler = await startProfiler("127.0.0.1:0");
    const base = `http://${profiler.address}/debug/pprof`;

    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(await index.text()).toContain("profile?seconds=N");

    // Allocate something the sampler will see.
    const keep = Array.from({ length: 2000 }, (_, i) => ({ i, s: "x".repeat(100) }));
    const heap = await fetch(`${base}/heap`);
    expect(heap.status).toBe(200);
    expect(heap.headers.get("content-disposition")).toContain("heap.heapprofile");
    const heapProfile = (await heap.json()) as {
      head: { children: unknown[] };
      samples: unknown[];
    };
    expect(heapProfile.head.children.length).toBeGreaterThan(0);
    expect(heapProfile.samples.length).toBeGreaterThan(0);
    expect(keep.length).toBe(2000);

    const cpu = await fetch(`${base}/profile?seconds=1`);
    expect(cpu.status).toBe(200);
    const cpuProfile = (await cpu.json()) as {
      nodes: unknown[];
      startTime: number;
      endTime: number;
    };
    expect(cpuProfile.nodes.length).toBeGreaterThan(0);
    expect(cpuProfile.endTime - cpuProfile.startTime).toBeGreaterThanOrEqual(900_000); // µs

    expect((await fetch(`${base}/profile?seconds=0`)).status).toBe(400);
    expect((await fetch(`${base}/heapsnapshot`)).status).toBe(404);
  });

  test("a taken port is an error from startProfiler", async () => {
    profiler = await startProfiler("127.0.0.1:0");
    await expect(startProfiler(profiler.address)).rejects.toThrow(/EADDRINUSE/);
  });
});
