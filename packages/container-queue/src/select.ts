import type { InstanceResources, InstanceType } from "@dispatch-cloud/arvados-types";
import { ContainerQueueError, type QueueErrorKind } from "./errors.js";
import { resourcesNeeded, type ResourceInputs } from "./resources.js";
import type { SelectionConfig } from "./types.js";

export interface SelectionInputs extends ResourceInputs {
  readonly runtime_constraints: ResourceInputs["runtime_constraints"] & {
    readonly gpu?: {
      readonly stack?: string;
      readonly driver_version?: string;
      readonly hardware_target?: readonly string[];
      readonly device_count?: number;
      readonly vram?: number;
    };
  };
  readonly scheduling_parameters?: { readonly preemptible?: boolean };
}

export type Selection =
  | {
      readonly ok: true;
      readonly types: readonly InstanceType[];
      readonly resources: InstanceResources;
    }
  | {
      readonly ok: false;
      readonly error: ContainerQueueError;
      readonly resources: InstanceResources;
    };

/** Cheapest first; among equal prices bigger first; then by name, so the order is total. */
export function compareTypes(a: InstanceType, b: InstanceType): number {
  return (
    a.Price - b.Price ||
    b.RAM - a.RAM ||
    b.VCPUs - a.VCPUs ||
    b.Scratch - a.Scratch ||
    (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0)
  );
}

/** Sorts the configured types once, for many selections. */
export function sortTypes(types: readonly InstanceType[]): InstanceType[] {
  return [...types].sort(compareTypes);
}

const floatRe = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** a < b as decimal numbers ("11.4"); undefined if either does not parse. */
function versionLess(a: string, b: string): boolean | undefined {
  if (!floatRe.test(a) || !floatRe.test(b)) return undefined;
  return Number(a) < Number(b);
}

/** No type can run the container, for the reason the user will read. */
function refusal(resources: InstanceResources, kind: QueueErrorKind, message: string): Selection {
  return { ok: false, resources, error: new ContainerQueueError(kind, message) };
}

/**
 * The instance types that can run a container, cheapest first, cut where the price exceeds
 * the cheapest × MaximumPriceFactor. `sortedTypes` must be in compareTypes order (sortTypes).
 * We walk the types in that order rather than Arvados's random map order, so a Price of 0
 * gives the same answer every time.
 */
export function chooseInstanceTypes(
  ctr: SelectionInputs,
  cfg: Omit<SelectionConfig, "instanceTypes">,
  sortedTypes: readonly InstanceType[],
): Selection {
  const resources = resourcesNeeded(ctr, cfg);
  if (sortedTypes.length === 0) {
    return refusal(
      resources,
      "no-instance-types",
      "site configuration does not list any instance types",
    );
  }
  const gpu = ctr.runtime_constraints.gpu ?? {};
  const stack = gpu.stack ?? "";
  const targets = gpu.hardware_target ?? [];
  const devices = gpu.device_count ?? 0;
  const vram = gpu.vram ?? 0;
  const driver = gpu.driver_version ?? "";
  const preemptible = ctr.scheduling_parameters?.preemptible === true;
  if (stack !== "" && stack !== "cuda" && stack !== "rocm") {
    return refusal(
      resources,
      "invalid-gpu-stack",
      `Invalid GPU stack "${stack}", expected to be blank or one of 'cuda' or 'rocm'`,
    );
  }
  const factor = Math.max(cfg.maximumPriceFactor, 1);
  let maxPrice = 0;
  const accepted: InstanceType[] = [];
  for (const it of sortedTypes) {
    if (maxPrice > 0 && it.Price > maxPrice) continue;
    if (it.Scratch < resources.Scratch) continue;
    if (it.RAM < resources.RAM) continue;
    if (it.VCPUs < resources.VCPUs) continue;
    if (it.Preemptible !== preemptible) continue;
    if (it.GPU.Stack !== stack) continue;
    if (it.GPU.DeviceCount < devices) continue;
    if (it.GPU.VRAM < vram) continue;
    if (devices > 0) {
      const low = versionLess(it.GPU.DriverVersion, driver);
      if (low !== false) continue;
      if (!capable(stack, it.GPU.HardwareTarget, targets)) continue;
    }
    accepted.push(it);
    const newmax = it.Price * factor;
    if (maxPrice === 0 || newmax < maxPrice) maxPrice = newmax;
  }
  if (accepted.length === 0) {
    return refusal(
      resources,
      "unsatisfiable",
      "constraints not satisfiable by any configured instance type",
    );
  }
  // accepted is already in compareTypes order; keep the cheapest, cut at the first too dear.
  let end = accepted.length;
  for (let i = 1; i < accepted.length; i++) {
    if (accepted[i]!.Price > maxPrice) {
      end = i;
      break;
    }
  }
  return { ok: true, resources, types: accepted.slice(0, end) };
}

function capable(stack: string, have: string, want: readonly string[]): boolean {
  if (stack === "") return true;
  if (stack === "rocm") return want.includes(have);
  // cuda
  if (want.length > 1) return want.includes(have);
  if (want.length === 1) return versionLess(have, want[0]!) === false;
  return false;
}
