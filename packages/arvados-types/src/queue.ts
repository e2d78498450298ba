// The dispatcher's queue as its readers see it: the queue produces entries, the scheduler maps
// them to instances, the management API serves them.
import type { Container, SchedulingParameters } from "./container.js";
import type { ContainerUuid } from "./ids.js";
import type { InstanceType } from "./instance-type.js";

/** What a container needs from an instance, overheads included (JSON `instance_resources`). */
export interface InstanceResources {
  readonly VCPUs: number;
  readonly RAM: number;
  readonly Scratch: number;
  readonly GPUs: number;
  /** Bytes per device. */
  readonly GPUVRAM: number;
}

/** The container fields every reader of a queue entry may rely on. */
export type QueuedContainer = Pick<Container, "uuid" | "state" | "priority" | "created_at"> & {
  readonly scheduling_parameters: Partial<Pick<SchedulingParameters, "supervisor" | "preemptible">>;
};

/** One cached entry; types and resources are computed once, when the entry is first seen. */
export interface QueueEntry<C = QueuedContainer> {
  readonly container: C;
  /** Eligible types, cheapest first; empty only for an unsatisfiable non-Queued/Locked entry. */
  readonly instanceTypes: readonly InstanceType[];
  readonly instanceResources: InstanceResources;
  readonly firstSeenAt: Date;
}

/** A queue snapshot: every entry was fetched no earlier than `threshold`. */
export interface QueueSnapshot<C = QueuedContainer> {
  readonly entries: ReadonlyMap<ContainerUuid, QueueEntry<C>>;
  readonly threshold: Date;
}

/** The outcome of a lock/unlock/cancel/poll: failures are values, with the cause for the log. */
export type QueueOpResult = { readonly ok: true } | { readonly ok: false; readonly error: Error };

/**
 * Whether the queue may drop a container's entry: it finished (Complete, Cancelled), or it is
 * Queued with priority 0, which nobody wants run.
 */
export function isForgettable(c: Pick<Container, "state" | "priority">): boolean {
  return (
    c.state === "Complete" || c.state === "Cancelled" || (c.state === "Queued" && c.priority === 0)
  );
}
