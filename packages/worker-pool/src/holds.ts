import type { InstanceType, Logger } from "@dispatch-cloud/arvados-types";
import type { CapacityScope } from "@dispatch-cloud/cloud-driver-api";
import { CAPACITY_ERROR_TTL_MS, QUOTA_ERROR_TTL_MS } from "./settings.js";

/**
 * What the cloud's quota and capacity errors hold back. A quota error holds every create until
 * an instance goes away (or, with none running, for a while); a capacity error holds the creates
 * it applies to (everything, the type's quota group, or the type) for a while.
 */
export class CreateHolds {
  /** Set after a quota error: "at quota until fewer than this many instances exist". */
  #quotaFewerThan: number | null = null;
  #quotaUntil = 0;
  /** Capacity holds by namespaced key (`all`, `group:…`, `type:…`) → deadline. */
  readonly #capacity = new Map<string, number>();
  readonly #quotaGroup: (type: InstanceType) => string;

  /** `quotaGroup` is the instance set's quota bucket of a type. */
  constructor(quotaGroup: (type: InstanceType) => string) {
    this.#quotaGroup = quotaGroup;
  }

  /** No creates until instances go away (quota error, or MaxInstances reached). */
  atQuota(now: number, instances: number, maxInstances: number): boolean {
    if (this.#quotaFewerThan !== null) return true;
    if (now < this.#quotaUntil) return true;
    return maxInstances > 0 && instances >= maxInstances;
  }

  /** A capacity error holds creates of this type (for everything, its quota group or itself). */
  atCapacity(type: InstanceType, now: number): boolean {
    for (const key of [capAll, this.#groupKey(type), typeKey(type)]) {
      const until = this.#capacity.get(key);
      if (until !== undefined && now < until) return true;
    }
    return false;
  }

  /**
   * A create failed with a quota error while `others` instances exist or are being created.
   * Returns when the hold it set ends by itself (null: it ends when an instance goes away).
   */
  quotaError(others: number, now: number, log: Logger): number | null {
    if (others < 1) {
      this.#quotaUntil = now + QUOTA_ERROR_TTL_MS;
      log.info({}, "quota error with 0 running -- waiting for quotaErrorTTL");
      return this.#quotaUntil;
    }
    if (this.#quotaFewerThan === null || others < this.#quotaFewerThan) {
      this.#quotaFewerThan = others;
      this.#quotaUntil = 0;
      log.info({ n: others }, "quota error -- waiting for next instance shutdown");
    }
    return null;
  }

  /** A create of `type` failed with a capacity error. Returns when the hold ends. */
  capacityError(scope: CapacityScope, type: InstanceType, now: number, log: Logger): number {
    const key =
      scope === "instance-type"
        ? typeKey(type)
        : scope === "quota-group"
          ? this.#groupKey(type)
          : capAll;
    const until = now + CAPACITY_ERROR_TTL_MS;
    this.#capacity.set(key, until);
    log.info({ scope }, "capacity error -- pausing instance create calls");
    return until;
  }

  /** Lift the quota hold once fewer instances exist than when it was set. True if lifted. */
  releaseQuota(instances: number): boolean {
    if (this.#quotaFewerThan === null || this.#quotaFewerThan <= instances) return false;
    this.#quotaFewerThan = null;
    return true;
  }

  #groupKey(type: InstanceType): string {
    return `group:${this.#quotaGroup(type)}`;
  }
}

const capAll = "all";
const typeKey = (t: InstanceType): string =>
  `type:${t.Preemptible ? `${t.ProviderType}-preemptible` : t.ProviderType}`;
