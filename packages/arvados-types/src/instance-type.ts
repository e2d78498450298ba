/** GPU capabilities of an instance type (`InstanceTypes.<name>.GPU` in config.yml). */
export interface GpuFeatures {
  /** "cuda", "rocm", or "" for none (config validation allows no other value). */
  readonly Stack: string;
  readonly DriverVersion: string;
  readonly HardwareTarget: string;
  readonly DeviceCount: number;
  /** Bytes of memory per device. */
  readonly VRAM: number;
}

/**
 * One configured instance type, with Arvados's field names; config produces it, every other
 * layer reads it. Sizes are bytes, Price is the hourly price in the cluster's currency.
 */
export interface InstanceType {
  /** The key of the type in `InstanceTypes`; written in the InstanceType tag. */
  readonly Name: string;
  /** The provider's type name (e.g. `m5.large`). */
  readonly ProviderType: string;
  readonly VCPUs: number;
  readonly RAM: number;
  readonly IncludedScratch: number;
  readonly AddedScratch: number;
  /** Always IncludedScratch + AddedScratch. */
  readonly Scratch: number;
  readonly Price: number;
  readonly Preemptible: boolean;
  readonly GPU: GpuFeatures;
}

/**
 * An instance type as Go serialises it (the management API's `instance_types`, crunch-run's
 * `InstanceType` document): Go's field order, without `Name` and `Scratch`, which Go computes
 * and does not serialise.
 */
export function instanceTypeJson(
  t: Omit<InstanceType, "Name" | "Scratch">,
): Record<string, unknown> {
  return {
    ProviderType: t.ProviderType,
    VCPUs: t.VCPUs,
    RAM: t.RAM,
    IncludedScratch: t.IncludedScratch,
    AddedScratch: t.AddedScratch,
    Price: t.Price,
    Preemptible: t.Preemptible,
    GPU: {
      Stack: t.GPU.Stack,
      DriverVersion: t.GPU.DriverVersion,
      HardwareTarget: t.GPU.HardwareTarget,
      DeviceCount: t.GPU.DeviceCount,
      VRAM: t.GPU.VRAM,
    },
  };
}
