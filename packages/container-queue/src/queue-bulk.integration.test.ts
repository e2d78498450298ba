// How a poll fetches many containers at once, against the embedded container API over HTTP:
// the number and shape of the calls, what is published before new containers' mounts arrive,
// and the out-of-order protection while they are fetched.
import { ArvadosClient, type Filter } from "@dispatch-cloud/arvados-client";
import type { ContainerUuid, InstanceType, Logger } from "@dispatch-cloud/arvados-types";
import { startContainerApi, type ContainerApi } from "@dispatch-cloud/container-api";
import { seedContainers, testContainerUuid } from "@dispatch-cloud/container-api/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContainerQueue, type QueueClient } from "./index.js";

const token = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
const GiB = 2 ** 30;
const type1: InstanceType = {
  Name: "type1",
  ProviderType: "pt1",
  VCPUs: 2,
  RAM: 8 * GiB,
  IncludedScratch: 500 * GiB,
  AddedScratch: 0,
  Scratch: 500 * GiB,
  Price: 0.1,
  Preemptible: false,
  GPU: { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 },
};

interface Line {
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}
let lines: Line[];
function recordingLogger(base: Record<string, unknown> = {}): Logger {
  const put = (fields: Record<string, unknown>, msg: string) =>
    lines.push({ msg, fields: { ...base, ...fields } });
  return {
    debug: put,
    info: put,
    warn: put,
    error: put,
    child: (f) => recordingLogger({ ...base, ...f }),
  };
}

type ListKind = "mounts" | "missing" | "other";
interface Gate {
  /** Resolves when a held call arrives. */
  readonly reached: Promise<void>;
  open(): void;
}
function gate(): Gate & { hit(): Promise<void> } {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((r) => (arrive = r));
  const opened = new Promise<void>((r) => (open = r));
  return {
    reached,
    open,
    hit: () => {
      arrive();
      return opened;
    },
  };
}

/** The client, counting calls by kind and able to hold mounts lists until released. */
class Recorder {
  readonly lists: Record<ListKind, number> = { mounts: 0, missing: 0, other: 0 };
  gets = 0;
  readonly inflight: Record<ListKind, number> = { mounts: 0, missing: 0, other: 0 };
  readonly maxInflight: Record<ListKind, number> = { mounts: 0, missing: 0, other: 0 };
  holdMounts: ReturnType<typeof gate> | undefined;
  readonly client: QueueClient;

  constructor(inner: ArvadosClient) {
    this.client = {
      apiClientAuthorizations: inner.apiClientAuthorizations,
      containers: {
        ...inner.containers,
        get: ((uuid: string, params: never, opts: never) => {
          this.gets++;
          return inner.containers.get(uuid, params, opts);
        }) as never,
        list: (async (
          params: { select?: readonly string[]; filters?: readonly Filter[] },
          opts: never,
        ) => {
          const kind: ListKind = params.select?.includes("mounts")
            ? "mounts"
            : params.filters?.[0]?.[0] === "uuid" && params.filters[0][1] === "in"
              ? "missing"
              : "other";
          this.lists[kind]++;
          this.inflight[kind]++;
          this.maxInflight[kind] = Math.max(this.maxInflight[kind], this.inflight[kind]);
          try {
            if (kind === "mounts" && this.holdMounts) await this.holdMounts.hit();
            return await inner.containers.list(params as never, opts);
          } finally {
            this.inflight[kind]--;
          }
        }) as never,
      },
    };
  }
}

let api: ContainerApi;
let client: ArvadosClient;
let rec: Recorder;
let tick: number;

beforeEach(async () => {
  lines = [];
  tick = 1_000_000;
  api = await startContainerApi({ dbPath: ":memory:", systemRootToken: token, clusterId: "zzzzz" });
  client = new ArvadosClient({ apiHost: api.url, token });
  rec = new Recorder(client);
});
afterEach(async () => {
  await client.close();
  await api.stop();
});

function newQueue(): ContainerQueue {
  return new ContainerQueue({
    client: rec.client,
    logger: recordingLogger(),
    // Each reading is a distinct, later time: thresholds show which poll set them.
    now: () => ++tick,
    selection: {
      instanceTypes: [type1],
      reserveExtraRAM: 0,
      localKeepBlobBuffersPerVCPU: 0,
      maximumPriceFactor: 1.5,
    },
  });
}

/** Queued containers `from`..`from+n-1` with a 1 GiB tmp mount (50 GiB for every 100th). */
function seed(from: number, n: number): ContainerUuid[] {
  return seedContainers(api.store, n, (i) => ({
    uuid: testContainerUuid(from + i),
    mounts: { "/tmp": { kind: "tmp", capacity: (from + i) % 100 === 0 ? 50 * GiB : GiB } },
  })) as ContainerUuid[];
}

const setRow = (sql: string, ...args: unknown[]) => api.store.db.prepare(sql).run(...args);

