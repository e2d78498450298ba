// The GCE driver through the real @google-cloud/compute SDK (REST transport) against the fake
// Compute API: request bodies, listing, tags in metadata, zone failover, operation polling.
import {
  CapacityError,
  DriverParametersError,
  QuotaError,
  RateLimitError,
  type Instance,
} from "@dispatch-cloud/cloud-driver-api";
import {
  ManualClock,
  recordingLogger,
  type LogEntry,
} from "@dispatch-cloud/cloud-driver-api/testing";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { GceApiError, GceDriverError, type GceInstance } from "./index.js";
import {
  gceCreateRequest,
  gceErrors,
  gceInstanceType,
  newServiceAccountKey,
  startGceHarness,
  type GceHarness,
} from "./testing/index.js";

const SET_ID = "zzzzz-gj3su-0123456789abcde";
const GiB = 2 ** 30;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).toReversed()) await c();
});

async function setup(
  o: Omit<Parameters<typeof startGceHarness>[0], "logger"> = {},
): Promise<GceHarness & { logs: LogEntry[] }> {
  const logs: LogEntry[] = [];
  const h = await startGceHarness({ ...o, logger: recordingLogger(logs) });
  cleanups.push(() => h.stop());
  return { ...h, logs };
}

const request = (o: Parameters<typeof gceCreateRequest>[1] = {}) => gceCreateRequest(SET_ID, o);
const asGce = (i: Instance): GceInstance => i as GceInstance;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("create", () => {
  it("inserts a VM with tags in metadata, the set label, the startup script and the SSH key", async () => {
    const h = await setup({ parameters: { Labels: { team: "genomics" } } });
    const inst = asGce(await h.set.create(request()));

    const stored = h.fake.instance("us-central1-a", inst.name)! as Json;
    expect(inst.name).toMatch(/^compute-zzzzz-gj3su-0123456789abcde-[a-z0-9]{15}$/);
    expect(stored["machineType"]).toMatch(/\/zones\/us-central1-a\/machineTypes\/e2-standard-2$/);
    expect(stored["labels"]).toEqual({ team: "genomics", arvados_instance_set: SET_ID });
    const items = Object.fromEntries(
      (stored["metadata"].items as { key: string; value: string }[]).map((i) => [i.key, i.value]),
    );
    expect(items).toEqual({
      ...request().tags,
      "startup-script": `#!/bin/sh\n${request().initCommand}\n`,
      "ssh-keys": `crunch:${request().publicKey}`,
    });
    expect(stored["disks"]).toMatchObject([
      {
        boot: true,
        autoDelete: true,
        initializeParams: {
          sourceImage: "projects/fake-project/global/images/arvados-compute-1",
          diskType: "zones/us-central1-a/diskTypes/pd-balanced",
          labels: { team: "genomics", arvados_instance_set: SET_ID },
        },
      },
    ]);
    // No access config: no external address. The default network, no service account.
    expect(stored["networkInterfaces"][0]).not.toHaveProperty("accessConfigs");
    expect(stored["networkInterfaces"][0].network).toMatch(/\/global\/networks\/default$/);
    expect(stored["serviceAccounts"]).toBeUndefined();
    expect(stored["scheduling"] ?? {}).toEqual({});

    // The insert operation was waited for: the VM is RUNNING, and the snapshot says so.
    expect(stored["status"]).toBe("RUNNING");
    expect(inst.status).toBe("RUNNING");
    expect(h.fake.requests.filter((r) => r.endsWith("/wait")).length).toBeGreaterThanOrEqual(1);
    expect(inst.id).toBe(`us-central1-a/${inst.name}`);
    expect(inst.providerType).toBe("e2-standard-2");
    expect(inst.address).toMatch(/^127\.0\.2\.\d+$/);
    expect(inst.remoteUser).toBe("crunch");
    expect(inst.tags).toEqual(request().tags);
    expect(inst.priceHistory(gceInstanceType())).toEqual([]);
    await expect(
      inst.verifyHostKey(Buffer.alloc(0), { run: () => Promise.reject(new Error("unused")) }),
    ).resolves.toEqual({ kind: "not-implemented" });
    expect(h.logs.find((l) => l.msg === "created instance")?.fields).toMatchObject({
      Instance: inst.id,
      InstanceType: "e2s2",
    });
  });

  it("follows the network, account, disk and scheduling settings", async () => {
    const h = await setup({
      parameters: {
        Zones: ["europe-west4-b", "europe-west4-c"],
        Zone: undefined,
        Network: "arvados",
        Subnetwork: "compute",
        NetworkTags: ["arvados-compute"],
        ServiceAccount: "compute@fake-project.iam.gserviceaccount.com",
        ServiceAccountScopes: ["https://www.googleapis.com/auth/devstorage.read_only"],
        DiskType: "pd-ssd",
        ScratchDiskType: "pd-balanced",
        AdminUsername: "arvados",
      },
    });
    const spotGpu = gceInstanceType({
      ProviderType: "g2-standard-8",
      Preemptible: true,
      AddedScratch: 100 * GiB + 1,
      GPU: {
        Stack: "cuda",
        DriverVersion: "12.0",
        HardwareTarget: "8.9",
        DeviceCount: 1,
        VRAM: 24 * GiB,
      },
    });
    const inst = asGce(await h.set.create(request({ instanceType: spotGpu, publicKey: null })));
    const stored = h.fake.instance("europe-west4-b", inst.name)! as Json;
    expect(stored["networkInterfaces"][0]).toMatchObject({
      network: expect.stringMatching(/\/global\/networks\/arvados$/),
      subnetwork: "regions/europe-west4/subnetworks/compute",
    });
    expect(stored["tags"]).toEqual({ items: ["arvados-compute"] });
    expect(stored["serviceAccounts"]).toEqual([
      {
        email: "compute@fake-project.iam.gserviceaccount.com",
        scopes: ["https://www.googleapis.com/auth/devstorage.read_only"],
      },
    ]);
    expect(stored["scheduling"]).toEqual({
      provisioningModel: "SPOT",
      instanceTerminationAction: "DELETE",
      automaticRestart: false,
      onHostMaintenance: "TERMINATE",
    });
    expect(stored["disks"][0].initializeParams.diskType).toBe(
      "zones/europe-west4-b/diskTypes/pd-ssd",
    );
    expect(stored["disks"][1]).toMatchObject({
      type: "PERSISTENT",
      autoDelete: true,
      deviceName: "arvados-scratch",
      initializeParams: {
        diskType: "zones/europe-west4-b/diskTypes/pd-balanced",
        diskSizeGb: "101",
        labels: { arvados_instance_set: SET_ID },
      },
    });
    const items = (stored["metadata"].items as { key: string }[]).map((i) => i.key);
    expect(items).not.toContain("ssh-keys");
    expect(inst.remoteUser).toBe("arvados");

    const onDemandGpu = { ...spotGpu, Preemptible: false, AddedScratch: 0 };
    const second = asGce(await h.set.create(request({ instanceType: onDemandGpu })));
    expect((h.fake.instance(second.zone, second.name) as Json)["scheduling"]).toEqual({
      onHostMaintenance: "TERMINATE",
      automaticRestart: true,
    });
    expect((h.fake.instance(second.zone, second.name) as Json)["metadata"].items).toContainEqual({
      key: "ssh-keys",
      value: `arvados:${request().publicKey}`,
    });
  });

  it("gives AddedScratch as whole local SSDs when ScratchDiskType is local-ssd", async () => {
    const h = await setup({ parameters: { ScratchDiskType: "local-ssd" } });
    const type = gceInstanceType({ ProviderType: "n2-standard-8", AddedScratch: 700 * GiB });
    const inst = asGce(await h.set.create(request({ instanceType: type })));
    const disks = (h.fake.instance(inst.zone, inst.name) as Json)["disks"] as Json[];
    expect(disks.slice(1)).toMatchObject([
      {
        type: "SCRATCH",
        autoDelete: true,
        interface: "NVME",
        initializeParams: { diskType: "zones/us-central1-a/diskTypes/local-ssd" },
      },
      {
        type: "SCRATCH",
        autoDelete: true,
        interface: "NVME",
        initializeParams: { diskType: "zones/us-central1-a/diskTypes/local-ssd" },
      },
    ]);
  });

  it("sizes the boot disk from the image, raised to MinBootDiskSizeGB", async () => {
    const h = await setup({ parameters: { MinBootDiskSizeGB: 50 } });
    h.fake.addImage("fake-project", "small-image", 10);
    h.fake.addImage("debian-cloud", "debian-12-v1", 120, "debian-12");
    const a = asGce(await h.set.create(request({ imageId: "small-image" })));
    const b = asGce(
      await h.set.create(
        request({ imageId: "projects/debian-cloud/global/images/family/debian-12" }),
      ),
    );
    const boot = (i: GceInstance) =>
      (h.fake.instance(i.zone, i.name) as Json)["disks"][0].initializeParams;
    expect(boot(a)).toMatchObject({
      sourceImage: "projects/fake-project/global/images/small-image",
      diskSizeGb: "50",
    });
    expect(boot(b)).toMatchObject({
      sourceImage: "projects/debian-cloud/global/images/family/debian-12",
      diskSizeGb: "120",
    });
    // An image GCE does not have is its own (unclassified) error, named readably.
    const err = await h.set.create(request({ imageId: "missing" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GceApiError);
    expect((err as Error).message).toBe(
      "GCE API error (404 notFound): The resource 'projects/fake-project/global/images/missing' was not found",
    );
  });

  it("returns the VM as asked for when reading it back fails, its address to follow", async () => {
    const h = await setup();
    h.fake.failNext({ call: "get" }, gceErrors.backendError());
    const inst = asGce(await h.set.create(request()));
    expect(inst).toMatchObject({
      zone: "us-central1-a",
      status: "PROVISIONING",
      providerType: "e2-standard-2",
      address: "",
      tags: request().tags,
    });
    expect(h.fake.instance(inst.zone, inst.name)?.status).toBe("RUNNING");
    expect(h.logs.map((l) => l.msg)).toContain(
      "cannot read the new instance; its address follows with the next listing",
    );
  });

  it("refuses a tag GCE metadata cannot hold, before any request", async () => {
    const h = await setup();
    const before = h.fake.requests.length;
    for (const [key, why] of [
      ["startup-script", "is a GCE metadata key with its own meaning"],
      ["arvados.org/owner", "cannot be a GCE metadata key"],
    ] as const) {
      const err = await h.set
        .create(request({ tags: { ...request().tags, [key]: "x" } }))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GceDriverError);
      expect((err as Error).message).toContain(`tag key "${key}" ${why}`);
    }
    expect(h.fake.requests.length).toBe(before);
  });

  it("refuses ResourceTags GCE metadata cannot hold when the driver starts", async () => {
    const err = await setup({ resourceTags: { "cost center": "x", Owner: "ops" } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DriverParametersError);
    expect((err as DriverParametersError).problems).toEqual([
      'Containers.CloudVMs.ResourceTags.cost center: tag key "cost center" cannot be a GCE metadata key (letters, digits, - and _, at most 128)',
    ]);
  });
});

describe("zone failover", () => {
  const zones = ["us-central1-a", "us-central1-b", "us-central1-c"];

  it("tries the next zone when one has no capacity, and starts there next time", async () => {
    const registry = new Registry();
    const h = await setup({ parameters: { Zone: undefined, Zones: zones }, registry });
    h.fake.failNext(
      { call: "insert", zone: "us-central1-a" },
      gceErrors.zoneResourcePoolExhausted("fake-project", "us-central1-a"),
    );
    const first = asGce(await h.set.create(request()));
    expect(first.zone).toBe("us-central1-b");
    // The failed insert left no VM behind in zone a.
    expect(h.fake.instances("us-central1-a")).toEqual([]);
    expect(h.logs.some((l) => l.msg === "instance insert failed, trying next zone")).toBe(true);
    const second = asGce(await h.set.create(request()));
    expect(second.zone).toBe("us-central1-b");

    const starts = await registry.getSingleMetricAsString(
      "arvados_dispatchcloud_gce_instance_starts_total",
    );
    expect(starts).toContain(
      'arvados_dispatchcloud_gce_instance_starts_total{zone="us-central1-a",success="0"} 1',
    );
    expect(starts).toContain(
      'arvados_dispatchcloud_gce_instance_starts_total{zone="us-central1-b",success="1"} 2',
    );
    expect(starts).toContain(
      'arvados_dispatchcloud_gce_instance_starts_total{zone="us-central1-c",success="0"} 0',
    );
  });

  it("fails over on a machine type a zone lacks, not on a quota", async () => {
    const h = await setup({ parameters: { Zone: undefined, Zones: zones } });
    h.fake.failNext(
      { call: "insert", zone: "us-central1-a" },
      gceErrors.machineTypeNotInZone("us-central1-a", "e2-standard-2"),
    );
    expect(asGce(await h.set.create(request())).zone).toBe("us-central1-b");
    h.fake.failNext(
      { call: "insert", zone: "us-central1-b" },
      gceErrors.quotaExceeded("INSTANCES", 24, "us-central1"),
    );
    const err = await h.set.create(request()).catch((e: unknown) => e);
    expect(QuotaError.is(err)).toBe(true);
    expect(
      h.fake.requests.filter((r) => r.startsWith("POST") && r.endsWith("/instances")),
    ).toHaveLength(3);
  });

  it("reports the capacity error when every zone is exhausted, rotating where it starts", async () => {
    const h = await setup({ parameters: { Zone: undefined, Zones: zones.slice(0, 2) } });
    h.fake.failNext(
      { call: "insert", zone: "us-central1-a" },
      gceErrors.zoneResourcePoolExhausted("fake-project", "us-central1-a", true),
    );
    h.fake.failNext(
      { call: "insert", zone: "us-central1-b" },
      gceErrors.machineTypeNotInZone("us-central1-b", "e2-standard-2"),
    );
    const err = await h.set.create(request()).catch((e: unknown) => e);
    expect(CapacityError.is(err)).toBe(true);
    expect((err as CapacityError).scope).toBe("instance-type");
    expect((err as Error).message).toContain("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS");
    // The next create starts at the zone that gave the last error.
    await h.set.create(request());
    const inserts = h.fake.requests.filter((r) => r.startsWith("POST") && r.endsWith("/instances"));
    expect(inserts.map((r) => r.split("/")[6])).toEqual([
      "us-central1-a",
      "us-central1-b",
      "us-central1-b",
    ]);
  });
});

describe("errors", () => {
  it("turns throttling into RateLimitError with growing backoff, or Retry-After", async () => {
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"));
    const h = await setup({ driverOptions: { clock } });
    const retryAt = async (): Promise<number> => {
      const err = await h.set.create(request()).catch((e: unknown) => e);
      if (!RateLimitError.is(err)) throw err;
      return err.earliestRetry.getTime() - clock.now();
    };
    h.fake.failNext({ call: "insert" }, gceErrors.rateLimitExceeded());
    expect(await retryAt()).toBe(1000);
    h.fake.failNext({ call: "insert" }, gceErrors.tooManyRequests());
    expect(await retryAt()).toBe(2500);
    h.fake.failNext({ call: "insert" }, gceErrors.tooManyRequests("7"));
    expect(await retryAt()).toBe(7000);
    // Listing keeps its own backoff.
    h.fake.failNext({ call: "aggregatedList" }, gceErrors.tooManyRequests());
    const err = await h.set.instances({}).catch((e: unknown) => e);
    expect(RateLimitError.is(err) && err.earliestRetry.getTime() - clock.now()).toBe(1000);
  });

  it.each([
    ["CPUS", "us-central1", "quota-group"],
    ["N2_CPUS", "us-central1", "quota-group"],
    ["NVIDIA_L4_GPUS", "us-central1", "quota-group"],
    ["PREEMPTIBLE_CPUS", "us-central1", "quota-group"],
    ["CPUS_ALL_REGIONS", undefined, "quota"],
    ["INSTANCES", "us-central1", "quota"],
    ["SSD_TOTAL_GB", "us-central1", "quota"],
  ] as const)("QUOTA_EXCEEDED %s in %s → %s", async (metric, region, want) => {
    const h = await setup();
    h.fake.failNext({ call: "insert" }, gceErrors.quotaExceeded(metric, 24, region));
    const err = await h.set.create(request()).catch((e: unknown) => e);
    const kind = QuotaError.is(err) ? "quota" : CapacityError.is(err) ? err.scope : "other";
    expect(kind).toBe(want);
    expect((err as Error).message).toContain(
      `GCE quota exceeded (${metric}, limit 24, ${region === undefined ? "global" : `region ${region}`})`,
    );
  });

  it("reads the quota from a synchronous 403 too", async () => {
    const h = await setup();
    h.fake.failNext({ call: "insert" }, gceErrors.quotaExceededHttp("INSTANCES", 8, "us-east1"));
    const err = await h.set.create(request()).catch((e: unknown) => e);
    expect(QuotaError.is(err)).toBe(true);
    expect((err as Error).message).toBe(
      "GCE quota exceeded (INSTANCES, limit 8, region us-east1): Quota 'INSTANCES' exceeded.  Limit: 8.0 in region us-east1.",
    );
  });

  it("passes other API errors on with a readable message, and the cause", async () => {
    const h = await setup();
    h.fake.failNext({ call: "insert" }, gceErrors.backendError());
    const err = await h.set.create(request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GceApiError);
    expect((err as GceApiError).facts.httpStatus).toBe(503);
    expect((err as Error).message).toMatch(/^GCE API error \(503 backendError\): Internal error/);
    expect((err as Error).cause).toBeDefined();
  });

  it("is refused (401) with a key the API does not trust, unclassified", async () => {
    const h = await setup({ parameters: { Credentials: newServiceAccountKey("fake-project") } });
    const err = await h.set.instances({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GceApiError);
    expect((err as GceApiError).facts.httpStatus).toBe(401);
    expect((err as Error).message).toContain("Request had invalid authentication credentials");
  });
});
