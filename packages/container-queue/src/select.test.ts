import type { InstanceType } from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import { estimateScratch, imageSizeEstimate, resourcesNeeded } from "./resources.js";
import { chooseInstanceTypes, sortTypes, type SelectionInputs } from "./select.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const noGpu = { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 };

function t(
  Name: string,
  Price: number,
  RAM: number,
  VCPUs: number,
  Scratch: number,
  extra: Partial<InstanceType> = {},
): InstanceType {
  return {
    Name,
    ProviderType: Name,
    Price,
    RAM,
    VCPUs,
    Scratch,
    IncludedScratch: Scratch,
    AddedScratch: 0,
    Preemptible: false,
    GPU: noGpu,
    ...extra,
  };
}

const noOverhead = { reserveExtraRAM: 0, localKeepBlobBuffersPerVCPU: 0, maximumPriceFactor: 1 };

describe("resources needed", () => {
  it("diagnostics container with default overheads needs 1139526170 bytes", () => {
    const r = resourcesNeeded(
      {
        runtime_constraints: { ram: 128 * MiB, vcpus: 1, keep_cache_ram: 64 * MiB },
        container_image: "",
      },
      { reserveExtraRAM: 550 * MiB, localKeepBlobBuffersPerVCPU: 1 },
    );
    expect(r).toEqual({ VCPUs: 1, RAM: 1139526170, Scratch: 0, GPUs: 0, GPUVRAM: 0 });
  });

  it.each([
    ["d5025c0f29f6eef304a7358afa82a822+342", 402653184],
    ["d5025c0f29f6eef304a7358afa82a822+-342", 0],
    ["d5025c0f29f6eef304a7358afa82a822+34", 0],
    ["d5025c0f29f6eef304a7358afa82a822+342+K@xyzzy", 0],
    ["d5025c0f29f6eef304a7358afa82a822+121", 0],
    ["d5025c0f29f6eef304a7358afa82a822+122", 64 * MiB],
  ])("image %s is estimated at %i bytes", (pdh, want) => {
    expect(imageSizeEstimate(pdh)).toBe(want);
  });

  it("scratch = max(tmp, image) + image + keep_cache_disk", () => {
    const img = "d5025c0f29f6eef304a7358afa82a822+342";
    expect(
      estimateScratch({ runtime_constraints: { ram: 0, vcpus: 1 }, container_image: img }),
    ).toBe(805306368);
    expect(
      estimateScratch({
        runtime_constraints: { ram: 0, vcpus: 1, keep_cache_disk: 1000 },
        container_image: img,
        mounts: {
          "/tmp": { kind: "tmp", capacity: 2 * GiB },
          "/a": { kind: "tmp", capacity: GiB },
          "/c": { kind: "collection", capacity: 99 * GiB },
        },
      }),
    ).toBe(3 * GiB + 402653184 + 1000);
  });
});

const base: SelectionInputs = {
  runtime_constraints: { vcpus: 2, ram: 987654321, keep_cache_ram: 123456789 },
  container_image: "",
  mounts: { "/tmp": { kind: "tmp", capacity: 2 * GiB } },
};
const names = (sel: ReturnType<typeof chooseInstanceTypes>) =>
  sel.ok ? sel.types.map((x) => x.Name) : sel.error.message;

