import { WORKER_STATES } from "@dispatch-cloud/arvados-types";
import { Counter, Gauge, Summary, type Registry } from "prom-client";
import { BOOT_OUTCOMES } from "./types.js";
import type { Worker } from "./worker.js";

/** Worker categories of the `instances_*` gauges. */
export const INSTANCE_CATEGORIES = ["inuse", "hold", "booting", "unknown", "idle"] as const;
export type InstanceCategory = (typeof INSTANCE_CATEGORIES)[number];

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
    const summary = (name: string, help: string) =>
      new Summary({ name: `${PREFIX}${name}`, help, registers, ...summaryOptions });
    this.timeToSsh = summary(
      "instances_time_to_ssh_seconds",
      "Number of seconds between instance creation and the first successful SSH connection.",
    );
    this.timeToReady = summary(
      "instances_time_to_ready_for_container_seconds",
      "Number of seconds between the first successful SSH connection and ready to run a container.",
    );
    this.timeFromShutdownToGone = summary(
      "instances_time_from_shutdown_request_to_disappearance_seconds",
      "Number of seconds between the first shutdown attempt and the disappearance of the worker.",
    );
    this.timeFromQueueToCrunchRun = summary(
      "containers_time_from_queue_to_crunch_run_seconds",
      "Number of seconds between the queuing of a container and the start of crunch-run.",
    );
    this.runProbeDuration = new Summary({
      name: `${PREFIX}instances_run_probe_duration_seconds`,
      help: "Number of seconds per runProbe.",
      labelNames: ["outcome"],
      registers,
      ...summaryOptions,
    });
  }

  /** Set the gauges from the fleet; every configured type gets a series in every category. */
  update(workers: Iterable<Worker>, typeNames: readonly string[], now: number): void {
    let containers = 0;
    const probed: number[] = [];
    const counts = new Map<string, number>();
    const price = new Map<InstanceCategory, number>();
    const vcpus = new Map<InstanceCategory, number>();
    const memory = new Map<InstanceCategory, number>();
    for (const w of workers) {
      const n = w.containers;
      containers += n;
      probed.push(w.probed);
      const cat: InstanceCategory =
        n > 0
          ? "inuse"
          : w.idleBehavior === "hold"
            ? "hold"
            : w.state === "booting"
              ? "booting"
              : w.state === "unknown"
                ? "unknown"
                : "idle";
      const key = `${cat}\0${w.instType.Name}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      price.set(cat, (price.get(cat) ?? 0) + w.instType.Price);
      vcpus.set(cat, (vcpus.get(cat) ?? 0) + w.instType.VCPUs);
      memory.set(cat, (memory.get(cat) ?? 0) + w.instType.RAM);
    }
    this.containersRunning.set(containers);
    probed.sort((a, b) => a - b);
    this.probeAgeMax.set(probed.length > 0 ? (now - probed[0]!) / 1000 : 0);
    this.probeAgeMedian.set(
      probed.length > 0 ? (now - probed[Math.floor(probed.length / 2)]!) / 1000 : 0,
    );
    // Reset first: Arvados keeps series of types that left the config; we drop them.
    this.instancesTotal.reset();
    for (const cat of INSTANCE_CATEGORIES) {
      for (const name of typeNames) {
        this.instancesTotal.set({ category: cat, instance_type: name }, 0);
      }
      this.instancesPrice.set({ category: cat }, price.get(cat) ?? 0);
      this.vcpusTotal.set({ category: cat }, vcpus.get(cat) ?? 0);
      this.memoryBytesTotal.set({ category: cat }, memory.get(cat) ?? 0);
    }
    for (const [key, n] of counts) {
      const [category, instance_type] = key.split("\0") as [string, string];
      this.instancesTotal.set({ category, instance_type }, n);
    }
  }
}
