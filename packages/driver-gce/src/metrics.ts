import { Counter, Gauge, type Registry } from "prom-client";

/** Per-zone counts, so an operator can see where VMs are and which zones refuse them. */
export interface GceMetrics {
  readonly instances: Gauge<"zone">;
  readonly instanceStarts: Counter<"zone" | "success">;
}

/** Registered in `registry`, or unregistered when it is null (cloudtest). */
export function createGceMetrics(registry: Registry | null, zones: readonly string[]): GceMetrics {
  const registers = registry === null ? [] : [registry];
  const metrics: GceMetrics = {
    instances: new Gauge({
      name: "arvados_dispatchcloud_gce_instances",
      help: "Number of instances listed, by zone",
      labelNames: ["zone"] as const,
      registers,
    }),
    instanceStarts: new Counter({
      name: "arvados_dispatchcloud_gce_instance_starts_total",
      help: "Number of attempts to start a new instance, by zone and outcome",
      labelNames: ["zone", "success"] as const,
      registers,
    }),
  };
  for (const zone of zones) {
    metrics.instanceStarts.labels(zone, "0").inc(0);
    metrics.instanceStarts.labels(zone, "1").inc(0);
  }
  return metrics;
}
