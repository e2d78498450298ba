import type { InstanceResources } from "@dispatch-cloud/arvados-types";

const MiB = 2 ** 20;
/** Local keepstore plus GC slack. */
const keepstoreOverhead = 220 * MiB;
const blockSize = 64 * MiB;
const imagePdh = /^[0-9a-f]{32}\+(\d+)$/;

export interface ResourceInputs {
  readonly runtime_constraints: {
    readonly ram: number;
    readonly vcpus: number;
    readonly keep_cache_ram?: number;
    readonly keep_cache_disk?: number;
    readonly gpu?: { readonly device_count?: number; readonly vram?: number };
  };
  readonly container_image: string;
  readonly mounts?: Readonly<
    Record<string, { readonly kind: string; readonly capacity?: number }>
  > | null;
}

export interface OverheadConfig {
  readonly reserveExtraRAM: number;
  readonly localKeepBlobBuffersPerVCPU: number;
}

/** What a container needs from an instance, with the dispatcher's overheads (integer maths). */
export function resourcesNeeded(ctr: ResourceInputs, cfg: OverheadConfig): InstanceResources {
  const rc = ctr.runtime_constraints;
  let ram = rc.ram + (rc.keep_cache_ram ?? 0) + cfg.reserveExtraRAM;
  if (cfg.localKeepBlobBuffersPerVCPU > 0) {
    ram += keepstoreOverhead;
    ram += Math.floor((cfg.localKeepBlobBuffersPerVCPU * rc.vcpus * blockSize * 11) / 10);
  }
  // Assume 5% of an instance's advertised RAM is not usable.
  ram = Math.floor((ram * 100) / 95);
  return {
    VCPUs: rc.vcpus,
    RAM: ram,
    Scratch: estimateScratch(ctr),
    GPUs: rc.gpu?.device_count ?? 0,
    GPUVRAM: rc.gpu?.vram ?? 0,
  };
}

/** tmp mounts, room to unpack the image (estimated from its manifest size), disk cache. */
export function estimateScratch(ctr: ResourceInputs): number {
  let s = 0;
  for (const m of Object.values(ctr.mounts ?? {})) {
    if (m.kind === "tmp") s += m.capacity ?? 0;
  }
  const img = imageSizeEstimate(ctr.container_image);
  return Math.max(s, img) + img + (ctr.runtime_constraints.keep_cache_disk ?? 0);
}

/** A Docker image collection's size guessed from the manifest size in its PDH. */
export function imageSizeEstimate(pdh: string): number {
  const m = imagePdh.exec(pdh);
  if (m === null) return 0;
  const n = Number(m[1]);
  if (n < 122) return 0;
  return Math.floor((n - 80) / 42) * blockSize;
}
