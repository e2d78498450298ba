import type { CreateRequest } from "@dispatch-cloud/cloud-driver-api";
import type { GceInstanceResource } from "./api.js";
import { INSTANCE_SET_LABEL, createMetadata } from "./metadata.js";
import { regionOf, type GceConfig } from "./params.js";

const GiB = 2 ** 30;
/** Every local SSD partition is this big; AddedScratch is rounded up to whole ones. */
export const LOCAL_SSD_BYTES = 375 * GiB;
/** The device name of a persistent scratch disk: /dev/disk/by-id/google-arvados-scratch. */
export const SCRATCH_DEVICE_NAME = "arvados-scratch";

/**
 * An image as the API wants it (`projects/P/global/images/N` or `…/images/family/F`): a bare
 * name or `family/F` is in the driver's project; a full URL or `projects/…` path is kept.
 */
export function sourceImagePath(imageId: string, project: string): string {
  const at = imageId.indexOf("projects/");
  if (at >= 0 && (at === 0 || imageId.startsWith("http"))) return imageId.slice(at);
  if (imageId.startsWith("global/images/")) return `projects/${project}/${imageId}`;
  return `projects/${project}/global/images/${imageId}`;
}

/** A name in the project's global networks, or a path/URL as given. */
function networkPath(network: string): string {
  return network.includes("/") ? network : `global/networks/${network}`;
}

/** A name in the zone's region, or a path/URL as given. */
function subnetworkPath(subnetwork: string, zone: string): string {
  return subnetwork.includes("/")
    ? subnetwork
    : `regions/${regionOf(zone)}/subnetworks/${subnetwork}`;
}

export interface ResourceArgs {
  readonly config: GceConfig;
  readonly zone: string;
  readonly name: string;
  readonly request: CreateRequest;
  /** The instance set's label value. */
  readonly setLabel: string;
  /** Boot disk size to ask for; undefined lets GCE use the image's size. */
  readonly bootDiskSizeGb: number | undefined;
}

/**
 * The body of `instances.insert` for one VM: no external address (the dispatcher reaches the
 * private one), tags in metadata, the init command as the startup script, preemptible types
 * as Spot VMs that are deleted when preempted.
 */
export function instanceResource(a: ResourceArgs): GceInstanceResource {
  const { config, zone, request } = a;
  const type = request.instanceType;
  const labels = { ...config.labels, [INSTANCE_SET_LABEL]: a.setLabel };
  const diskType = (t: string): string => `zones/${zone}/diskTypes/${t}`;
  const disks: NonNullable<GceInstanceResource["disks"]> = [
    {
      boot: true,
      autoDelete: true,
      initializeParams: {
        sourceImage: sourceImagePath(request.imageId, config.project),
        diskType: diskType(config.diskType),
        labels,
        ...(a.bootDiskSizeGb === undefined ? {} : { diskSizeGb: String(a.bootDiskSizeGb) }),
      },
    },
  ];
  if (type.AddedScratch > 0) {
    if (config.scratchDiskType === "local-ssd") {
      const count = Math.ceil(type.AddedScratch / LOCAL_SSD_BYTES);
      for (let i = 0; i < count; i++) {
        disks.push({
          type: "SCRATCH",
          autoDelete: true,
          interface: "NVME",
          initializeParams: { diskType: diskType("local-ssd") },
        });
      }
    } else {
      disks.push({
        type: "PERSISTENT",
        autoDelete: true,
        deviceName: SCRATCH_DEVICE_NAME,
        initializeParams: {
          diskType: diskType(config.scratchDiskType),
          diskSizeGb: String(Math.ceil(type.AddedScratch / GiB)),
          labels,
        },
      });
    }
  }
  const scheduling: NonNullable<GceInstanceResource["scheduling"]> = type.Preemptible
    ? {
        provisioningModel: "SPOT",
        instanceTerminationAction: "DELETE",
        automaticRestart: false,
        onHostMaintenance: "TERMINATE",
      }
    : // VMs with GPUs cannot live-migrate.
      type.GPU.DeviceCount > 0
      ? { onHostMaintenance: "TERMINATE", automaticRestart: true }
      : {};
  return {
    name: a.name,
    machineType: `zones/${zone}/machineTypes/${type.ProviderType}`,
    labels,
    metadata: {
      items: createMetadata(
        request.tags,
        request.initCommand,
        config.adminUsername,
        request.publicKey,
      ),
    },
    disks,
    networkInterfaces: [
      {
        ...(config.network === "" ? {} : { network: networkPath(config.network) }),
        ...(config.subnetwork === ""
          ? {}
          : { subnetwork: subnetworkPath(config.subnetwork, zone) }),
      },
    ],
    scheduling,
    ...(config.serviceAccount === ""
      ? {}
      : {
          serviceAccounts: [
            { email: config.serviceAccount, scopes: [...config.serviceAccountScopes] },
          ],
        }),
    ...(config.networkTags.length === 0 ? {} : { tags: { items: [...config.networkTags] } }),
  };
}
