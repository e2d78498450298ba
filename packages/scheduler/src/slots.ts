// The instances of one mapping pass and the choice of where a container goes. Internal to the
// package: the scheduler builds one SlotIndex per pass.
import type {
  ContainerUuid,
  InstanceResources,
  InstanceType,
  InstanceView,
  Logger,
  QueueEntry,
  WorkerState,
} from "@dispatch-cloud/arvados-types";
import type { FreeResources } from "./resources.js";

/** What the pass reads of an instance view. */
export type SlotView = Pick<
  InstanceView,
  | "instance"
  | "price"
  | "arvados_instance_type"
  | "worker_state"
  | "idle_behavior"
  | "running_container_uuids"
>;

/** One instance while a pass packs containers onto it. */
export interface Slot {
  view: SlotView;
  type: InstanceType | undefined;
  free: FreeResources;
  containers: ContainerUuid[];
}

/** States in which a worker can take (or is about to take) containers. */
export const usableStates: ReadonlySet<WorkerState> = new Set([
  "unknown",
  "running",
  "booting",
  "idle",
]);

/** Cheapest first; among equal prices the bigger type (VCPUs, RAM, scratch), then by id. */
export function compareSlots(a: Slot, b: Slot): number {
  if (a.view.price !== b.view.price) return a.view.price - b.view.price;
  const ta = a.type;
  const tb = b.type;
  const d =
    (tb?.VCPUs ?? 0) - (ta?.VCPUs ?? 0) ||
    (tb?.RAM ?? 0) - (ta?.RAM ?? 0) ||
    (tb?.Scratch ?? 0) - (ta?.Scratch ?? 0);
  if (d !== 0) return d;
  return a.view.instance < b.view.instance ? -1 : a.view.instance > b.view.instance ? 1 : 0;
}

/** A slot as the index keeps it: its place in the pass's order. */
interface Entry {
  readonly slot: Slot;
  /** Order of arrival: the sorted position for the pass's instances, then creates in turn. */
  readonly seq: number;
  /** Created during the pass (so `seq` alone does not place it among the others). */
  readonly created: boolean;
}

interface Group {
  /** Usable `run` slots of one instance type name, in pass order. */
  readonly entries: Entry[];
  /** The `best` call that last visited this group (a container may list a type twice). */
  visited: number;
  /**
   * Needs for which no slot here had room (and none was idle and empty). Room only shrinks
   * during a pass, so any need at least as large finds none either: a backed-up queue then
   * skips the group instead of walking it for every container. Cleared when a slot is added.
   */
  readonly failed: InstanceResources[];
}

/** How many failed needs a group remembers; incomparable needs beyond that replace the oldest. */
const maxFailed = 4;

/**
 * The pass's instances grouped by instance type name, keeping only those that can take
 * containers (usable state, idle behavior `run`), so choosing an instance for a container
 * visits only instances of its eligible types instead of the whole fleet.
 *
 * The order of the pass is: the instances sorted by compareSlots (stable), with each instance
 * created during the pass placed after every instance that does not sort after it. That is the
 * total order (compareSlots, arrival), which `best` reproduces across groups so its choice is
 * exactly that of one walk over all instances in pass order.
 */
export class SlotIndex {
  private readonly groups = new Map<string, Group>();
  private seq = 0;
  private visits = 0;
  private readonly scratch: Entry[] = [];
  /** Whether failed needs may be remembered (room has only shrunk so far this pass). */
  private memo = true;

  /**
   * @param sorted the pass's instances, already sorted by compareSlots.
   * @param maxRunning Containers.CloudVMs.MaxRunningContainersPerInstance (0 = unlimited).
   */
  constructor(
    sorted: readonly Slot[],
    private readonly maxRunning: number,
    private readonly logger: Logger,
  ) {
    for (const slot of sorted) this.insert(slot, false);
  }

  /** Add an instance created during the pass, after those that do not sort after it. */
  add(slot: Slot): void {
    this.insert(slot, true);
  }

