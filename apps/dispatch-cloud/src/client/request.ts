import type { ContainerRequestCreate } from "@dispatch-cloud/arvados-client";
import { shellCommand, truncate } from "./format.js";

/** What `submit` asks for; each field is one of its flags. */
export interface SubmitSpec {
  readonly command: readonly string[];
  /** 1–1000, as Arvados takes it. */
  readonly priority: number;
  readonly image: string;
  readonly vcpus: number;
  /** Bytes. */
  readonly ram: number;
  /** Bytes of scratch space: the capacity of the output directory's tmp mount. */
  readonly scratch: number;
  readonly preemptible: boolean;
  readonly gpu: GpuSpec | null;
}

export interface GpuSpec {
  readonly count: number;
  readonly stack: "cuda" | "rocm";
  /** Minimum driver version, e.g. "11.4" (CUDA). */
  readonly driverVersion: string;
  /** Acceptable hardware targets: CUDA compute capabilities ("8.0") or ROCm gfx names. */
  readonly hardwareTarget: readonly string[];
  /** Bytes of VRAM per device; 0 for any. */
  readonly vram: number;
}

/** The image name Arvados's own jobs use; crunch-run's `process` engine ignores it. */
export const DEFAULT_IMAGE = "arvados/jobs";

const OUTPUT_DIR = "/out";

/**
 * A committed container request that runs `command` in a scratch directory that is also its
 * output. It never reuses an earlier container: a submitted command runs (as `arvados-client
 * diagnostics` submits its test container).
 */
export function containerRequest(spec: SubmitSpec): ContainerRequestCreate {
  return {
    name: truncate(`dispatch-cloud submit: ${shellCommand(spec.command)}`, 250),
    state: "Committed",
    priority: spec.priority,
    container_image: spec.image,
    command: [...spec.command],
    output_path: OUTPUT_DIR,
    cwd: OUTPUT_DIR,
    mounts: { [OUTPUT_DIR]: { kind: "tmp", capacity: spec.scratch } },
    runtime_constraints: {
      vcpus: spec.vcpus,
      ram: spec.ram,
      ...(spec.gpu === null
        ? {}
        : {
            gpu: {
              stack: spec.gpu.stack,
              device_count: spec.gpu.count,
              driver_version: spec.gpu.driverVersion,
              hardware_target: [...spec.gpu.hardwareTarget],
              vram: spec.gpu.vram,
            },
          }),
    },
    scheduling_parameters: { preemptible: spec.preemptible },
    use_existing: false,
  };
}
