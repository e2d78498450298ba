import { randomInt } from "node:crypto";
import type { VirtualMachine } from "@azure/arm-compute";
import type { NetworkInterface } from "@azure/arm-network";
import type { TokenCredential } from "@azure/identity";
import type { ContainerClient } from "@azure/storage-blob";
import {
  instanceId,
  type HostKeyVerdict,
  type InstanceId,
  type InstanceType,
  type Logger,
  systemClock,
  type Clock,
} from "@dispatch-cloud/arvados-types";
import {
  errorMessage,
  type CreateRequest,
  type DriverContext,
  type DriverFactory,
  type Instance,
  type InstancePrice,
  type InstanceSet,
  type InstanceTags,
} from "@dispatch-cloud/cloud-driver-api";
import { classifyAzureError } from "./classify.js";
import {
  buildBlobContainer,
  buildClients,
  buildCredential,
  lroOptions,
  type AzureClients,
  type TrustedCertificates,
} from "./clients.js";
import { CREATED_AT_TAG, DanglingResourceCollector } from "./collector.js";
import { AzureDriverError } from "./errors.js";
import { readParameters, type AzureParameters } from "./params.js";

/** Background garbage collection period (blobs, then managed disks). */
export const GC_INTERVAL_MS = 5 * 60_000;

/** Factory options for what must not come from config.yml (tests, embedding). */
export interface AzureDriverOptions {
  /** Used instead of a ClientSecretCredential built from TenantID/ClientID/ClientSecret. */
  readonly credential?: TokenCredential;
  /** The clock for created-at tags, resource ages, Retry-After and the 5-minute GC loop. */
  readonly clock?: Clock;
  /** How often to poll long-running operations; the SDK default when absent. */
  readonly pollIntervalMs?: number;
  /**
   * PEM CA certificates to trust instead of the system's, for the token endpoint and ARM
   * (a private cloud's CA, or a test peer's self-signed certificate).
   */
  readonly caCertificates?: TrustedCertificates;
}

/** `Containers.CloudVMs.Driver: azure`. */
export function createAzureDriver(options: AzureDriverOptions = {}): DriverFactory {
  return async (context: DriverContext): Promise<InstanceSet> => {
    const params = readParameters(context.parameters, {
      credentialInjected: options.credential !== undefined,
    });
    const logger = context.logger;
    const ca = options.caCertificates;
    const clients = buildClients(params, buildCredential(params, options.credential, ca), ca);
    const clock = options.clock ?? systemClock;
    let blob: ContainerClient | undefined;
    let blobServiceUrl = "";
    if (params.StorageAccount !== "" && params.BlobContainer !== "") {
      try {
        const built = await buildBlobContainer(params, clients);
        blob = built.container;
        blobServiceUrl = built.serviceUrl;
      } catch (err) {
        throw classifyAzureError(err, new Date(clock.now()));
      }
    } else if (params.StorageAccount !== "" || params.BlobContainer !== "") {
      logger.error(
        {},
        "Invalid configuration: StorageAccount and BlobContainer must both be empty or both be set",
      );
    }
    return new AzureInstanceSet({
      params,
      clients,
      logger,
      namePrefix: `compute-${context.instanceSetId}-`,
      blob,
      blobServiceUrl,
      clock,
      pollIntervalMs: options.pollIntervalMs,
    });
  };
}

interface SetDeps {
  readonly params: AzureParameters;
  readonly clients: AzureClients;
  readonly logger: Logger;
  readonly namePrefix: string;
  readonly blob: ContainerClient | undefined;
  readonly blobServiceUrl: string;
  readonly clock: Clock;
  readonly pollIntervalMs: number | undefined;
}

const NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