describe("ContainerQueue polling many containers", () => {
  it("adds 1,000 new containers with one mounts list per 100, four at a time, and no per-container GET", async () => {
    const uuids = seed(0, 1000);
    const q = newQueue();
    expect(await q.update()).toEqual({ ok: true });

    const { entries } = q.entries();
    expect(entries.size).toBe(1000);
    expect(rec.gets).toBe(0);
    expect(rec.lists.mounts).toBe(10);
    expect(rec.maxInflight.mounts).toBe(4);
    // Each entry was sized with its own mounts, not a neighbour's.
    const scratch = uuids.map((u) => entries.get(u)?.instanceResources.Scratch ?? 0);
    const [big = 0, small = 0] = scratch;
    expect(big - small).toBe(49 * GiB);
    expect(scratch).toEqual(uuids.map((_, i) => (i % 100 === 0 ? big : small)));
    expect(lines.filter((l) => l.msg === "adding container to queue")).toHaveLength(1000);
  });

  it("publishes what it learnt about known containers before fetching new ones' mounts", async () => {
    const [a, b] = seed(0, 2) as [ContainerUuid, ContainerUuid];
    const q = newQueue();
    await q.update();
    const firstThreshold = q.entries().threshold.getTime();
    let notified = 0;
    q.subscribe(() => notified++);

    // a finished (now "missing" from the queued list), b was put on hold; 150 new arrive.
    setRow("UPDATE containers SET state = 'Complete', priority = 0 WHERE uuid = ?", a);
    setRow("UPDATE containers SET priority = 0 WHERE uuid = ?", b);
    const fresh = seed(1000, 150);
    rec.holdMounts = gate();
    const polling = q.update();
    await rec.holdMounts.reached;

    const mid = q.entries();
    expect(notified).toBe(1);
    expect(mid.threshold.getTime()).toBeGreaterThan(firstThreshold);
    expect(mid.entries.get(a)?.container.state).toBe("Complete");
    expect(mid.entries.get(b)?.container.priority).toBe(0);
    expect(fresh.some((u) => mid.entries.has(u))).toBe(false);

    rec.holdMounts.open();
    expect(await polling).toEqual({ ok: true });
    expect(fresh.every((u) => q.entries().entries.has(u))).toBe(true);
    // Once more per batch of new containers added.
    expect(notified).toBe(3);
    expect(q.entries().threshold.getTime()).toBe(mid.threshold.getTime());
  });

  it("leaves a new container locked while its mounts were fetched to the next poll", async () => {
    const [c] = seed(0, 1) as [ContainerUuid];
    const q = newQueue();
    rec.holdMounts = gate();
    const polling = q.update();
    await rec.holdMounts.reached;
    // The poll saw it Queued; the lock makes that record stale.
    expect(await q.lock(c)).toEqual({ ok: true });
    rec.holdMounts.open();
    expect(await polling).toEqual({ ok: true });
    expect(q.get(c)).toBeUndefined();

    rec.holdMounts = undefined;
    expect(await q.update()).toEqual({ ok: true });
    expect(q.get(c)?.state).toBe("Locked");
  });

  it("skips, with a warning, a container gone before its mounts came, and a batch whose list failed", async () => {
    const [gone, kept] = seed(0, 2) as [ContainerUuid, ContainerUuid];
    const q = newQueue();
    rec.holdMounts = gate();
    let polling = q.update();
    await rec.holdMounts.reached;
    setRow("DELETE FROM containers WHERE uuid = ?", gone);
    rec.holdMounts.open();
    expect(await polling).toEqual({ ok: true });
    expect(q.get(gone)).toBeUndefined();
    expect(q.get(kept)?.state).toBe("Queued");
    expect(lines).toContainEqual({
      msg: "error getting mounts",
      fields: {
        ContainerUUID: gone,
        error: "container not returned by the controller (deleted?)",
      },
    });

    // The mounts list itself fails: the poll still succeeds; the new container waits.
    const [late] = seed(10, 1) as [ContainerUuid];
    lines = [];
    rec.holdMounts = gate();
    polling = q.update();
    await rec.holdMounts.reached;
    api.faults.add({ pathIncludes: "arvados/v1/containers", status: 422 });
    rec.holdMounts.open();
    expect(await polling).toEqual({ ok: true });
    expect(q.get(late)).toBeUndefined();
    const warned = lines.find((l) => l.msg === "error getting mounts");
    expect(warned?.fields["ContainerUUID"]).toBe(late);
    expect(String(warned?.fields["error"])).toContain("422");

    rec.holdMounts = undefined;
    expect(await q.update()).toEqual({ ok: true });
    expect(q.get(late)?.state).toBe("Queued");
  });

  it("fetches missing containers in batches of 20, four at a time, without a trailing empty page", async () => {
    const uuids = seed(0, 100);
    const q = newQueue();
    await q.update();
    setRow("UPDATE containers SET priority = 0");
    const before = rec.lists.missing;
    expect(await q.update()).toEqual({ ok: true });
    expect(rec.lists.missing - before).toBe(5);
    expect(rec.maxInflight.missing).toBe(4);
    expect(uuids.every((u) => q.get(u)?.priority === 0)).toBe(true);
  });

  it("fails the poll when a missing batch returns a container it did not ask for", async () => {
    const [a, b] = seed(0, 2) as [ContainerUuid, ContainerUuid];
    const q = newQueue();
    await q.update();
    setRow("UPDATE containers SET priority = 0 WHERE uuid = ?", a);
    const inner = rec.client.containers.list;
    rec.client.containers.list = (async (params: never, opts: never) => {
      const page = await inner(params, opts);
      const f = (params as { filters?: Filter[] }).filters?.[0];
      if (f?.[0] !== "uuid" || f[1] !== "in" || page.items.length === 0) return page;
      const extra = await client.containers.get(b, { select: ["uuid", "state", "priority"] });
      return { ...page, items: [...page.items, extra] };
    }) as never;
    const r = await q.update();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toBe(
      "BUG? server response did not match requested filters, erroring out rather than risk deadlock",
    );
  });
});
