import { Counter, Gauge, type Registry } from "prom-client";

/** The EC2 driver's own metrics, with Arvados's names. */
export interface Ec2Metrics {
  readonly instances: Gauge<"subnet_id">;
  readonly instanceStarts: Counter<"subnet_id" | "success">;
}

/**
 * Metrics registered in `registry`, or unregistered ones when it is null (cloudtest), so the
 * driver code updates them the same way either way.
 */
export function createEc2Metrics(
  registry: Registry | null,
  subnetIds: readonly string[],
): Ec2Metrics {
  const registers = registry === null ? [] : [registry];
  const instances = new Gauge({
    name: "arvados_dispatchcloud_ec2_instances",
    help: "Number of instances running",
    labelNames: ["subnet_id"] as const,
    registers,
  });
  const instanceStarts = new Counter({
    name: "arvados_dispatchcloud_ec2_instance_starts_total",
    help: "Number of attempts to start a new instance",
    labelNames: ["subnet_id", "success"] as const,
    registers,
  });
  for (const subnet of subnetIds.length === 0 ? [""] : subnetIds) {
    instanceStarts.labels(subnet, "0").inc(0);
    instanceStarts.labels(subnet, "1").inc(0);
  }
  return { instances, instanceStarts };
}
