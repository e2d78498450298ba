// Listing, tags, destroy and operation polling of the GCE driver, through the real SDK against
// the fake Compute API.
import { RateLimitError, type Instance } from "@dispatch-cloud/cloud-driver-api";
import { ManualClock, recordingLogger } from "@dispatch-cloud/cloud-driver-api/testing";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GceDriverError, GceOperationError, type GceInstance } from "./index.js";
import { gceCreateRequest, gceErrors, startGceHarness, type GceHarness } from "./testing/index.js";

const SET_ID = "zzzzz-gj3su-0123456789abcde";
const request = () => gceCreateRequest(SET_ID);
const asGce = (i: Instance): GceInstance => i as GceInstance;
const ours = { ArvadosInstanceSetID: SET_ID };

describe("one instance set on a fake with small pages", () => {
  let h: GceHarness;
  const registry = new Registry();

  beforeAll(async () => {
    h = await startGceHarness({
      logger: recordingLogger([]),
      registry,
      parameters: { Zone: undefined, Zones: ["us-central1-a", "us-central1-b"] },
      fakeOptions: { pageSize: 2 },
    });
  });
  afterAll(() => h?.stop());

  it("lists the set's VMs in every zone across pages, by the set's label when filtered", async () => {
    const mine = [asGce(await h.set.create(request())), asGce(await h.set.create(request()))];
    // One of ours in a zone no longer configured, another set's, and one made outside Arvados.
    h.fake.addInstance("us-east1-b", "compute-old-zone", {
      labels: { arvados_instance_set: SET_ID },
      metadata: { ArvadosInstanceSetID: SET_ID, ArvadosIdleBehavior: "run" },
    });
    h.fake.addInstance("us-central1-a", "compute-other", {
      labels: { arvados_instance_set: "zzzzz-gj3su-otherotherother" },
      metadata: { ArvadosInstanceSetID: "zzzzz-gj3su-otherotherother" },
    });
    h.fake.addInstance("us-central1-b", "web-server", { labels: { app: "web" } });
    const pages = () => h.fake.requests.filter((r) => r.endsWith("/aggregated/instances")).length;

    let before = pages();
    const listed = await h.set.instances(ours);
    expect(listed.map((i) => i.id).sort()).toEqual(
      [...mine.map((i) => i.id), "us-east1-b/compute-old-zone"].sort(),
    );
    expect(pages() - before).toBe(2);
    const first = listed.find((i) => i.id === mine[0].id)!;
    // Only tags come back as tags: not the startup script or the SSH key.
    expect(first.tags).toEqual(request().tags);
    expect(first.address).toBe(mine[0].address);
    expect(first.providerType).toBe("e2-standard-2");

    before = pages();
    const everything = await h.set.instances({});
    expect(everything).toHaveLength(5);
    expect(pages() - before).toBe(3);
    expect(everything.find((i) => i.id === "us-central1-b/web-server")?.tags).toEqual({});

    const gauge = await registry.getSingleMetricAsString("arvados_dispatchcloud_gce_instances");
    expect(gauge).toContain('arvados_dispatchcloud_gce_instances{zone="us-east1-b"} 1');
    expect(gauge).toContain('arvados_dispatchcloud_gce_instances{zone="us-central1-b"} 1');
    for (const i of everything) if (i.tags["ArvadosInstanceSetID"] !== SET_ID) await i.destroy();
  });

  it("setTags merges into the metadata, keeping the startup script and the SSH key", async () => {
    const inst = asGce(await h.set.create(request()));
    await inst.setTags({ ArvadosIdleBehavior: "hold", Extra: "1" });
    const stored = h.fake.instance(inst.zone, inst.name)!;
    expect(Object.fromEntries(stored.metadata.items.map((i) => [i.key, i.value]))).toMatchObject({
      ...request().tags,
      ArvadosIdleBehavior: "hold",
      Extra: "1",
      "startup-script": expect.stringContaining("#!/bin/sh\n"),
      "ssh-keys": expect.stringMatching(/^crunch:ssh-ed25519 /),
    });
    // The snapshot is unchanged; a new listing has the new tags.
    expect(inst.tags["ArvadosIdleBehavior"]).toBe("run");
    const relisted = (await h.set.instances(ours)).find((i) => i.id === inst.id)!;
    expect(relisted.tags).toMatchObject({ ArvadosIdleBehavior: "hold", Extra: "1" });
  });

  it("setTags from a stale snapshot re-reads the metadata (412) and keeps the other writer's tags", async () => {
    const inst = asGce(await h.set.create(request()));
    await inst.setTags({ Writer: "one" });
    const before = h.fake.requests.length;
    await inst.setTags({ ArvadosIdleBehavior: "drain" });
    const calls = h.fake.requests.slice(before).filter((r) => !r.endsWith("/wait"));
    expect(calls).toEqual([
      `POST /compute/v1/projects/fake-project/zones/${inst.zone}/instances/${inst.name}/setMetadata`,
      `GET /compute/v1/projects/fake-project/zones/${inst.zone}/instances/${inst.name}`,
      `POST /compute/v1/projects/fake-project/zones/${inst.zone}/instances/${inst.name}/setMetadata`,
    ]);
    const tags = (await h.set.instances(ours)).find((i) => i.id === inst.id)!.tags;
    expect(tags).toMatchObject({ Writer: "one", ArvadosIdleBehavior: "drain" });
  });

  it("setTags reports a failed setMetadata operation", async () => {
    const inst = asGce(await h.set.create(request()));
    h.fake.failNext(
      { call: "setMetadata" },
      {
        kind: "operation",
        httpErrorStatusCode: 400,
        httpErrorMessage: "BAD REQUEST",
        errors: [{ code: "METADATA_TOO_LARGE", message: "Metadata is too large." }],
      },
    );
    const err = await inst.setTags({ A: "b" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GceOperationError);
    expect((err as Error).message).toBe("METADATA_TOO_LARGE: Metadata is too large.");
  });

  it("destroy asks GCE to delete: STOPPING, then gone; an already deleted VM is fine", async () => {
    const inst = asGce(await h.set.create(request()));
    await inst.destroy();
    expect(h.fake.instance(inst.zone, inst.name)?.status).toBe("STOPPING");
    // The fake finishes the delete as it is talked to; the listing no longer has the VM.
    const after = await h.set.instances(ours);
    expect(after.map((i) => i.id)).not.toContain(inst.id);
    expect(h.fake.deleted).toContain(inst.id);
    await expect(inst.destroy()).resolves.toBeUndefined();
    h.fake.failNext({ call: "delete" }, gceErrors.rateLimitExceeded());
    const again = asGce(await h.set.create(request()));
    const err = await again.destroy().catch((e: unknown) => e);
    expect(RateLimitError.is(err)).toBe(true);
  });

  it("gives up on a request that hangs when the caller aborts", async () => {
    const hold = h.fake.holdRequests({ call: "insert" });
    const ac = new AbortController();
    const pending = h.set.create(request(), ac.signal).catch((e: unknown) => e);
    await hold.untilWaiting(1);
    ac.abort(new Error("shutting down"));
    expect(await pending).toEqual(new Error("shutting down"));
    hold.release();
  });
});

describe("operation polling", () => {
  it("polls at most every interval, gives up at the bound, and stops on abort", async () => {
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"));
    const h = await startGceHarness({
      logger: recordingLogger([]),
      driverOptions: { clock, operationPollIntervalMs: 1_000, operationTimeoutMs: 3_000 },
      fakeOptions: { operationSteps: 1 },
    });
    try {
      h.fake.holdOperations();
      const waits = () => h.fake.requests.filter((r) => r.endsWith("/wait")).length;
      const pending = h.set.create(gceCreateRequest(SET_ID)).catch((e: unknown) => e);
      for (let polls = 1; polls <= 3; polls++) {
        await clock.waitForSleepers(1);
        // One wait per interval, and no more until the clock moves.
        expect(waits()).toBe(polls);
        await clock.advance(1_000);
      }
      const err = await pending;
      expect(err).toBeInstanceOf(GceDriverError);
      expect((err as GceDriverError).kind).toBe("operation-timeout");
      expect((err as Error).message).toMatch(
        /^insert operation operation-\S+ in us-central1-a not done after 3s$/,
      );

      const ac = new AbortController();
      const aborted = h.set.create(gceCreateRequest(SET_ID), ac.signal).catch((e: unknown) => e);
      await clock.waitForSleepers(1);
      ac.abort(new Error("stop"));
      expect(await aborted).toEqual(new Error("stop"));

      // Released, an operation finishes and create succeeds.
      h.fake.releaseOperations();
      const done = await h.set.create(gceCreateRequest(SET_ID));
      expect(asGce(done).status).toBe("RUNNING");
    } finally {
      await h.stop();
    }
  });
});
