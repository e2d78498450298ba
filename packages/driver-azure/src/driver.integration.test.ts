import type { TokenCredential } from "@azure/identity";
import { instanceSetId, type InstanceType } from "@dispatch-cloud/arvados-types";
import {
  QuotaError,
  RateLimitError,
  type CreateRequest,
  type Instance,
} from "@dispatch-cloud/cloud-driver-api";
import { ManualClock, testInstanceType } from "@dispatch-cloud/cloud-driver-api/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  AzureDriverError,
  GC_INTERVAL_MS,
  createAzureDriver,
  type AzureInstance,
  type AzureInstanceSet,
} from "./index.js";
import { FakeArm, fakeCredential, recordingLogger, type LogLine } from "./testing/index.js";

const SUB = "sub-1";
const RG = "rg1";
const SET_ID = "zzzzz-test";
const PREFIX = `compute-${SET_ID}-`;
const START = Date.parse("2025-01-01T00:00:00Z");

function instanceType(overrides: Partial<InstanceType> = {}): InstanceType {
  return testInstanceType({ ProviderType: "Standard_D2s_v3", ...overrides });
}

function request(overrides: Partial<CreateRequest> = {}): CreateRequest {
  return {
    instanceType: instanceType(),
    imageId: "image-1",
    tags: { ArvadosInstanceSetID: SET_ID, ArvadosInstanceType: "small" },
    initCommand: "echo hello",
    publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample test@key",
    ...overrides,
  };
}

interface Harness {
  fake: FakeArm;
  clock: ManualClock;
  set: AzureInstanceSet;
  logs: LogLine[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).toReversed()) await c();
});