describe("instance type selection", () => {
  const menus: InstanceType[][] = [
    [
      t("costly", 4.0, 4e9, 8, 16 * GiB),
      t("best", 2.0, 2e9, 4, 2 * GiB),
      t("small", 1.0, 1e9, 2, 2 * GiB),
    ],
    [
      t("costly", 4.0, 4e9, 8, 16 * GiB),
      t("goodenough", 2.0, 2e9, 4, 2 * GiB),
      t("best", 2.0, 4e9, 4, 2 * GiB),
    ],
    [
      t("best", 2.0, 4e9, 4, 2 * GiB),
      t("goodenough", 2.0, 2e9, 4, 2 * GiB),
      t("small", 1.0, 2e9, 2, 1 * GiB),
    ],
  ];
  it.each(menus.map((m, i) => [i, m] as const))("menu %i: best first", (_, menu) => {
    for (const factor of [0, 0.5, 1]) {
      const sel = chooseInstanceTypes(
        base,
        { ...noOverhead, maximumPriceFactor: factor },
        sortTypes(menu),
      );
      expect(sel.ok && sel.types[0].Name).toBe("best");
      expect(sel.ok && new Set(sel.types.map((x) => x.Price)).size).toBe(1);
    }
  });

  it("MaximumPriceFactor 1.5 keeps every type up to 1.5 × the cheapest", () => {
    const menu = [
      t("best+7", 3.4, 8e9, 8, 64 * GiB),
      t("best+5", 3.0, 8e9, 8, 16 * GiB),
      t("best+3", 2.6, 4e9, 8, 16 * GiB),
      t("best+2", 2.4, 4e9, 8, 4 * GiB),
      t("best+1", 2.2, 2e9, 4, 4 * GiB),
      t("best", 2.0, 2e9, 4, 2 * GiB),
      t("small+1", 1.1, 1e9, 2, 16 * GiB),
      t("small", 1.0, 2e9, 2, 1 * GiB),
    ];
    expect(
      names(chooseInstanceTypes(base, { ...noOverhead, maximumPriceFactor: 1.5 }, sortTypes(menu))),
    ).toEqual(["best", "best+1", "best+2", "best+3", "best+5"]);
  });

  it("16 keep buffers per VCPU rule out a 4 GB type", () => {
    const menu = sortTypes([t("small", 1.0, 4e9, 2, 16 * GiB), t("best", 2.0, 8e9, 4, 16 * GiB)]);
    const cfg = (bufs: number) => ({
      reserveExtraRAM: 268435456,
      localKeepBlobBuffersPerVCPU: bufs,
      maximumPriceFactor: 1,
    });
    expect(names(chooseInstanceTypes(base, cfg(16), menu))).toEqual(["best"]);
    expect(names(chooseInstanceTypes(base, cfg(1), menu))).toEqual(["small"]);
  });

  it("a preemptible container gets a preemptible type even with a same-price on-demand one", () => {
    const menu = sortTypes([
      t("ondemand", 2.0, 8e9, 4, 16 * GiB),
      t("best", 2.0, 4e9, 4, 16 * GiB, { Preemptible: true }),
    ]);
    const sel = chooseInstanceTypes(
      { ...base, scheduling_parameters: { preemptible: true } },
      noOverhead,
      menu,
    );
    expect(names(sel)).toEqual(["best"]);
    expect(names(chooseInstanceTypes(base, noOverhead, menu))).toEqual(["ondemand"]);
  });

  it("errors: no types, unsatisfiable, invalid stack", () => {
    expect(names(chooseInstanceTypes(base, noOverhead, []))).toBe(
      "site configuration does not list any instance types",
    );
    expect(names(chooseInstanceTypes(base, noOverhead, [t("tiny", 1, 1e6, 1, 0)]))).toBe(
      "constraints not satisfiable by any configured instance type",
    );
    const bad = {
      ...base,
      runtime_constraints: { ...base.runtime_constraints, gpu: { stack: "opencl" } },
    };
    const sel = chooseInstanceTypes(bad, noOverhead, [t("tiny", 1, 1e6, 1, 0)]);
    expect(names(sel)).toBe(
      `Invalid GPU stack "opencl", expected to be blank or one of 'cuda' or 'rocm'`,
    );
    expect(!sel.ok && sel.error.kind).toBe("invalid-gpu-stack");
  });

  it("a Price of 0 gives the same answer whatever the configured order", () => {
    const menu = [
      t("free", 0, 8e9, 4, 16 * GiB),
      t("a", 1, 8e9, 4, 16 * GiB),
      t("b", 5, 8e9, 4, 16 * GiB),
    ];
    const one = names(
      chooseInstanceTypes(base, { ...noOverhead, maximumPriceFactor: 1.5 }, sortTypes(menu)),
    );
    const two = names(
      chooseInstanceTypes(
        base,
        { ...noOverhead, maximumPriceFactor: 1.5 },
        sortTypes(menu.toReversed()),
      ),
    );
    expect(one).toEqual(two);
    expect(one).toEqual(["free", "a"]);
  });
});

