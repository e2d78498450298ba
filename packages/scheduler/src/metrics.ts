import { Gauge, type Registry } from "prom-client";

/** The scheduler's gauges, with Arvados's names. Unregistered when no registry is given. */
export class SchedulerMetrics {
  readonly allocatedNotStarted: Gauge;
  readonly notAllocatedOverQuota: Gauge;
  readonly longestWaitTimeSeconds: Gauge;
  readonly last503Time: Gauge;
  readonly maxConcurrentContainers: Gauge;
  readonly atQuota: Gauge;

  constructor(registry: Registry | undefined, atQuota: () => boolean) {
    const registers = registry === undefined ? [] : [registry];
    const gauge = (name: string, help: string) =>
      new Gauge({ name: `arvados_dispatchcloud_${name}`, help, registers });
    this.allocatedNotStarted = gauge(
      "containers_allocated_not_started",
      "Number of containers allocated to a worker but not started yet (worker is booting or running a previous container).",
    );
    this.notAllocatedOverQuota = gauge(
      "containers_not_allocated_over_quota",
      "Number of containers not allocated to a worker because the system has hit a quota.",
    );
    this.longestWaitTimeSeconds = gauge(
      "containers_longest_wait_time_seconds",
      "Current longest wait time of any container since queuing, and before the start of crunch-run.",
    );
    this.last503Time = gauge("last_503_time", "Time of most recent 503 error received from API.");
    this.maxConcurrentContainers = gauge(
      "max_concurrent_containers",
      "Dynamically assigned limit on number of containers scheduled concurrency, set after receiving 503 errors from API.",
    );
    this.atQuota = new Gauge({
      name: "arvados_dispatchcloud_at_quota",
      help: "Flag indicating the cloud driver is reporting an at-quota condition.",
      registers,
      collect() {
        this.set(atQuota() ? 1 : 0);
      },
    });
  }
}
