// SlotIndex against the walk it replaces: for generated worlds (instances of random types,
// states, idle behaviors and loads; containers with random needs and eligible types; creates
// during the pass), every choice and every warning must be exactly those of one walk over all
// instances in pass order, as the mapping pass did before the index existed.
import type {
  ContainerUuid,
  IdleBehavior,
  InstanceId,
  InstanceResources,
  InstanceType,
  Logger,
  QueueEntry,
  WorkerState,
} from "@dispatch-cloud/arvados-types";
import { describe, expect, it } from "vitest";
import { FreeResources } from "./resources.js";
import { compareSlots, SlotIndex, usableStates, type Slot } from "./slots.js";
import { fixtureEntry, fixtureType, fixtureUuid, RecordingLogger, Rng } from "./testing/index.js";

const GiB = 2 ** 30;

// ---- the reference: the pass's walk over every instance, as it was -----------------------

function referenceBest(
  slots: readonly Slot[],
  ent: QueueEntry,
  maxRun: number,
  logger: Logger,
): Slot | undefined {
  const need = ent.instanceResources;
  let best: Slot | undefined;
  for (const slot of slots) {
    const v = slot.view;
    if (!usableStates.has(v.worker_state) || v.idle_behavior !== "run") continue;
    if (maxRun > 0 && maxRun <= slot.containers.length) continue;
    if (!ent.instanceTypes.some((t) => t.Name === v.arvados_instance_type)) continue;
    if (!slot.free.accommodates(need)) {
      if (v.worker_state === "idle" && slot.containers.length === 0) {
        logger.warn(
          { ContainerUUID: ent.container.uuid, Instance: v.instance },
          `BUG? insufficient resources on idle instance ${v.instance} type ${v.arvados_instance_type} for container ${ent.container.uuid}`,
        );
      }
      continue;
    }
    if (best === undefined) {
      best = slot;
    } else if (slot.containers.length > best.containers.length) {
      best = slot;
    } else if (
      (best.view.worker_state === "booting" || best.view.worker_state === "unknown") &&
      (v.worker_state === "idle" || v.worker_state === "running")
    ) {
      best = slot;
    }
  }
  return best;
}

/** Where the pass put an instance it created: after every one that does not sort after it. */
function referenceInsert(slots: Slot[], slot: Slot): void {
  let at = 0;
  for (const s of slots) {
    if (compareSlots(s, slot) > 0) break;
    at++;
  }
  slots.splice(at, 0, slot);
}

// ---- generated worlds ---------------------------------------------------------------------

const STATES: WorkerState[] = ["booting", "idle", "idle", "running", "unknown", "shutdown"];
const BEHAVIORS: IdleBehavior[] = ["run", "run", "run", "run", "hold", "drain"];
const CPUS = [0, 0, 1, 1, 1, 2, 2, 3, 4];
const RAMS = [0.25, 0.5, 1, 1, 2, 3, 4.5];

interface Outcome {
  choices: number;
  warnings: number;
  creates: number;
  reserves: number;
}

function runWorld(seed: number): Outcome {
  const rng = new Rng(seed);
  // Types: some of type1..type6, preemptible twins, and look-alikes with another name but the
  // same price and size, so instances of different groups tie in pass order.
  const types: InstanceType[] = [];
  for (let i = 1; i <= 6; i++) {
    if (!rng.chance(0.7)) continue;
    types.push(fixtureType(i));
    if (rng.chance(0.4)) types.push(fixtureType(i, { Name: `type${i}.preemptible` }));
    if (rng.chance(0.3)) types.push(fixtureType(i, { Name: `type${i}.twin` }));
  }
  if (types.length === 0) types.push(fixtureType(rng.int(1, 4)));
  const byName = new Map(types.map((t) => [t.Name, t]));
  const maxRun = rng.chance(0.6) ? 0 : rng.int(1, 3);

  let nextId = 1;
  const newId = (): InstanceId =>
    (rng.chance(0.1) ? "" : `i-${String(nextId++).padStart(5, "0")}`) as InstanceId;
  const slots: Slot[] = [];
  for (let n = rng.int(0, 14); n > 0; n--) {
    // Now and then an instance of a type the configuration no longer has.
    const typeName = rng.chance(0.05) ? "gone" : rng.pick(types).Name;
    const type = byName.get(typeName);
    const price = type === undefined ? 0.5 : rng.chance(0.1) ? rng.pick(types).Price : type.Price;
    const state = rng.pick(STATES);
    const running: ContainerUuid[] = [];
    const free = FreeResources.ofType(type);
    if (state === "running" || state === "unknown") {
      for (let k = rng.int(0, 3); k > 0; k--) {
        running.push(fixtureUuid(500_000 + seed * 100 + nextId * 5 + k));
        free.subtract(randomNeed(rng));
      }
    }
    slots.push({
      view: {
        instance: newId(),
        price,
        arvados_instance_type: typeName,
        worker_state: state,
        idle_behavior: rng.pick(BEHAVIORS),
        running_container_uuids: running,
      },
      type,
      free,
      containers: running,
    });
  }
  slots.sort(compareSlots);

  const refLog = new RecordingLogger();
  const idxLog = new RecordingLogger();
  const index = new SlotIndex(slots, maxRun, idxLog);
  const out: Outcome = { choices: 0, warnings: 0, creates: 0, reserves: 0 };

  for (let c = rng.int(5, 60); c > 0; c--) {
    const ent = entry(rng, types, c);
    const ref = referenceBest(slots, ent, maxRun, refLog);
    const got = index.best(ent);
    expect(got, `seed ${seed}: choice for container ${c}`).toBe(ref);
    if (got !== undefined) out.choices++;
    if (got !== undefined && rng.chance(0.85)) {
      index.reserve(got, ent);
      out.reserves++;
    } else if (rng.chance(0.4)) {
      // A create during the pass, placed as the pass places it.
      const first = ent.instanceTypes[0];
      const t = rng.chance(0.8) && first !== undefined ? first : rng.pick(types);
      const slot: Slot = {
        view: {
          instance: "" as InstanceId,
          price: t.Price,
          arvados_instance_type: t.Name,
          worker_state: "booting",
          idle_behavior: "run",
          running_container_uuids: null,
        },
        type: t,
        free: FreeResources.ofType(t),
        containers: [],
      };
      referenceInsert(slots, slot);
      index.add(slot);
      index.reserve(slot, ent);
      out.creates++;
    }
  }
  expect(idxLog.lines, `seed ${seed}: warnings`).toEqual(refLog.lines);
  out.warnings = refLog.lines.length;
  return out;
}

