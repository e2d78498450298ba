import { WORKER_STATES } from "@dispatch-cloud/arvados-types";
import { Counter, Gauge, Summary, type Registry } from "prom-client";
import { BOOT_OUTCOMES } from "./types.js";

/** Worker categories of the `instances_*` gauges. */
export type InstanceCategory = "inuse" | "hold" | "booting" | "unknown" | "idle";
export const INSTANCE_CATEGORIES: readonly InstanceCategory[] = [
  "inuse",
  "hold",
  "booting",
  "unknown",
  "idle",
];

const PREFIX = "arvados_dispatchcloud_";
// Arvados's summary objectives {0.5, 0.9, 0.95, 0.99}; prom-client keeps exact quantiles over a
// sliding window (Go's default: 10 minutes in 5 buckets).
const summaryOptions = { percentiles: [0.5, 0.9, 0.95, 0.99], maxAgeSeconds: 600, ageBuckets: 5 };

/** The pool's metrics, with Arvados's names and labels. */
export class PoolMetrics {
  readonly containersRunning: Gauge;
  readonly probeAgeMax: Gauge;
  readonly probeAgeMedian: Gauge;
  readonly instancesTotal: Gauge<"category" | "instance_type">;
  readonly instancesPrice: Gauge<"category">;
  readonly vcpusTotal: Gauge<"category">;
  readonly memoryBytesTotal: Gauge<"category">;
  readonly bootOutcomes: Counter<"outcome">;
  readonly instancesDisappeared: Counter<"state">;
  readonly timeToSsh: Summary;
  readonly timeToReady: Summary;
  readonly timeFromShutdownToGone: Summary;
  readonly timeFromQueueToCrunchRun: Summary;
  readonly runProbeDuration: Summary<"outcome">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.containersRunning = new Gauge({
      name: `${PREFIX}containers_running`,
      help: "Number of containers reported running by cloud VMs.",
      registers,
    });
    this.probeAgeMax = new Gauge({
      name: `${PREFIX}probe_age_seconds_max`,
      help: "Maximum number of seconds since an instance's most recent successful probe.",
      registers,
    });
    this.probeAgeMedian = new Gauge({
      name: `${PREFIX}probe_age_seconds_median`,
      help: "Median number of seconds since an instance's most recent successful probe.",
      registers,
    });
    this.instancesTotal = new Gauge({
      name: `${PREFIX}instances_total`,
      help: "Number of cloud VMs.",
      labelNames: ["category", "instance_type"],
      registers,
    });
    this.instancesPrice = new Gauge({
      name: `${PREFIX}instances_price`,
      help: "Price of cloud VMs.",
      labelNames: ["category"],
      registers,
    });
    this.vcpusTotal = new Gauge({
      name: `${PREFIX}vcpus_total`,
      help: "Total VCPUs on all cloud VMs.",
      labelNames: ["category"],
      registers,
    });
    this.memoryBytesTotal = new Gauge({
      name: `${PREFIX}memory_bytes_total`,
      help: "Total memory on all cloud VMs.",
      labelNames: ["category"],
      registers,
    });
    this.bootOutcomes = new Counter({
      name: `${PREFIX}boot_outcomes`,
      help: "Boot outcomes by type.",
      labelNames: ["outcome"],
      registers,
    });
    for (const o of BOOT_OUTCOMES) this.bootOutcomes.inc({ outcome: o }, 0);
    this.instancesDisappeared = new Counter({
      name: `${PREFIX}instances_disappeared`,
      help: "Number of occurrences of an instance disappearing from the cloud provider's list of instances.",
      labelNames: ["state"],
      registers,
    });
    for (const s of WORKER_STATES) this.instancesDisappeared.inc({ state: s }, 0);
    this.timeToSsh = new Summary({
      name: `${PREFIX}instances_time_to_ssh_seconds`,
      help: "Number of seconds between instance creation and the first successful SSH connection.",
      registers,
      ...summaryOptions,
    });
    this.timeToReady = new Summary({
      name: `${PREFIX}instances_time_to_ready_for_container_seconds`,
      help: "Number of seconds between the first successful SSH connection and ready to run a container.",
      registers,
      ...summaryOptions,
    });
    this.timeFromShutdownToGone = new Summary({
      name: `${PREFIX}instances_time_from_shutdown_request_to_disappearance_seconds`,
      help: "Number of seconds between the first shutdown attempt and the disappearance of the worker.",
      registers,
      ...summaryOptions,
    });
    this.timeFromQueueToCrunchRun = new Summary({
      name: `${PREFIX}containers_time_from_queue_to_crunch_run_seconds`,
      help: "Number of seconds between the queuing of a container and the start of crunch-run.",
      registers,
      ...summaryOptions,
    });
    this.runProbeDuration = new Summary({
      name: `${PREFIX}instances_run_probe_duration_seconds`,
      help: "Number of seconds per runProbe.",
      labelNames: ["outcome"],
      registers,
      ...summaryOptions,
    });
  }
}