describe("GPU selection", () => {
  const cuda = (
    DriverVersion: string,
    HardwareTarget: string,
    DeviceCount: number,
    VRAM: number,
  ) => ({
    GPU: { Stack: "cuda", DriverVersion, HardwareTarget, DeviceCount, VRAM },
  });
  const rocm = (HardwareTarget: string, VRAM: number) => ({
    GPU: { Stack: "rocm", DriverVersion: "6.0", HardwareTarget, DeviceCount: 1, VRAM },
  });
  const menu = sortTypes([
    t("non_gpu", 0.5, 16e9, 4, 100 * GiB),
    t("best", 2.0, 16e9, 4, 100 * GiB, cuda("11.0", "9.0", 1, 2e9)),
    t("costly", 4.0, 16e9, 4, 100 * GiB, cuda("11.0", "9.0", 2, 2e9)),
    t("low_capability", 1.9, 16e9, 4, 100 * GiB, cuda("11.0", "8.0", 1, 2e9)),
    t("low_driver", 1.5, 16e9, 4, 100 * GiB, cuda("10.0", "8.0", 1, 2e9)),
    t("more_vram", 3.0, 16e9, 4, 100 * GiB, cuda("11.0", "9.0", 1, 8e9)),
    t("gpu_rocm", 2.5, 16e9, 4, 100 * GiB, rocm("gfx1100", 2e9)),
    t("cheap_gpu_rocm", 2.2, 16e9, 4, 100 * GiB, rocm("gfx1103", 2e9)),
    t("rocm_no_vram", 1.0, 16e9, 4, 100 * GiB, rocm("gfx1104", 0)),
  ]);
  const ctr = (gpu: object): SelectionInputs => ({
    runtime_constraints: { vcpus: 1, ram: 1e9, gpu },
    container_image: "",
  });
  const cases: [string, object, string][] = [
    [
      "cuda 1 dev 9.0",
      {
        stack: "cuda",
        device_count: 1,
        hardware_target: ["9.0"],
        driver_version: "11.0",
        vram: 2e9,
      },
      "best",
    ],
    [
      "cuda 2 devs",
      {
        stack: "cuda",
        device_count: 2,
        hardware_target: ["9.0"],
        driver_version: "11.0",
        vram: 2e9,
      },
      "costly",
    ],
    [
      "cuda target 8.0",
      {
        stack: "cuda",
        device_count: 1,
        hardware_target: ["8.0"],
        driver_version: "11.0",
        vram: 2e9,
      },
      "low_capability",
    ],
    [
      "cuda driver 10.0",
      {
        stack: "cuda",
        device_count: 1,
        hardware_target: ["8.0"],
        driver_version: "10.0",
        vram: 2e9,
      },
      "low_driver",
    ],
    [
      "cuda vram 8e9",
      {
        stack: "cuda",
        device_count: 1,
        hardware_target: ["9.0"],
        driver_version: "11.0",
        vram: 8e9,
      },
      "more_vram",
    ],
    [
      "cuda 2 targets, exact match",
      {
        stack: "cuda",
        device_count: 1,
        hardware_target: ["9.0", "7.5"],
        driver_version: "11.0",
        vram: 2e9,
      },
      "best",
    ],
    [
      "cuda no targets",
      { stack: "cuda", device_count: 1, hardware_target: [], driver_version: "11.0", vram: 2e9 },
      "constraints not satisfiable by any configured instance type",
    ],
    [
      "rocm gfx1100",
      {
        stack: "rocm",
        device_count: 1,
        hardware_target: ["gfx1100"],
        driver_version: "6.0",
        vram: 2e9,
      },
      "gpu_rocm",
    ],
    [
      "rocm gfx1100|gfx1103",
      {
        stack: "rocm",
        device_count: 1,
        hardware_target: ["gfx1100", "gfx1103"],
        driver_version: "6.0",
        vram: 2e9,
      },
      "cheap_gpu_rocm",
    ],
    [
      "rocm gfx1104 vs VRAM 0",
      {
        stack: "rocm",
        device_count: 1,
        hardware_target: ["gfx1104"],
        driver_version: "6.0",
        vram: 2e9,
      },
      "constraints not satisfiable by any configured instance type",
    ],
    [
      "no GPU",
      { stack: "", device_count: 0, hardware_target: [], driver_version: "", vram: 0 },
      "non_gpu",
    ],
  ];
  it.each(cases)("%s → %s", (_, gpu, want) => {
    const sel = chooseInstanceTypes(ctr(gpu), noOverhead, menu);
    expect(sel.ok ? sel.types[0].Name : sel.error.message).toBe(want);
  });
});
