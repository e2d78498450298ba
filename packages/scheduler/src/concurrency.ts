// The dynamic cap on containers running or being started (dispatcher-core §3.1, §3.2 step 4):
// lowered when the controller answers 503 or the cloud reports quota, raised again slowly.
import type { SchedulerMetrics } from "./metrics.js";

const quietAfter503Ms = 60_000;

/** This pass's caps. */
export interface PassLimits {
  /** On containers running or being started; 0 = none. */
  readonly maxContainers: number;
  /** On supervisor containers; 0 = none. */
  readonly maxSupervisors: number;
}

export class ConcurrencyLimit {
  #maxContainers: number;
  #last503time = 0;
  #instancesWithinQuota = 0;
  readonly #supervisorFraction: number;
  readonly #metrics: SchedulerMetrics;

  /**
   * @param initial InitialQuotaEstimate if > 0, else MaxInstances (0 = unlimited).
   * @param supervisorFraction SupervisorFraction (0 = no supervisor limit).
   */
  constructor(initial: number, supervisorFraction: number, metrics: SchedulerMetrics) {
    this.#maxContainers = initial;
    this.#supervisorFraction = supervisorFraction;
    this.#metrics = metrics;
  }

  /** The current cap (0 = none). */
  get maxContainers(): number {
    return this.#maxContainers;
  }

  /**
   * Adjust the cap at the start of a pass. `running` counts the pool's running, starting and
   * exited-not-forgotten containers; `totalInstances` its workers; `last503` when the API
   * client last saw a 503 (0 = never).
   */
  adjust(
    running: number,
    totalInstances: number,
    now: number,
    last503: number,
    atQuota: () => boolean,
  ): PassLimits {
    if (last503 > this.#last503time) {
      this.#last503time = last503;
      this.#maxContainers = Math.max(1, running - 1);
    } else if (
      this.#maxContainers > 0 &&
      (this.#last503time === 0 || now - this.#last503time > quietAfter503Ms)
    ) {
      const raised = Math.floor((running * 11) / 10) + 1;
      if (raised > this.#maxContainers) this.#maxContainers = raised;
    }
    this.#metrics.last503Time.set(this.#last503time === 0 ? 0 : this.#last503time / 1000);
    if (this.#instancesWithinQuota > 0 && this.#instancesWithinQuota < totalInstances) {
      this.#instancesWithinQuota = totalInstances;
    }
    if (atQuota()) {
      if (this.#maxContainers === 0 || this.#maxContainers > totalInstances) {
        this.#maxContainers = totalInstances > 0 ? totalInstances : 1;
      }
      this.#instancesWithinQuota = totalInstances;
    } else if (
      this.#instancesWithinQuota > 0 &&
      this.#maxContainers > this.#instancesWithinQuota + 1
    ) {
      this.#maxContainers = this.#instancesWithinQuota + 1;
    }
    this.#metrics.maxConcurrentContainers.set(this.#maxContainers);
    const maxContainers = this.#maxContainers;
    let maxSupervisors = Math.floor(maxContainers * this.#supervisorFraction);
    if (maxSupervisors < 1 && this.#supervisorFraction > 0 && maxContainers > 0) maxSupervisors = 1;
    return { maxContainers, maxSupervisors };
  }
}