export class AzureInstanceSet implements InstanceSet {
  private readonly p: AzureParameters;
  private readonly log: Logger;
  private readonly collector: DanglingResourceCollector;
  private readonly gcLoop: Promise<void>;
  private readonly stopping = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly d: SetDeps) {
    this.p = d.params;
    this.log = d.logger;
    this.collector = new DanglingResourceCollector(d);
    this.gcLoop = this.runGcLoop();
  }

  /** Every 5 minutes (the first pass 5 minutes after start) until stop(). */
  private async runGcLoop(): Promise<void> {
    const signal = this.stopping.signal;
    for (;;) {
      try {
        await this.d.clock.sleep(GC_INTERVAL_MS, signal);
      } catch {
        return; // stopped
      }
      try {
        await this.collectGarbage(signal);
      } catch (err) {
        if (signal.aborted) return;
        this.log.warn({ error: errorMessage(err) }, "Error collecting garbage");
      }
    }
  }

  /** `compute-<InstanceSetID>-`: every VM, NIC, disk and blob this set owns starts with it. */
  get namePrefix(): string {
    return this.d.namePrefix;
  }

  create(request: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    return this.track(this.doCreate(request, signal));
  }

  instances(_filter: InstanceTags, signal?: AbortSignal): Promise<Instance[]> {
    // The filter is ignored: the dispatcher's tag-filter decorator applies it.
    return this.track(this.doInstances(signal));
  }

  /**
   * Spot VMs draw on their own regional vCPU quota. Arvados answers "" for every type; we keep
   * that for on-demand types and give spot types their own group, as the contract asks.
   */
  instanceQuotaGroup(type: InstanceType): string {
    return type.Preemptible ? "spot" : "";
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    await Promise.allSettled([...this.inFlight, this.gcLoop]);
    await this.collector.stop();
  }

  /**
   * One pass of the background collector: unmanaged VHD blobs (when configured), then managed
   * OS disks. Queues deletions and resolves once listing is done; the deleters carry on.
   */
  async collectGarbage(signal?: AbortSignal): Promise<void> {
    if (this.d.blob !== undefined) {
      await this.collector.collectBlobs(this.d.blob, this.d.clock.now(), signal);
    }
    await this.collector.collectDisks(this.d.clock.now(), signal);
  }

  /** Resolves when every queued deletion has finished (for tests and orderly shutdown). */
  async deletionsIdle(): Promise<void> {
    await this.collector.idle();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const forget = () => this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private lro(signal?: AbortSignal): { updateIntervalInMs?: number; abortSignal?: AbortSignal } {
    return lroOptions(this.d.pollIntervalMs, signal);
  }

  private now(): Date {
    return new Date(this.d.clock.now());
  }

  private classify(err: unknown): Error {
    return classifyAzureError(err, this.now());
  }

  private async doCreate(req: CreateRequest, signal?: AbortSignal): Promise<Instance> {
    const type = req.instanceType;
    if (type.AddedScratch > 0) {
      throw new AzureDriverError(
        "unsupported",
        `cannot create instance type "${type.Name}": driver does not implement non-zero AddedScratch (${type.AddedScratch})`,
      );
    }
    const p = this.p;
    const unmanaged = /^https?:\/\//i.test(req.imageId);
    // Arvados finds these two mistakes after creating the NIC and then deletes it; checking
    // first gives the same result without the extra cloud calls.
    if (unmanaged && this.d.blob === undefined) {
      throw new AzureDriverError(
        "invalid-configuration",
        "Invalid configuration: can't configure unmanaged image URL without StorageAccount and BlobContainer",
      );
    }
    const galleryName = p.SharedImageGalleryName;
    const galleryVersion = p.SharedImageGalleryImageVersion;
    if (!unmanaged && (galleryName === "") !== (galleryVersion === "")) {
      throw new AzureDriverError(
        "invalid-configuration",
        "Invalid configuration: SharedImageGalleryName and SharedImageGalleryImageVersion must both be set or both be empty",
      );
    }

    let suffix = "";
    for (let i = 0; i < 15; i++) suffix += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)];
    const name = this.d.namePrefix + suffix;
    const tags: Record<string, string> = {
      ...req.tags,
      [CREATED_AT_TAG]: this.now().toISOString(),
    };
    const log = this.log.child({ Instance: name, InstanceType: type.Name });
    const sub = encodeURIComponent(p.SubscriptionID);

    const nicName = `${name}-nic`;
    let nic: NetworkInterface;
    try {
      nic = await this.d.clients.network.networkInterfaces.beginCreateOrUpdateAndWait(
        p.ResourceGroup,
        nicName,
        {
          location: p.Location,
          tags,
          ipConfigurations: [
            {
              name: "ip1",
              privateIPAllocationMethod: "Dynamic",
              subnet: {
                id:
                  `/subscriptions/${sub}/resourceGroups/${p.NetworkResourceGroup}` +
                  `/providers/Microsoft.Network/virtualnetworks/${p.Network}/subnets/${p.Subnet}`,
              },
            },
          ],
        },
        this.lro(signal),
      );
    } catch (err) {
      throw this.classify(err);
    }

    let vhdBlobName: string | undefined;
    let storageProfile: VirtualMachine["storageProfile"];
    if (unmanaged) {
      log.warn(
        { ImageID: req.imageId },
        "using deprecated unmanaged VHD image; prefer a managed image",
      );
      vhdBlobName = `${name}-os.vhd`;
      storageProfile = {
        osDisk: {
          osType: "Linux",
          name: `${name}-os`,
          createOption: "FromImage",
          image: { uri: req.imageId },
          vhd: { uri: `${this.d.blobServiceUrl}/${p.BlobContainer}/${vhdBlobName}` },
        },
      };
    } else {
      const rg = `/subscriptions/${sub}/resourceGroups/${p.ImageResourceGroup}/providers/Microsoft.Compute`;
      const id =
        galleryName !== ""
          ? `${rg}/galleries/${galleryName}/images/${req.imageId}/versions/${galleryVersion}`
          : `${rg}/images/${req.imageId}`;
      storageProfile = {
        imageReference: { id },
        // Arvados sets no delete option, so ARM's default (Detach) leaves the disk behind,
        // billed, for the disk collector. Delete removes it with the VM. (An unmanaged VHD is a
        // blob: the blob collector handles it.)
        osDisk: {
          osType: "Linux",
          name: `${name}-os`,
          createOption: "FromImage",
          deleteOption: "Delete",
        },
      };
    }

    const admin = p.AdminUsername;
    const vmParams: VirtualMachine = {
      location: p.Location,
      tags,
      hardwareProfile: { vmSize: type.ProviderType },
      storageProfile,
      // The NIC goes with the VM too, rather than waiting for the next listing to find it.
      networkProfile: {
        networkInterfaces: [{ id: nic.id ?? "", primary: true, deleteOption: "Delete" }],
      },
      osProfile: {
        computerName: name,
        adminUsername: admin,
        customData: Buffer.from(`#!/bin/sh\n${req.initCommand}\n`).toString("base64"),
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          ...(req.publicKey === null
            ? {}
            : {
                ssh: {
                  publicKeys: [
                    { path: `/home/${admin}/.ssh/authorized_keys`, keyData: req.publicKey },
                  ],
                },
              }),
        },
      },
      ...(type.Preemptible
        ? { priority: "Spot", evictionPolicy: "Delete", billingProfile: { maxPrice: -1 } }
        : {}),
    };

    let vm: VirtualMachine;
    try {
      vm = await this.d.clients.compute.virtualMachines.createOrUpdate(
        p.ResourceGroup,
        name,
        vmParams,
        this.lro(signal),
      );
    } catch (err) {
      const classified = this.classify(err);
      log.warn({ error: errorMessage(err) }, "VM create failed; deleting its NIC");
      try {
        await this.d.clients.network.networkInterfaces.beginDeleteAndWait(
          p.ResourceGroup,
          nicName,
          this.lro(),
        );
      } catch (delErr) {
        log.warn(
          { error: errorMessage(delErr), NIC: nicName },
          "Error deleting NIC after failed VM create",
        );
      }
      if (vhdBlobName !== undefined && this.d.blob !== undefined) {
        try {
          await this.d.blob.getBlobClient(vhdBlobName).deleteIfExists();
        } catch (delErr) {
          log.warn(
            { error: errorMessage(delErr), blob: vhdBlobName },
            "Error deleting VHD blob after failed VM create",
          );
        }
      }
      // A managed OS disk ARM may have made goes with the failed VM when that is deleted, or
      // to the disk collector.
      throw classified;
    }
    log.info({}, "Created VM");
    return new AzureInstance(this, vm, nic);
  }

  private async doInstances(signal?: AbortSignal): Promise<Instance[]> {
    const p = this.p;
    const now = this.d.clock.now();
    const attachedNics = new Map<string, NetworkInterface>();
    const pages = this.d.clients.network.networkInterfaces
      .list(p.ResourceGroup, signal === undefined ? {} : { abortSignal: signal })
      .byPage();
    for (let first = true; ; first = false) {
      let page: IteratorResult<NetworkInterface[]>;
      try {
        page = await pages.next();
      } catch (err) {
        if (first) throw this.classify(err);
        // What was gathered so far is still worth returning.
        this.log.warn({ error: errorMessage(err) }, "Error listing nics");
        break;
      }
      if (page.done === true) break;
      for (const nic of page.value) this.collector.considerNic(nic, now, attachedNics);
    }

    const out: Instance[] = [];
    try {
      const vms = this.d.clients.compute.virtualMachines.list(
        p.ResourceGroup,
        signal === undefined ? {} : { abortSignal: signal },
      );
      for await (const vm of vms) {
        const nicId = vm.networkProfile?.networkInterfaces?.[0]?.id;
        const nic = nicId === undefined ? undefined : attachedNics.get(nicId.toLowerCase());
        out.push(new AzureInstance(this, vm, nic));
      }
    } catch (err) {
      throw this.classify(err);
    }
    return out;
  }

  /** @internal */
  async setVmTags(name: string, tags: InstanceTags, signal?: AbortSignal): Promise<VirtualMachine> {
    try {
      // A PATCH of the tags alone; Arvados re-PUTs the VM with only location and tags.
      return await this.d.clients.compute.virtualMachines.update(
        this.p.ResourceGroup,
        name,
        { tags: { ...tags } },
        this.lro(signal),
      );
    } catch (err) {
      throw this.classify(err);
    }
  }

  /** @internal */
  async deleteVm(name: string, signal?: AbortSignal): Promise<void> {
    try {
      // Since API 2024-11-01 a VM whose disks all have deleteOption Delete is force-deleted
      // unless told otherwise; keep the graceful delete Arvados gets.
      await this.d.clients.compute.virtualMachines.delete(this.p.ResourceGroup, name, {
        ...this.lro(signal),
        forceDeletion: false,
      });
    } catch (err) {
      throw this.classify(err);
    }
    this.log.info({ Instance: name }, "Destroyed VM");
  }

  /** @internal */
  get adminUsername(): string {
    return this.p.AdminUsername;
  }
}

