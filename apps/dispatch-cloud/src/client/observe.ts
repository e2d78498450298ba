import { ArvadosApiError, type ArvadosClient } from "@dispatch-cloud/arvados-client";
import type { Container } from "@dispatch-cloud/arvados-types";
import type { Target } from "./target.js";
import { explainApiError } from "./target.js";
import type { Observation } from "./watch.js";

/** The dispatcher's text for a container nobody wants any more (Arvados's PriorityZero). */
export const priorityZeroStatus = (state: string): string =>
  `This container will not be scheduled to run because its priority is 0 and state is ${state}.`;

const isFinal = (state: string): boolean => state === "Complete" || state === "Cancelled";

/**
 * The scheduling status of a Queued or Locked container from the dispatchers' management APIs:
 * the first one that has it queued answers (as Arvados's controller asks them). "" when none
 * has it yet; a failure is shown in its place rather than stopping the watch.
 */
export async function dispatcherStatus(
  target: Target,
  uuid: string,
  signal?: AbortSignal,
): Promise<string> {
  let failure = "";
  for (const dispatcher of target.dispatchers) {
    try {
      return (await dispatcher.dispatch.container(uuid, signal ? { signal } : undefined))
        .scheduling_status;
    } catch (err) {
      if (err instanceof ArvadosApiError && err.isNotFound) continue;
      if (signal?.aborted) throw err;
      failure ||= `(dispatcher: ${explainApiError(err, target.managementTokenSource)})`;
    }
  }
  return failure;
}

const WATCHED = ["uuid", "state", "exit_code", "runtime_status", "priority"] as const;
type Watched = Pick<Container, (typeof WATCHED)[number]>;

export function observation(c: Watched, schedulingStatus: string): Observation {
  const rs = c.runtime_status ?? {};
  const text = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
  return {
    state: c.state,
    exitCode: c.exit_code,
    runtimeError: text(rs.error),
    runtimeNote: text(rs.warning) ?? text(rs.activity),
    schedulingStatus,
    workerState: null,
  };
}

export interface RequestWatch {
  /** The container being followed now (a retry replaces it). */
  current(): string;
  observe(signal?: AbortSignal): Promise<Observation>;
}

/** A Cancelled container replaced by the request's next attempt. */
export interface Retry {
  readonly from: string;
  readonly ended: Observation;
  readonly to: string;
  /** The request's container_count (this is attempt `attempt` of `max`). */
  readonly attempt: number;
  readonly max: number;
}

/**
 * Follows a container request's container. When the container ends Cancelled and the request
 * retries it (Containers.MaxRetryAttempts), `onRetry` is told and the request's newest container
 * is followed instead. (An attempt that ends between two looks shows in the attempt count only.)
 */
export function watchRequest(
  target: Target,
  requestUuid: string,
  containerUuid: string,
  onRetry: (retry: Retry) => void,
): RequestWatch {
  let current = containerUuid;
  const api: ArvadosClient = target.api;
  const observe = async (signal?: AbortSignal): Promise<Observation> => {
    const opts = signal ? { signal } : undefined;
    for (;;) {
      const c = await api.containers.get(current, { select: [...WATCHED] }, opts);
      if (isFinal(c.state)) {
        const cr = await api.containerRequests.get(requestUuid, opts);
        const next = cr.container_uuid;
        // Committed, or already Final after a later attempt that ended meanwhile.
        if (next !== null && next !== current) {
          onRetry({
            from: current,
            ended: observation(c, ""),
            to: next,
            attempt: cr.container_count,
            max: cr.container_count_max,
          });
          current = next;
          continue;
        }
        return observation(c, "");
      }
      let status = "";
      if (c.state === "Queued" && c.priority === 0) status = priorityZeroStatus(c.state);
      else if (c.state === "Queued" || c.state === "Locked")
        status = await dispatcherStatus(target, current, signal);
      return observation(c, status);
    }
  };
  return { current: () => current, observe };
}
