// Deterministic workloads shared by the benchmarks: a catalogue of instance types shaped like
// a cloud's (families × sizes) and a mix of container requests.
import type { InstanceType } from "@dispatch-cloud/arvados-types";
import type { SelectionInputs } from "@dispatch-cloud/container-queue";
import { GiB, prng } from "./lib.js";

const sizes = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];

/**
 * `count` types: families with 1–16 GiB RAM per VCPU (some with GPUs, some preemptible twins
 * of on-demand ones), each in ascending sizes, priced per VCPU and GiB like a real price list.
 */
export function instanceTypes(count: number): InstanceType[] {
  const out: InstanceType[] = [];
  let family = 0;
  while (out.length < count) {
    const ramPerCpu = [1, 2, 4, 8, 16][family % 5]!;
    const preemptible = family % 7 === 6;
    const gpu = family % 11 === 10;
    for (const vcpus of sizes) {
      if (out.length >= count) break;
      const ram = vcpus * ramPerCpu * GiB;
      const included = vcpus * 16 * GiB;
      const added = family % 3 === 0 ? 0 : 200 * GiB;
      const base = vcpus * 0.0204 + (ram / GiB) * 0.0047 + (gpu ? vcpus * 0.09 : 0);
      // A little per-family noise so prices rarely tie.
      const price = Number((base * (preemptible ? 0.35 : 1) * (1 + family * 0.0031)).toFixed(5));
      out.push({
        Name: `f${family}.s${vcpus}${preemptible ? ".preemptible" : ""}`,
        ProviderType: `fam${family}.${vcpus}xl`,
        VCPUs: vcpus,
        RAM: ram,
        IncludedScratch: included,
        AddedScratch: added,
        Scratch: included + added,
        Price: price,
        Preemptible: preemptible,
        GPU: gpu
          ? {
              Stack: "cuda",
              DriverVersion: "12.4",
              HardwareTarget: "8.6",
              DeviceCount: Math.max(1, vcpus / 8),
              VRAM: 24 * GiB,
            }
          : { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
      });
    }
    family++;
  }
  return out;
}

/** `n` container requests: mostly small, some large, a few GPU and preemptible ones. */
export function containerRequests(n: number, seed = 42): SelectionInputs[] {
  const rnd = prng(seed);
  const out: SelectionInputs[] = [];
  for (let i = 0; i < n; i++) {
    const vcpus = [1, 1, 1, 2, 2, 4, 4, 8, 16, 32][Math.floor(rnd() * 10)]!;
    const ram = Math.floor((0.5 + rnd() * 4 * vcpus) * GiB);
    const gpu = rnd() < 0.03;
    out.push({
      runtime_constraints: {
        ram,
        vcpus,
        keep_cache_ram: 0,
        ...(gpu
          ? {
              gpu: {
                stack: "cuda",
                driver_version: "11.0",
                hardware_target: ["8.0"],
                device_count: 1,
                vram: 8 * GiB,
              },
            }
          : {}),
      },
      // A manifest-size PDH, so the image-size scratch estimate does real work.
      container_image: `${(i % 97).toString(16).padStart(32, "0")}+${1000 + (i % 5000)}`,
      mounts: {
        "/tmp": { kind: "tmp", capacity: Math.floor(rnd() * 64) * GiB },
        "/keep": { kind: "collection" },
      },
      scheduling_parameters: rnd() < 0.05 ? { preemptible: true } : {},
    });
  }
  return out;
}

/** Containers.* defaults that selection uses (ReserveExtraRAM 550MiB, 1 buffer/VCPU, factor 1.5). */
export const selectionDefaults = {
  reserveExtraRAM: 550 * 2 ** 20,
  localKeepBlobBuffersPerVCPU: 1,
  maximumPriceFactor: 1.5,
} as const;
