// The queue against the embedded container API over HTTP.
import { ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { ContainerUuid, InstanceType, Logger } from "@dispatch-cloud/arvados-types";
import { startContainerApi, type ContainerApi } from "@dispatch-cloud/container-api";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContainerQueue, type QueueClient } from "./index.js";

const token = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
const GiB = 2 ** 30;
const type1: InstanceType = {
  Name: "type1",
  ProviderType: "pt1",
  VCPUs: 2,
  RAM: 8 * GiB,
  IncludedScratch: 100 * GiB,
  AddedScratch: 0,
  Scratch: 100 * GiB,
  Price: 0.1,
  Preemptible: false,
  GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
};
const lines: string[] = [];
const logger: Logger = {
  debug: (_f, m) => lines.push(m),
  info: (_f, m) => lines.push(m),
  warn: (_f, m) => lines.push(m),
  error: (_f, m) => lines.push(m),
  child: () => logger,
};

let api: ContainerApi;
let client: ArvadosClient;

beforeEach(async () => {
  lines.length = 0;
  api = await startContainerApi({ dbPath: ":memory:", systemRootToken: token, clusterId: "zzzzz" });
  client = new ArvadosClient({ apiHost: api.url, token });
});
afterEach(async () => {
  await client.close();
  await api.stop();
});

async function submit(vcpus = 1, ram = GiB, priority = 1): Promise<ContainerUuid> {
  const cr = await client.containerRequests.create({
    name: "t",
    state: "Committed",
    priority,
    container_image: "d5025c0f29f6eef304a7358afa82a822+342",
    command: ["echo"],
    output_path: "/out",
    mounts: { "/out": { kind: "tmp", capacity: GiB } },
    runtime_constraints: { vcpus, ram },
  });
  return cr.container_uuid!;
}

function newQueue(c: QueueClient = client, registry?: Registry) {
  return new ContainerQueue({
    client: c,
    logger,
    ...(registry ? { registry } : {}),
    selection: {
      instanceTypes: [type1],
      reserveExtraRAM: 0,
      localKeepBlobBuffersPerVCPU: 0,
      maximumPriceFactor: 1.5,
    },
  });
}

describe("ContainerQueue against container-api", () => {
  it("polls queued containers with their types and resources, and locks/unlocks them", async () => {
    const uuid = await submit();
    const registry = new Registry();
    const q = newQueue(client, registry);
    expect(await q.update()).toEqual({ ok: true });
    const ent = q.entries().entries.get(uuid)!;
    expect(ent.container.state).toBe("Queued");
    expect(ent.instanceTypes.map((t) => t.Name)).toEqual(["type1"]);
    // max(tmp 1GiB, image 6×64MiB) + image + the server's default 2GiB disk cache.
    expect(ent.instanceResources.Scratch).toBe(GiB + 402653184 + 2 * GiB);
    expect(lines).toContain("adding container to queue");
    expect(await registry.getSingleMetricAsString("arvados_dispatchcloud_queue_entries")).toContain(
      'arvados_dispatchcloud_queue_entries{state="Queued",instance_type="type1"} 1',
    );

    expect(await q.lock(uuid)).toEqual({ ok: true });
    expect(q.get(uuid)?.state).toBe("Locked");
    expect(q.get(uuid)?.locked_by_uuid).toBe("zzzzz-gj3su-000000000000000");
    // Still found as "mine" after the lock.
    await q.update();
    expect(q.get(uuid)?.state).toBe("Locked");
    const again = await q.lock(uuid);
    expect(again.ok).toBe(false);
    expect(await q.unlock(uuid)).toEqual({ ok: true });
    expect(q.get(uuid)?.state).toBe("Queued");
  });

  it("a lock made while a poll is in flight is not undone by the poll's older data", async () => {
    const uuid = await submit();
    const q0 = newQueue();
    await q0.update();
    let hooked = false;
    let midPollLock: unknown;
    let q!: ContainerQueue;
    const racing: QueueClient = {
      apiClientAuthorizations: client.apiClientAuthorizations,
      containers: {
        ...client.containers,
        list: (async (params: never, opts: never) => {
          const page = await client.containers.list(params, opts);
          const p = params as { order?: string };
          if (!hooked && p.order === "priority desc") {
            hooked = true;
            midPollLock = await q.lock(uuid);
          }
          return page;
        }) as never,
      },
    };
    q = newQueue(racing);
    // First poll adds it as Queued; the lock lands mid-poll of the second.
    hooked = true;
    await q.update();
    hooked = false;
    await q.update();
    expect(midPollLock).toEqual({ ok: true });
    expect(q.get(uuid)?.state).toBe("Locked");
  });

  it("fetches missing containers by UUID and drops finished and deleted ones", async () => {
    const a = await submit();
    const b = await submit();
    const q = newQueue();
    await q.update();
    // a: priority drops to 0 → no longer "available", fetched as missing and kept with prio 0.
    api.store.db.prepare("UPDATE containers SET priority = 0 WHERE uuid = ?").run(a);
    // b: deleted from the database.
    api.store.db.prepare("DELETE FROM containers WHERE uuid = ?").run(b);
    expect(await q.update()).toEqual({ ok: true });
    expect(q.get(a)?.priority).toBe(0);
    expect(q.get(b)).toBeUndefined();
    expect(lines).toContain("container not found by controller (deleted?)");
    q.forget(a);
    expect(q.get(a)).toBeUndefined();
  });

  it("cancels an unsatisfiable container with the user-visible reason", async () => {
    const uuid = await submit(64, GiB);
    const q = newQueue();
    await q.update();
    await q.settled();
    expect(q.get(uuid)).toBeUndefined();
    const c = await client.containers.get(uuid);
    expect(c.state).toBe("Cancelled");
    expect(c.runtime_status.error).toBe(
      "constraints not satisfiable by any configured instance type",
    );
    expect(lines).toContain("cancel container with no suitable instance type");
  });

  it("reports API errors as values", async () => {
    await submit();
    api.faults.add({ pathIncludes: "arvados/v1/containers", status: 503 });
    const q = newQueue();
    const r = await q.update();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toContain("503");
    expect(client.lastServerError503()).not.toBeNull();
  });
});
