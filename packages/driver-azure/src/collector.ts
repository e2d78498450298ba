import type { Disk } from "@azure/arm-compute";
import type { NetworkInterface } from "@azure/arm-network";
import type { ContainerClient } from "@azure/storage-blob";
import type { Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";
import { lroOptions, type AzureClients } from "./clients.js";
import { BoundedDeleter } from "./deleter.js";
import type { AzureParameters } from "./params.js";

/** Concurrent deletions per resource kind (NICs, blobs, disks). */
export const DELETERS_PER_KIND = 4;
/** Tag the driver adds to VMs and NICs so dangling NICs can be aged. */
export const CREATED_AT_TAG = "created-at";

export interface CollectorDeps {
  readonly params: AzureParameters;
  readonly clients: AzureClients;
  readonly logger: Logger;
  /** `compute-<InstanceSetID>-`: only resources named with it are ever deleted. */
  readonly namePrefix: string;
  readonly pollIntervalMs: number | undefined;
}

/**
 * Finds what VMs of this instance set left behind — NICs, managed OS disks, VHD blobs — and
 * deletes each once it is unattached and older than DeleteDanglingResourcesAfter, at most
 * DELETERS_PER_KIND at a time per kind. Nothing without the set's name prefix, and nothing in
 * use, is ever touched.
 */
export class DanglingResourceCollector {
  private readonly nics: BoundedDeleter;
  private readonly blobs: BoundedDeleter;
  private readonly disks: BoundedDeleter;

  constructor(private readonly d: CollectorDeps) {
    const onError = (kind: string) => (key: string, err: unknown) =>
      d.logger.warn({ error: errorMessage(err), [kind]: key }, `Error deleting ${kind}`);
    this.nics = new BoundedDeleter(DELETERS_PER_KIND, onError("NIC"));
    this.blobs = new BoundedDeleter(DELETERS_PER_KIND, onError("blob"));
    this.disks = new BoundedDeleter(DELETERS_PER_KIND, onError("disk"));
  }

  /** Resolves when every queued deletion has finished. */
  async idle(): Promise<void> {
    await Promise.all([this.nics.idle(), this.blobs.idle(), this.disks.idle()]);
  }

  /** Drops queued deletions and waits for those in flight. */
  async stop(): Promise<void> {
    await Promise.all([this.nics.stop(), this.blobs.stop(), this.disks.stop()]);
  }

  /**
   * For each NIC of a listing: an attached one goes into `attached` by its (lower-cased) id; a
   * dangling one of ours with an old enough created-at tag is queued for deletion.
   */
  considerNic(nic: NetworkInterface, now: number, attached: Map<string, NetworkInterface>): void {
    const name = nic.name ?? "";
    if (!name.startsWith(this.d.namePrefix) || nic.id === undefined) return;
    if (nic.virtualMachine?.id !== undefined) {
      // ARM ids are case-insensitive and not always returned with the same case.
      attached.set(nic.id.toLowerCase(), nic);
      return;
    }
    const createdAt = Date.parse(nic.tags?.[CREATED_AT_TAG] ?? "");
    const maxAge = this.d.params.DeleteDanglingResourcesAfter;
    if (Number.isNaN(createdAt) || now - createdAt <= maxAge) return;
    const rg = this.d.params.ResourceGroup;
    const queued = this.nics.enqueue(name, async (signal) => {
      await this.d.clients.network.networkInterfaces.beginDeleteAndWait(
        rg,
        name,
        lroOptions(this.d.pollIntervalMs, signal),
      );
      this.d.logger.info({ NIC: name }, "Deleted NIC");
    });
    if (queued) {
      this.d.logger.info(
        { NIC: name, maxAgeMs: maxAge },
        `Will delete ${name} because it is older than ${maxAge / 1000}s`,
      );
    }
  }

  /** Queues our unleased page blobs (unmanaged OS disks) older than the grace period. */
  async collectBlobs(container: ContainerClient, now: number, signal?: AbortSignal): Promise<void> {
    const maxAge = this.d.params.DeleteDanglingResourcesAfter;
    const pages = container
      .listBlobsFlat({
        prefix: this.d.namePrefix,
        ...(signal === undefined ? {} : { abortSignal: signal }),
      })
      .byPage();
    for await (const page of pages) {
      for (const b of page.segment.blobItems) {
        const props = b.properties;
        if (
          props.blobType !== "PageBlob" ||
          props.leaseState !== "available" ||
          props.leaseStatus !== "unlocked" ||
          now - props.lastModified.getTime() <= maxAge
        ) {
          continue;
        }
        const queued = this.blobs.enqueue(b.name, async (s) => {
          await container.getBlobClient(b.name).deleteIfExists({ abortSignal: s });
          this.d.logger.info({ blob: b.name }, "Deleted blob");
        });
        if (queued)
          this.d.logger.info(
            { blob: b.name },
            `Will delete blob ${b.name} because it is older than ${maxAge / 1000}s`,
          );
      }
    }
  }

  /**
   * Queues our unattached managed OS disks older than the grace period.
   *
   * Arvados looks only in ImageResourceGroup, but Azure puts a VM's OS disk in the VM's own
   * resource group, so with a separate image group every destroyed VM's disk was left behind.
   * We look in ResourceGroup, and in ImageResourceGroup too when it differs (disks left there
   * by other dispatchers). VMs we create delete their disk themselves (deleteOption); this
   * collects those of VMs created without it.
   */
  async collectDisks(now: number, signal?: AbortSignal): Promise<void> {
    const p = this.d.params;
    const groups = [p.ResourceGroup];
    if (p.ImageResourceGroup.toLowerCase() !== p.ResourceGroup.toLowerCase()) {
      groups.push(p.ImageResourceGroup);
    }
    const maxAge = p.DeleteDanglingResourcesAfter;
    for (const rg of groups) {
      const disks = this.d.clients.compute.disks.listByResourceGroup(
        rg,
        signal === undefined ? {} : { abortSignal: signal },
      );
      for await (const disk of disks) {
        if (!this.isDanglingDisk(disk, now, maxAge)) continue;
        const name = disk.name!;
        const queued = this.disks.enqueue(`${rg}/${name}`.toLowerCase(), async (s) => {
          await this.d.clients.compute.disks.delete(rg, name, lroOptions(this.d.pollIntervalMs, s));
          this.d.logger.info({ disk: name, ResourceGroup: rg }, "Deleted disk");
        });
        if (queued)
          this.d.logger.info(
            { disk: name, ResourceGroup: rg },
            `Will delete disk ${name} because it is older than ${maxAge / 1000}s`,
          );
      }
    }
  }

  /** Ours (prefix and `-os`), detached from any VM, and older than the grace period. */
  private isDanglingDisk(disk: Disk, now: number, maxAge: number): boolean {
    const name = disk.name ?? "";
    return (
      disk.diskState === "Unattached" &&
      (disk.managedBy ?? "") === "" &&
      name.startsWith(this.d.namePrefix) &&
      name.endsWith("-os") &&
      disk.timeCreated !== undefined &&
      disk.timeCreated.getTime() < now - maxAge
    );
  }
}