/** One VM and (when found) its NIC, as of when it was listed or created. */
export class AzureInstance implements Instance {
  readonly id: InstanceId;
  readonly providerType: string;
  readonly address: string;
  readonly remoteUser: string;
  /** As of when this object was made; setTags does not change it (the contract's snapshot). */
  readonly tags: InstanceTags;
  private vm: VirtualMachine;

  constructor(
    private readonly set: AzureInstanceSet,
    vm: VirtualMachine,
    nic: NetworkInterface | undefined,
  ) {
    this.vm = vm;
    this.id = instanceId(vm.id ?? "");
    this.providerType = vm.hardwareProfile?.vmSize ?? "";
    this.address = nic?.ipConfigurations?.[0]?.privateIPAddress ?? "";
    this.remoteUser = set.adminUsername;
    this.tags = Object.freeze({ ...vm.tags });
  }

  /** The VM name (Arvados's String()). */
  get name(): string {
    return this.vm.name ?? "";
  }

  toString(): string {
    return this.name;
  }

  /**
   * Merges with the VM's tags as last seen by this object (new values win), and remembers the
   * result for the next merge.
   */
  async setTags(tags: InstanceTags, signal?: AbortSignal): Promise<void> {
    const merged = { ...this.vm.tags, ...tags };
    this.vm = await this.set.setVmTags(this.name, merged, signal);
  }

  /** Azure gives no price history; empty. */
  priceHistory(_type: InstanceType): readonly InstancePrice[] {
    return [];
  }

  /**
   * Deletes the VM, and with it the NIC and managed OS disk we created it with; what a VM made
   * by Arvados (no delete options) leaves behind, and VHD blobs, are left to the collectors.
   */
  destroy(signal?: AbortSignal): Promise<void> {
    return this.set.deleteVm(this.name, signal);
  }

  verifyHostKey(): Promise<HostKeyVerdict> {
    return Promise.resolve({ kind: "not-implemented" });
  }
}
