import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { instanceSetId, type InstanceType } from "@dispatch-cloud/arvados-types";
import type { CreateRequest, Instance } from "@dispatch-cloud/cloud-driver-api";
import { ManualClock, testInstanceType } from "@dispatch-cloud/cloud-driver-api/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAzureDriver, type AzureInstance, type AzureInstanceSet } from "./index.js";
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  FakeArm,
  fakeCredential,
  recordingLogger,
  startAzurite,
  type Azurite,
} from "./testing/index.js";

const RG = "rg-blob";
const SET_ID = "zzzzz-blob";
const PREFIX = `compute-${SET_ID}-`;

const type: InstanceType = testInstanceType({ ProviderType: "Standard_D2s_v3" });

const vhdRequest: CreateRequest = {
  instanceType: type,
  imageId: "https://images.blob.core.windows.net/images/base.vhd",
  tags: { ArvadosInstanceSetID: SET_ID },
  initCommand: "true",
  publicKey: null,
};

const nameOf = (inst: Instance): string => (inst as AzureInstance).name;

let azurite: Azurite;
let fake: FakeArm;
let set: AzureInstanceSet;
let clock: ManualClock;
let container: ContainerClient;
let containerName = "";

beforeAll(async () => {
  [azurite, fake] = await Promise.all([startAzurite(), FakeArm.start()]);
  fake.setStorageKey(AZURITE_ACCOUNT, AZURITE_KEY);
  containerName = "vhds";
  container = new ContainerClient(
    `${azurite.blobEndpoint}/${containerName}`,
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  );
  await container.create();
  clock = new ManualClock(Date.now());
  set = (await createAzureDriver({ credential: fakeCredential, clock, pollIntervalMs: 1 })({
    parameters: {
      SubscriptionID: "sub-blob",
      ResourceGroup: RG,
      Network: "net",
      Subnet: "subnet",
      StorageAccount: AZURITE_ACCOUNT,
      BlobContainer: containerName,
      ResourceManagerEndpoint: fake.endpoint,
      StorageBlobEndpoint: azurite.blobEndpoint,
    },
    instanceSetId: instanceSetId(SET_ID),
    sharedResourceTags: {},
    logger: recordingLogger([]),
    registry: null,
  })) as AzureInstanceSet;
});

afterAll(async () => {
  await set?.stop();
  await fake?.close();
  await azurite?.stop();
});

async function blobNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const b of container.listBlobsFlat()) names.push(b.name);
  return names.sort();
}

describe("unmanaged VHD images (azurite)", () => {
  it("got the storage key through ListKeys", () => {
    expect(fake.requests).toContain(
      `POST /subscriptions/sub-blob/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${AZURITE_ACCOUNT}/listKeys`,
    );
  });

  it("creates a VM whose OS disk is a VHD blob in the container", async () => {
    const inst = await set.create(vhdRequest);
    const storage = fake.get("virtualMachines", RG, nameOf(inst))!.properties["storageProfile"] as {
      osDisk: unknown;
    };
    const os = storage.osDisk;
    expect(os).toMatchObject({
      osType: "Linux",
      name: `${nameOf(inst)}-os`,
      createOption: "FromImage",
      image: { uri: vhdRequest.imageId },
      vhd: { uri: `${azurite.blobEndpoint}/${containerName}/${nameOf(inst)}-os.vhd` },
    });
    await inst.destroy();
  });

  it("deletes the NIC and the VHD blob when the VM create fails", async () => {
    let vhdName = "";
    fake.onVmCreate = async (name) => {
      // Stand in for Azure having started to write the OS disk.
      vhdName = `${name}-os.vhd`;
      await container.getPageBlobClient(vhdName).create(512);
    };
    fake.failNext(
      { method: "PUT", kind: "virtualMachines" },
      { status: 409, code: "Conflict", message: "boom", async: true },
    );
    try {
      await expect(set.create(vhdRequest)).rejects.toThrow("boom");
    } finally {
      fake.onVmCreate = undefined;
    }
    expect(vhdName).not.toBe("");
    expect(await blobNames()).not.toContain(vhdName);
    expect(
      fake.list("networkInterfaces").filter((n) => n.name === vhdName.replace(/-os\.vhd$/, "-nic")),
    ).toEqual([]);
  });

  it("collects only old, unleased page blobs with the set's prefix", async () => {
    const page = (name: string) => container.getPageBlobClient(name).create(512);
    await page(`${PREFIX}old-os.vhd`);
    await page(`${PREFIX}leased-os.vhd`);
    await page("someone-else-os.vhd");
    await container.getBlockBlobClient(`${PREFIX}block.vhd`).upload("x", 1);
    await container.getBlobClient(`${PREFIX}leased-os.vhd`).getBlobLeaseClient().acquireLease(-1);

    // Too young: nothing goes.
    await set.collectGarbage();
    await set.deletionsIdle();
    expect(await blobNames()).toContain(`${PREFIX}old-os.vhd`);

    await clock.advance(21_000);
    await set.collectGarbage();
    await set.deletionsIdle();
    const left = await blobNames();
    expect(left).not.toContain(`${PREFIX}old-os.vhd`);
    expect(left).toEqual(
      expect.arrayContaining([
        `${PREFIX}leased-os.vhd`,
        "someone-else-os.vhd",
        `${PREFIX}block.vhd`,
      ]),
    );
  });
});