async function setup(
  parameters: Record<string, unknown> = {},
  fakeArm?: FakeArm,
): Promise<Harness> {
  const clock = new ManualClock(START);
  const fake = fakeArm ?? (await FakeArm.start({ now: () => clock.now() }));
  if (fakeArm === undefined) cleanups.push(() => fake.close());
  const logs: LogLine[] = [];
  const set = (await createAzureDriver({ credential: fakeCredential, clock, pollIntervalMs: 1 })({
    parameters: {
      SubscriptionID: SUB,
      ResourceGroup: RG,
      Network: "net1",
      Subnet: "subnet1",
      ResourceManagerEndpoint: fake.endpoint,
      ...parameters,
    },
    instanceSetId: instanceSetId(SET_ID),
    sharedResourceTags: {},
    logger: recordingLogger(logs),
    registry: null,
  })) as AzureInstanceSet;
  cleanups.push(() => set.stop());
  return { fake, clock, set, logs };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function vmProps(h: Harness, name: string): Json {
  return h.fake.get("virtualMachines", RG, name)!.properties;
}

const nameOf = (inst: Instance): string => (inst as AzureInstance).name;

describe("create", () => {
  it("creates a NIC and a VM from a managed image", async () => {
    const h = await setup();
    const inst = await h.set.create(request());
    const name = nameOf(inst);
    expect(name).toMatch(new RegExp(`^${PREFIX}[a-z0-9]{15}$`));

    const nic = h.fake.get("networkInterfaces", RG, `${name}-nic`)!;
    expect(nic.location).toBe("centralus");
    expect(nic.tags["created-at"]).toBe(new Date(START).toISOString());
    const ipConfig = (nic.properties as Json)["ipConfigurations"][0];
    expect(ipConfig.name).toBe("ip1");
    expect(ipConfig.properties.privateIPAllocationMethod).toBe("Dynamic");
    expect(ipConfig.properties.subnet.id).toBe(
      `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualnetworks/net1/subnets/subnet1`,
    );

    const vm = h.fake.get("virtualMachines", RG, name)!;
    expect(vm.tags).toEqual({ ...request().tags, "created-at": new Date(START).toISOString() });
    const p = vm.properties as Json;
    expect(p["hardwareProfile"].vmSize).toBe("Standard_D2s_v3");
    expect(p["storageProfile"].imageReference.id).toBe(
      `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/images/image-1`,
    );
    expect(p["storageProfile"].osDisk).toMatchObject({
      osType: "Linux",
      name: `${name}-os`,
      createOption: "FromImage",
      deleteOption: "Delete",
    });
    expect(p["networkProfile"].networkInterfaces).toEqual([
      { id: nic.id, properties: { primary: true, deleteOption: "Delete" } },
    ]);
    // ARM made the OS disk beside the VM, attached to it.
    const disk = h.fake.get("disks", RG, `${name}-os`)!;
    expect(disk.managedBy).toBe(vm.id);
    expect(disk.properties["diskState"]).toBe("Attached");
    expect(p["osProfile"].computerName).toBe(name);
    expect(p["osProfile"].adminUsername).toBe("crunch");
    expect(Buffer.from(p["osProfile"].customData, "base64").toString()).toBe(
      "#!/bin/sh\necho hello\n",
    );
    expect(p["osProfile"].linuxConfiguration.disablePasswordAuthentication).toBe(true);
    expect(p["osProfile"].linuxConfiguration.ssh.publicKeys).toEqual([
      { path: "/home/crunch/.ssh/authorized_keys", keyData: request().publicKey },
    ]);
    expect(p["priority"]).toBeUndefined();
    expect(p["evictionPolicy"]).toBeUndefined();

    expect(inst.id).toBe(vm.id);
    expect(inst.providerType).toBe("Standard_D2s_v3");
    expect(inst.address).toMatch(/^127\.77\.\d+\.\d+$/);
    expect(inst.remoteUser).toBe("crunch");
    expect(inst.tags["ArvadosInstanceType"]).toBe("small");
    expect(inst.priceHistory(instanceType())).toEqual([]);
    expect(
      await inst.verifyHostKey(Buffer.alloc(0), { run: () => Promise.reject(new Error("unused")) }),
    ).toEqual({
      kind: "not-implemented",
    });
    // Create waited for both long-running operations to finish.
    expect(p["provisioningState"]).toBe("Succeeded");
    expect(
      h.fake.requests.filter((r) => r.startsWith("GET /fakeOperations/")).length,
    ).toBeGreaterThanOrEqual(2);
  });

  it("uses a shared gallery image version in ImageResourceGroup, and AdminUsername", async () => {
    const h = await setup({
      SharedImageGalleryName: "gal",
      SharedImageGalleryImageVersion: "1.2.3",
      ImageResourceGroup: "images",
      NetworkResourceGroup: "netrg",
      AdminUsername: "arvados",
    });
    const inst = await h.set.create(request({ publicKey: null }));
    const p = vmProps(h, nameOf(inst));
    expect(p["storageProfile"].imageReference.id).toBe(
      `/subscriptions/${SUB}/resourceGroups/images/providers/Microsoft.Compute/galleries/gal/images/image-1/versions/1.2.3`,
    );
    expect(p["osProfile"].adminUsername).toBe("arvados");
    expect(p["osProfile"].linuxConfiguration.ssh).toBeUndefined();
    expect(inst.remoteUser).toBe("arvados");
    const nic = h.fake.get("networkInterfaces", RG, `${nameOf(inst)}-nic`)!;
    expect((nic.properties as Json)["ipConfigurations"][0].properties.subnet.id).toContain(
      "/resourceGroups/netrg/",
    );
  });

  it.each([[{ SharedImageGalleryName: "gal" }], [{ SharedImageGalleryImageVersion: "1.0.0" }]])(
    "refuses half-given gallery settings %j without leaving resources",
    async (params) => {
      const h = await setup(params);
      const err = await h.set.create(request()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AzureDriverError);
      expect((err as Error).message).toBe(
        "Invalid configuration: SharedImageGalleryName and SharedImageGalleryImageVersion must both be set or both be empty",
      );
      expect(h.fake.list("networkInterfaces")).toEqual([]);
      expect(h.fake.list("virtualMachines")).toEqual([]);
    },
  );

  it("refuses a VHD image URL without StorageAccount and BlobContainer", async () => {
    const h = await setup({ StorageAccount: "acct" });
    expect(
      h.logs.some(
        (l) => l.level === "error" && l.msg.includes("StorageAccount and BlobContainer must both"),
      ),
    ).toBe(true);
    await expect(
      h.set.create(request({ imageId: "https://acct.blob.core.windows.net/images/base.vhd" })),
    ).rejects.toThrow(
      "Invalid configuration: can't configure unmanaged image URL without StorageAccount and BlobContainer",
    );
    expect(h.fake.list("networkInterfaces")).toEqual([]);
  });

  it("asks for a spot VM with eviction Delete and max price -1 for preemptible types", async () => {
    const h = await setup();
    const inst = await h.set.create(
      request({ instanceType: instanceType({ Name: "small.preemptible", Preemptible: true }) }),
    );
    const p = vmProps(h, nameOf(inst));
    expect(p["priority"]).toBe("Spot");
    expect(p["evictionPolicy"]).toBe("Delete");
    expect(p["billingProfile"]).toEqual({ maxPrice: -1 });
  });

  it("refuses AddedScratch with the Arvados message", async () => {
    const h = await setup();
    await expect(
      h.set.create(
        request({ instanceType: instanceType({ Name: "big", AddedScratch: 100_000_000_000 }) }),
      ),
    ).rejects.toThrow(
      'cannot create instance type "big": driver does not implement non-zero AddedScratch (100000000000)',
    );
    expect(h.fake.requests).toEqual([]);
  });

  it.each([false, true])(
    "deletes the NIC when the VM create fails (async=%s) and classifies the error",
    async (async) => {
      const h = await setup();
      h.fake.failNext(
        { method: "PUT", kind: "virtualMachines" },
        {
          status: 409,
          code: "OperationNotAllowed",
          message:
            "Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota.",
          async,
        },
      );
      const err = await h.set.create(request()).catch((e: unknown) => e);
      expect(QuotaError.is(err)).toBe(true);
      expect((err as Error).message).toContain("exceeding approved standardDSv3Family Cores quota");
      expect(h.fake.list("networkInterfaces")).toEqual([]);
      expect(h.fake.list("virtualMachines")).toEqual([]);
      expect(h.fake.deleted.some((id) => id.endsWith("-nic"))).toBe(true);
    },
  );

  it("returns a RateLimitError when the NIC create is throttled, and creates nothing", async () => {
    const h = await setup();
    h.fake.failNext(
      { method: "PUT", kind: "networkInterfaces" },
      { status: 429, code: "TooManyRequests", message: "throttled", retryAfter: "7" },
    );
    const err = await h.set.create(request()).catch((e: unknown) => e);
    expect(RateLimitError.is(err)).toBe(true);
    expect((err as RateLimitError).earliestRetry.getTime()).toBe(START + 7000);
    expect(h.fake.list("virtualMachines")).toEqual([]);
  });
});

describe("instances", () => {
  it("joins VMs with their NICs across pages", async () => {
    const h = await setup();
    const created = [];
    for (let i = 0; i < 5; i++) created.push(await h.set.create(request()));
    const listed = await h.set.instances({ ArvadosInstanceSetID: SET_ID });
    expect(listed.map((i) => i.id).sort()).toEqual(created.map((i) => i.id).sort());
    for (const inst of listed) {
      const orig = created.find((c) => c.id === inst.id)!;
      expect(inst.address).toBe(orig.address);
      expect(inst.address).not.toBe("");
      expect(inst.providerType).toBe("Standard_D2s_v3");
      expect(inst.tags["ArvadosInstanceSetID"]).toBe(SET_ID);
    }
    // pageSize 2: three pages each of NICs and VMs.
    expect(h.fake.requests.filter((r) => r.endsWith("/networkInterfaces")).length).toBe(3);
    expect(h.fake.requests.filter((r) => r.endsWith("/virtualMachines")).length).toBe(3);
  });

  it("returns the classified error when the first page fails", async () => {
    const h = await setup();
    h.fake.failNext(
      { method: "GET", kind: "networkInterfaces" },
      { status: 429, code: "TooManyRequests", message: "slow down" },
    );
    const err = await h.set.instances({}).catch((e: unknown) => e);
    expect(RateLimitError.is(err)).toBe(true);
    expect((err as RateLimitError).earliestRetry.getTime()).toBe(START + 20_000);

    h.fake.failNext(
      { method: "GET", kind: "virtualMachines" },
      {
        status: 429,
        code: "TooManyRequests",
        message: "slow",
        retryAfter: "Wed, 01 Jan 2025 00:01:00 GMT",
      },
    );
    const err2 = await h.set.instances({}).catch((e: unknown) => e);
    expect((err2 as RateLimitError).earliestRetry.toISOString()).toBe("2025-01-01T00:01:00.000Z");
  });

  it("keeps what it gathered when a later NIC page fails", async () => {
    const h = await setup();
    const created = [];
    for (let i = 0; i < 3; i++) created.push(await h.set.create(request()));
    h.fake.failNext(
      { method: "GET", kind: "networkInterfaces", laterPage: true },
      { status: 400, code: "BadRequest", message: "bad page" },
    );
    const listed = await h.set.instances({});
    expect(listed.map((i) => i.id).sort()).toEqual(created.map((i) => i.id).sort());
    // The NIC on the failed page is unknown, so that VM's address is not known yet.
    expect(listed.filter((i) => i.address === "")).toHaveLength(1);
    expect(h.logs.some((l) => l.msg === "Error listing nics")).toBe(true);
  });

  it("deletes dangling NICs only once they are older than DeleteDanglingResourcesAfter", async () => {
    const h = await setup({ DeleteDanglingResourcesAfter: "1m" });
    const at = (ms: number) => ({ "created-at": new Date(START - ms).toISOString() });
    h.fake.addNic(SUB, RG, `${PREFIX}old-nic`, at(61_000));
    h.fake.addNic(SUB, RG, `${PREFIX}young-nic`, at(59_000));
    h.fake.addNic(SUB, RG, `${PREFIX}untagged-nic`, {});
    h.fake.addNic(SUB, RG, "someone-elses-nic", at(3_600_000));
    const attached = await h.set.create(request());

    await h.set.instances({});
    await h.set.deletionsIdle();
    const names = () =>
      h.fake
        .list("networkInterfaces")
        .map((n) => n.name)
        .sort();
    expect(names()).toEqual(
      [
        `${PREFIX}untagged-nic`,
        `${PREFIX}young-nic`,
        `${nameOf(attached)}-nic`,
        "someone-elses-nic",
      ].sort(),
    );
    expect(
      h.logs.some((l) =>
        l.msg.startsWith(`Will delete ${PREFIX}old-nic because it is older than 60s`),
      ),
    ).toBe(true);

    await h.clock.advance(2_000);
    await h.set.instances({});
    await h.set.deletionsIdle();
    expect(names()).toEqual(
      [`${PREFIX}untagged-nic`, `${nameOf(attached)}-nic`, "someone-elses-nic"].sort(),
    );
  });

  it("deletes at most 4 dangling NICs at a time", async () => {
    const h = await setup();
    for (let i = 0; i < 10; i++)
      h.fake.addNic(SUB, RG, `${PREFIX}n${i}-nic`, { "created-at": "2024-01-01T00:00:00Z" });
    const hold = h.fake.hold({ method: "DELETE", kind: "networkInterfaces" });
    await h.set.instances({});
    await hold.untilWaiting(4);
    // A second listing while the deletes are stuck queues nothing twice.
    await h.set.instances({});
    expect(hold.waiting).toBe(4);
    hold.release();
    await h.set.deletionsIdle();
    expect(hold.maxWaiting).toBe(4);
    expect(h.fake.list("networkInterfaces")).toEqual([]);
    expect(h.fake.requests.filter((r) => r.startsWith("DELETE")).length).toBe(10);
  });
});

describe("instance methods", () => {
  it("setTags merges with the VM's tags; the object stays a snapshot", async () => {
    const h = await setup();
    const inst = await h.set.create(request());
    await inst.setTags({ ArvadosIdleBehavior: "hold", ArvadosInstanceType: "other" });
    const want = {
      ...request().tags,
      "created-at": new Date(START).toISOString(),
      ArvadosIdleBehavior: "hold",
      ArvadosInstanceType: "other",
    };
    expect(h.fake.get("virtualMachines", RG, nameOf(inst))!.tags).toEqual(want);
    expect(inst.tags["ArvadosIdleBehavior"]).toBeUndefined();
    // A second call merges with what the first one stored.
    await inst.setTags({ extra: "1" });
    expect(h.fake.get("virtualMachines", RG, nameOf(inst))!.tags).toEqual({
      ...want,
      extra: "1",
    });
    const [listed] = await h.set.instances({});
    expect(listed?.tags).toEqual({ ...want, extra: "1" });
    expect(h.fake.requests.filter((r) => r.startsWith("PATCH "))).toHaveLength(2);
  });

  it("destroy deletes the VM with its NIC and OS disk, without forcing", async () => {
    const h = await setup();
    const inst = await h.set.create(request());
    await inst.destroy();
    expect(h.fake.list("virtualMachines")).toEqual([]);
    expect(h.fake.list("networkInterfaces")).toEqual([]);
    expect(h.fake.list("disks")).toEqual([]);
    expect(await h.set.instances({})).toEqual([]);
    const del = h.fake.received.find((r) => r.method === "DELETE")!;
    expect(del.path).toBe(inst.id);
    expect(del.query.get("forceDeletion")).toBe("false");
    // Only the VM was asked for; ARM removed the rest.
    expect(h.fake.requests.filter((r) => r.startsWith("DELETE"))).toEqual([`DELETE ${inst.id}`]);
  });

  it("collects the NIC of a destroyed VM made without delete options once it is old", async () => {
    const h = await setup();
    h.fake.addVm(SUB, RG, `${PREFIX}arvados1`, {
      tags: { ArvadosInstanceSetID: SET_ID, "created-at": new Date(START).toISOString() },
    });
    const listed = await h.set.instances({});
    expect(listed).toHaveLength(1);
    for (const inst of listed) await inst.destroy();
    await h.set.instances({});
    await h.set.deletionsIdle();
    expect(h.fake.list("networkInterfaces")).toHaveLength(1);
    await h.clock.advance(21_000);
    await h.set.instances({});
    await h.set.deletionsIdle();
    expect(h.fake.list("networkInterfaces")).toEqual([]);
  });

  it("classifies a throttled destroy", async () => {
    const h = await setup();
    const inst = await h.set.create(request());
    h.fake.failNext(
      { method: "DELETE", kind: "virtualMachines" },
      { status: 429, code: "TooManyRequests", message: "x", retryAfter: "2" },
    );
    const err = await inst.destroy().catch((e: unknown) => e);
    expect((err as RateLimitError).earliestRetry.getTime()).toBe(START + 2000);
    expect(h.fake.list("virtualMachines")).toHaveLength(1);
  });

  it("puts spot types in their own quota group", async () => {
    const h = await setup();
    expect(h.set.instanceQuotaGroup(instanceType())).toBe("");
    expect(h.set.instanceQuotaGroup(instanceType({ Preemptible: true }))).toBe("spot");
  });
});

describe("background disk collection", () => {
  /** Runs the loop's next pass (5 minutes after the last) and waits for its deletions. */
  async function onePeriod(h: Harness): Promise<void> {
    await h.clock.waitForSleepers(1);
    await h.clock.advance(GC_INTERVAL_MS);
    // The loop lists, queues, and goes back to sleep.
    await h.clock.waitForSleepers(1);
    await h.set.deletionsIdle();
  }

  const diskNames = (h: Harness, rg?: string): string[] =>
    h.fake
      .list("disks", rg)
      .map((d) => d.name)
      .sort();

  it("every 5 minutes deletes our old detached OS disks in ResourceGroup and ImageResourceGroup, and stop() ends it", async () => {
    const h = await setup({ ImageResourceGroup: "images" });
    const old = new Date(START - 60_000);
    const vmId = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/x`;
    const unattached = { diskState: "Unattached", timeCreated: old } as const;
    // Left by VMs of this set: beside them in ResourceGroup, or by an older dispatcher in
    // ImageResourceGroup.
    h.fake.addDisk(SUB, RG, `${PREFIX}a-os`, unattached);
    h.fake.addDisk(SUB, "images", `${PREFIX}b-os`, unattached);
    // Never ours to delete: attached (also to a deallocated VM), another set's or nobody's,
    // not an OS disk, or too young.
    h.fake.addDisk(SUB, RG, `${PREFIX}c-os`, {
      ...unattached,
      diskState: "Attached",
      managedBy: vmId,
    });
    h.fake.addDisk(SUB, "images", `${PREFIX}d-os`, {
      ...unattached,
      diskState: "Reserved",
      managedBy: vmId,
    });
    h.fake.addDisk(SUB, RG, `compute-zzzzz-other-e-os`, unattached);
    h.fake.addDisk(SUB, "images", `f-os`, unattached);
    h.fake.addDisk(SUB, RG, `${PREFIX}g-data`, unattached);
    h.fake.addDisk(SUB, RG, `${PREFIX}young-os`, {
      diskState: "Unattached",
      timeCreated: new Date(START + GC_INTERVAL_MS - 1000),
    });
    const survivors = [
      `${PREFIX}c-os`,
      `${PREFIX}d-os`,
      "compute-zzzzz-other-e-os",
      "f-os",
      `${PREFIX}g-data`,
      `${PREFIX}young-os`,
    ];

    await h.clock.waitForSleepers(1);
    await h.clock.advance(GC_INTERVAL_MS - 1);
    expect(h.fake.requests.some((r) => r.includes("/disks"))).toBe(false);
    await h.clock.advance(1);
    await h.clock.waitForSleepers(1);
    await h.set.deletionsIdle();
    expect(diskNames(h)).toEqual(survivors.sort());
    expect(h.fake.requests.filter((r) => r.startsWith("DELETE")).sort()).toEqual(
      [
        `DELETE /subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/disks/${PREFIX}a-os`,
        `DELETE /subscriptions/${SUB}/resourceGroups/images/providers/Microsoft.Compute/disks/${PREFIX}b-os`,
      ].sort(),
    );
    expect(h.logs.filter((l) => l.msg === "Deleted disk").map((l) => l.fields)).toEqual(
      expect.arrayContaining([
        { disk: `${PREFIX}a-os`, ResourceGroup: RG },
        { disk: `${PREFIX}b-os`, ResourceGroup: "images" },
      ]),
    );

    await h.set.stop();
    expect(h.clock.pendingSleepers).toBe(0);
    const before = h.fake.requests.length;
    await h.clock.advance(GC_INTERVAL_MS * 3);
    expect(h.fake.requests.length).toBe(before);
  });

  it("lists disks once when ImageResourceGroup is ResourceGroup (names are case-insensitive)", async () => {
    const h = await setup({ ImageResourceGroup: RG.toUpperCase() });
    h.fake.addDisk(SUB, RG, `${PREFIX}a-os`, {
      diskState: "Unattached",
      timeCreated: new Date(START - 60_000),
    });
    await onePeriod(h);
    expect(h.fake.list("disks")).toEqual([]);
    expect(h.fake.requests.filter((r) => r.endsWith("/disks"))).toEqual([
      `GET /subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/disks`,
    ]);
  });

  // The install guide's configurations (examples/azure-*.yml): images in their own group.
  it.each([
    ["managed image", {}],
    [
      "shared gallery",
      { SharedImageGalleryName: "zzzzz_gallery", SharedImageGalleryImageVersion: "0.0.1" },
    ],
  ])(
    "the %s configuration leaves no disk behind after destroy and one collection period",
    async (_, gallery) => {
      const h = await setup({
        ResourceGroup: "zzzzz",
        ImageResourceGroup: "zzzzz-images",
        ...gallery,
      });
      const tags = { ArvadosInstanceSetID: SET_ID, "created-at": new Date(START).toISOString() };
      // VMs of this set that Arvados's dispatcher made (no delete options) and that we make.
      h.fake.addVm(SUB, "zzzzz", `${PREFIX}arvados1`, { tags });
      await h.set.create(request());
      await h.set.create(request());
      // Someone else's VM, and a disk an older dispatcher left in the image group.
      h.fake.addVm(SUB, "zzzzz", "compute-zzzzz-other-vm1", {
        tags: { ArvadosInstanceSetID: "zzzzz-other" },
      });
      h.fake.addDisk(SUB, "zzzzz-images", `${PREFIX}older-os`, {
        diskState: "Unattached",
        timeCreated: new Date(START - 3_600_000),
      });
      expect(diskNames(h, "zzzzz")).toHaveLength(4);

      const ours = (await h.set.instances({})).filter(
        (i) => i.tags["ArvadosInstanceSetID"] === SET_ID,
      );
      expect(ours).toHaveLength(3);
      for (const inst of ours) await inst.destroy();
      // Ours went with their VMs; the one Arvados made stays, detached, until collected.
      expect(diskNames(h, "zzzzz")).toEqual(
        [`${PREFIX}arvados1-os`, "compute-zzzzz-other-vm1-os"].sort(),
      );

      await onePeriod(h);
      expect(diskNames(h)).toEqual(["compute-zzzzz-other-vm1-os"]);
      expect(h.fake.get("disks", "zzzzz", "compute-zzzzz-other-vm1-os")!.managedBy).toContain(
        "/virtualMachines/compute-zzzzz-other-vm1",
      );
    },
  );
});

describe("credentials and clouds", () => {
  it.each([
    ["AzurePublicCloud", "https://management.azure.com/.default"],
    ["AzureUSGovernmentCloud", "https://management.usgovcloudapi.net/.default"],
    ["AzureChinaCloud", "https://management.chinacloudapi.cn/.default"],
  ])("asks for an ARM token for %s", async (env, scope) => {
    const scopes: string[] = [];
    const credential: TokenCredential = {
      getToken: (s) => {
        scopes.push(...(Array.isArray(s) ? s : [s]));
        return Promise.reject(new Error("no token in tests"));
      },
    };
    const set = await createAzureDriver({ credential, clock: new ManualClock(START) })({
      parameters: {
        SubscriptionID: SUB,
        ResourceGroup: RG,
        Network: "n",
        Subnet: "s",
        CloudEnvironment: env,
      },
      instanceSetId: instanceSetId(SET_ID),
      sharedResourceTags: {},
      logger: recordingLogger([]),
      registry: null,
    });
    cleanups.push(() => set.stop());
    await expect(set.instances({})).rejects.toThrow("no token in tests");
    expect(scopes).toEqual([scope]);
  });

  it("rejects bad parameters before touching the cloud", async () => {
    const fake = await FakeArm.start();
    cleanups.push(() => fake.close());
    await expect(
      createAzureDriver()({
        parameters: { ResourceManagerEndpoint: fake.endpoint, ClientSecret: "hunter2" },
        instanceSetId: instanceSetId(SET_ID),
        sharedResourceTags: {},
        logger: recordingLogger([]),
        registry: null,
      }),
    ).rejects.toThrow(/SubscriptionID: .*\n.*TenantID/s);
    expect(fake.requests).toEqual([]);
  });
});
