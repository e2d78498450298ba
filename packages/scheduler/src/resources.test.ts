import { describe, expect, it } from "vitest";
import { FreeResources } from "./resources.js";

const r = (VCPUs: number) => ({ VCPUs, RAM: 1, Scratch: 1, GPUs: 0, GPUVRAM: 0 });
const slot = (VCPUs: number, shared = false) => {
  const f = new FreeResources({ VCPUs, RAM: 100, Scratch: 100, GPUs: 0, GPUVRAM: 0 });
  f.sharedVCPUUsed = shared;
  return f;
};

describe("FreeResources.accommodates (per-instance accounting)", () => {
  it.each([
    { free: slot(2), need: r(2), want: true },
    { free: slot(2, true), need: r(2), want: false },
    { free: slot(2, true), need: r(1), want: true },
    { free: slot(2, true), need: r(0), want: true },
    { free: slot(1, true), need: r(0), want: true },
    { free: slot(1, true), need: r(1), want: false },
    { free: slot(0), need: r(0), want: false },
    { free: slot(0), need: r(1), want: false },
  ])(
    "free $free.VCPUs shared=$free.sharedVCPUUsed need $need.VCPUs → $want",
    ({ free, need, want }) => {
      expect(free.accommodates(need)).toBe(want);
    },
  );

  it("checks every figure", () => {
    const f = new FreeResources({ VCPUs: 4, RAM: 10, Scratch: 10, GPUs: 1, GPUVRAM: 8 });
    expect(f.accommodates({ VCPUs: 1, RAM: 11, Scratch: 1, GPUs: 0, GPUVRAM: 0 })).toBe(false);
    expect(f.accommodates({ VCPUs: 1, RAM: 1, Scratch: 11, GPUs: 0, GPUVRAM: 0 })).toBe(false);
    expect(f.accommodates({ VCPUs: 1, RAM: 1, Scratch: 1, GPUs: 2, GPUVRAM: 0 })).toBe(false);
    expect(f.accommodates({ VCPUs: 1, RAM: 1, Scratch: 1, GPUs: 1, GPUVRAM: 9 })).toBe(false);
    expect(f.accommodates({ VCPUs: 4, RAM: 10, Scratch: 10, GPUs: 1, GPUVRAM: 8 })).toBe(true);
  });

  it("a 0-VCPU container sets the sticky shared flag; together they consume one VCPU", () => {
    const f = new FreeResources({ VCPUs: 2, RAM: 100, Scratch: 100, GPUs: 0, GPUVRAM: 0 });
    f.subtract(r(0));
    expect(f.sharedVCPUUsed).toBe(true);
    expect(f.accommodates(r(2))).toBe(false);
    f.subtract(r(1));
    expect(f.accommodates(r(0))).toBe(true);
    expect(f.accommodates(r(1))).toBe(false);
  });
});