function randomNeed(rng: Rng): InstanceResources {
  return {
    VCPUs: rng.pick(CPUS),
    RAM: Math.floor((rng.pick(RAMS) * GiB * 100) / 95),
    Scratch: rng.chance(0.2) ? rng.int(0, 3) * GiB : 0,
    GPUs: 0,
    GPUVRAM: 0,
  };
}

/** A container with a random need and eligible types: mostly those that fit, cheapest first. */
function entry(rng: Rng, types: readonly InstanceType[], n: number): QueueEntry {
  const r = randomNeed(rng);
  let eligible: InstanceType[];
  if (rng.chance(0.1)) {
    // Types picked without regard to fit (an idle empty instance may then be too small), and
    // sometimes one listed twice.
    eligible = types.filter(() => rng.chance(0.4));
    const first = eligible[0];
    if (first !== undefined && rng.chance(0.3)) eligible.push(first);
  } else {
    const fit = types
      .filter((t) => t.VCPUs >= r.VCPUs && t.RAM >= r.RAM && t.Scratch >= r.Scratch)
      .sort((a, b) => a.Price - b.Price || b.RAM - a.RAM || (a.Name < b.Name ? -1 : 1));
    const factor = rng.pick([1, 1.5, 2, 4]);
    const cheapest = fit[0];
    eligible = fit.filter((t) => t === cheapest || t.Price <= (cheapest?.Price ?? 0) * factor);
  }
  return fixtureEntry(n, eligible, r);
}

describe("SlotIndex chooses exactly as a walk over every instance", () => {
  it("agrees on 500 generated worlds, and the worlds exercise every branch", () => {
    const total: Outcome = { choices: 0, warnings: 0, creates: 0, reserves: 0 };
    for (let seed = 1; seed <= 500; seed++) {
      const o = runWorld(seed);
      total.choices += o.choices;
      total.warnings += o.warnings;
      total.creates += o.creates;
      total.reserves += o.reserves;
    }
    // Not vacuous: many choices, creates placed among other instances, warnings compared.
    expect(total.choices).toBeGreaterThan(2000);
    expect(total.creates).toBeGreaterThan(500);
    expect(total.reserves).toBeGreaterThan(1000);
    expect(total.warnings).toBeGreaterThan(20);
  });

  it("skips a type whose instances had no room for a smaller need, until one is created", () => {
    const t = fixtureType(2);
    const slot = (id: string): Slot => ({
      view: {
        instance: id as InstanceId,
        price: t.Price,
        arvados_instance_type: t.Name,
        worker_state: "running",
        idle_behavior: "run",
        running_container_uuids: [],
      },
      type: t,
      free: FreeResources.ofType(t),
      containers: [],
    });
    const a = slot("i-a");
    const index = new SlotIndex([a], 0, new RecordingLogger());
    const ent = (n: number, vcpus: number): QueueEntry =>
      fixtureEntry(n, [t], { VCPUs: vcpus, RAM: GiB, Scratch: 0, GPUs: 0, GPUVRAM: 0 });
    index.reserve(a, ent(1, 2));
    expect(index.best(ent(2, 1))).toBeUndefined();
    expect(index.best(ent(3, 2))).toBeUndefined();
    // A new instance of the type has room again.
    const b = slot("");
    index.add(b);
    expect(index.best(ent(4, 1))).toBe(b);
  });
});
