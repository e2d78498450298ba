import type { InstanceResources, InstanceType } from "@dispatch-cloud/arvados-types";

/**
 * Free resources on one instance while a pass packs containers onto it. Starts as the type's
 * raw figures (the 5% RAM discount is already in each container's need).
 */
export class FreeResources {
  VCPUs: number;
  RAM: number;
  Scratch: number;
  GPUs: number;
  GPUVRAM: number;
  /** Sticky once a 0-VCPU container is placed: all of them together use one VCPU. */
  sharedVCPUUsed = false;

  constructor(r: InstanceResources) {
    this.VCPUs = r.VCPUs;
    this.RAM = r.RAM;
    this.Scratch = r.Scratch;
    this.GPUs = r.GPUs;
    this.GPUVRAM = r.GPUVRAM;
  }

  static ofType(t: InstanceType | undefined): FreeResources {
    if (t === undefined) return FreeResources.none();
    return new FreeResources({
      VCPUs: t.VCPUs,
      RAM: t.RAM,
      Scratch: t.Scratch,
      GPUs: t.GPU.DeviceCount,
      GPUVRAM: t.GPU.VRAM,
    });
  }

  static none(): FreeResources {
    return new FreeResources({ VCPUs: 0, RAM: 0, Scratch: 0, GPUs: 0, GPUVRAM: 0 });
  }

  /** Take a container's needs. VRAM is one pool per instance, though asked per device (as Arvados). */
  subtract(need: InstanceResources): void {
    this.VCPUs -= need.VCPUs;
    this.RAM -= need.RAM;
    this.Scratch -= need.Scratch;
    this.GPUs -= need.GPUs;
    this.GPUVRAM -= need.GPUVRAM;
    if (need.VCPUs === 0) this.sharedVCPUUsed = true;
  }

  accommodates(need: InstanceResources): boolean {
    return (
      this.VCPUs >= need.VCPUs &&
      this.RAM >= need.RAM &&
      this.Scratch >= need.Scratch &&
      this.GPUs >= need.GPUs &&
      this.GPUVRAM >= need.GPUVRAM &&
      this.VCPUs > 0 &&
      (!this.sharedVCPUUsed || this.VCPUs > need.VCPUs)
    );
  }
}