  private insert(slot: Slot, created: boolean): void {
    const entry: Entry = { slot, seq: this.seq++, created };
    const v = slot.view;
    if (!usableStates.has(v.worker_state) || v.idle_behavior !== "run") return;
    let g = this.groups.get(v.arvados_instance_type);
    if (g === undefined) {
      g = { entries: [], visited: 0, failed: [] };
      this.groups.set(v.arvados_instance_type, g);
    }
    g.failed.length = 0;
    const list = g.entries;
    let at = list.length;
    if (created) while (at > 0 && order(list[at - 1]!, entry) > 0) at--;
    list.splice(at, 0, entry);
  }

  /** Put a container on a slot: take its needs and count it. */
  reserve(slot: Slot, ent: QueueEntry): void {
    const need = ent.instanceResources;
    // A negative need would give room back, and failures remembered so far no longer hold.
    // The queue never computes one; if it ever did, the index just stops remembering.
    if (!(
      need.VCPUs >= 0 &&
      need.RAM >= 0 &&
      need.Scratch >= 0 &&
      need.GPUs >= 0 &&
      need.GPUVRAM >= 0
    )) {
      this.memo = false;
    }
    slot.free.subtract(need);
    slot.containers.push(ent.container.uuid);
  }

  /**
   * The instance a container should go to, or undefined: among the instances of its eligible
   * types that have room, the one with the most containers already; an idle or running one is
   * preferred to a booting or unknown one found earlier. Warns about an idle, empty instance
   * that cannot hold a container of a type it was chosen for.
   */
  best(ent: QueueEntry): Slot | undefined {
    const need = ent.instanceResources;
    const maxRun = this.maxRunning;
    const visit = ++this.visits;
    const cands = this.scratch;
    cands.length = 0;
    let groupsSeen = 0;
    for (const t of ent.instanceTypes) {
      const g = this.groups.get(t.Name);
      if (g === undefined || g.visited === visit) continue;
      g.visited = visit;
      if (this.memo && coveredByFailure(need, g.failed)) continue;
      const before = cands.length;
      for (const e of g.entries) {
        const s = e.slot;
        if (maxRun > 0 && maxRun <= s.containers.length) continue;
        // Keep the ones that fit, and the idle empty ones that do not (they are warned about).
        if (
          s.free.accommodates(need) ||
          (s.view.worker_state === "idle" && s.containers.length === 0)
        ) {
          cands.push(e);
        }
      }
      if (cands.length > before) groupsSeen++;
      else if (this.memo) remember(g.failed, need);
    }
    if (groupsSeen > 1 && cands.length > 1) cands.sort(order);

    let best: Slot | undefined;
    for (const { slot } of cands) {
      const v = slot.view;
      if (!slot.free.accommodates(need)) {
        this.logger.warn(
          { ContainerUUID: ent.container.uuid, Instance: v.instance },
          `BUG? insufficient resources on idle instance ${v.instance} type ${v.arvados_instance_type} for container ${ent.container.uuid}`,
        );
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
    cands.length = 0;
    return best;
  }
}

/** Whether `need` is at least `failed` in every figure (so it cannot fit where that did not). */
function covers(need: InstanceResources, failed: InstanceResources): boolean {
  return (
    need.VCPUs >= failed.VCPUs &&
    need.RAM >= failed.RAM &&
    need.Scratch >= failed.Scratch &&
    need.GPUs >= failed.GPUs &&
    need.GPUVRAM >= failed.GPUVRAM
  );
}

function coveredByFailure(need: InstanceResources, failed: readonly InstanceResources[]): boolean {
  for (const f of failed) if (covers(need, f)) return true;
  return false;
}

/** Add a failed need, dropping those it covers; a full list forgets its oldest. */
function remember(failed: InstanceResources[], need: InstanceResources): void {
  let w = 0;
  for (const f of failed) if (!covers(f, need)) failed[w++] = f;
  failed.length = w;
  if (failed.length >= maxFailed) failed.shift();
  failed.push(need);
}

/** Pass order: compareSlots, then arrival. Sorted arrival alone orders the pass's instances. */
function order(a: Entry, b: Entry): number {
  if (!a.created && !b.created) return a.seq - b.seq;
  return compareSlots(a.slot, b.slot) || a.seq - b.seq;
}
