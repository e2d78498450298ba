/*
 * The JSON the Go dispatcher emits: Go structs serialise every field (zero values included) in
 * declaration order, so the shapes here are built key by key rather than passed through.
 */
import {
  GO_ZERO_TIME,
  goTime,
  instanceTypeJson,
  instanceViewJson,
  type InstanceView,
} from "@dispatch-cloud/arvados-types";
import type { ContainerRecordView, PromMetricJson, QueueEntryView } from "./ports.js";

function str(v: unknown, zero = ""): string {
  if (typeof v === "string") return v;
  if (v instanceof Date) return goTime(v);
  return zero;
}
function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}
function bool(v: unknown): boolean {
  return v === true;
}
/** Slices, maps and pointers: null when absent, as Go's nil. */
function nullable(v: unknown): unknown {
  return v === undefined ? null : v;
}
function time(v: unknown): string | null {
  if (v instanceof Date) return goTime(v);
  return typeof v === "string" ? v : null;
}
function obj(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
}

/** The full container schema, zero-filled. The runtime token is never served, whatever the record holds. */
export function containerJson(c: ContainerRecordView): Record<string, unknown> {
  const rc = obj(c["runtime_constraints"]);
  const gpu = obj(rc["gpu"]);
  const sp = obj(c["scheduling_parameters"]);
  return {
    uuid: c.uuid,
    etag: str(c["etag"]),
    created_at: str(c["created_at"], GO_ZERO_TIME),
    modified_by_user_uuid: str(c["modified_by_user_uuid"]),
    modified_at: str(c["modified_at"], GO_ZERO_TIME),
    command: nullable(c["command"]),
    container_image: str(c["container_image"]),
    cwd: str(c["cwd"]),
    environment: nullable(c["environment"]),
    locked_by_uuid: str(c["locked_by_uuid"]),
    lock_count: num(c["lock_count"]),
    mounts: nullable(c["mounts"]),
    output: str(c["output"]),
    output_path: str(c["output_path"]),
    output_glob: nullable(c["output_glob"]),
    priority: num(c["priority"]),
    runtime_constraints: {
      API: bool(rc["API"]),
      ram: num(rc["ram"]),
      vcpus: num(rc["vcpus"]),
      keep_cache_ram: num(rc["keep_cache_ram"]),
      keep_cache_disk: num(rc["keep_cache_disk"]),
      gpu: {
        stack: str(gpu["stack"]),
        driver_version: str(gpu["driver_version"]),
        hardware_target: nullable(gpu["hardware_target"]),
        device_count: num(gpu["device_count"]),
        vram: num(gpu["vram"]),
      },
    },
    state: str(c["state"]),
    scheduling_parameters: {
      partitions: nullable(sp["partitions"]),
      preemptible: bool(sp["preemptible"]),
      max_run_time: num(sp["max_run_time"]),
      supervisor: bool(sp["supervisor"]),
    },
    exit_code: num(c["exit_code"]),
    runtime_status: nullable(c["runtime_status"]),
    started_at: time(c["started_at"]),
    finished_at: time(c["finished_at"]),
    gateway_address: str(c["gateway_address"]),
    interactive_session_started: bool(c["interactive_session_started"]),
    output_storage_classes: nullable(c["output_storage_classes"]),
    runtime_user_uuid: str(c["runtime_user_uuid"]),
    runtime_auth_scopes: nullable(c["runtime_auth_scopes"]),
    // Deliberately blank: a secret never leaves through the management API.
    runtime_token: "",
    auth_uuid: str(c["auth_uuid"]),
    log: str(c["log"]),
    cost: num(c["cost"]),
    subrequests_cost: num(c["subrequests_cost"]),
    service: bool(c["service"]),
    published_ports: nullable(c["published_ports"]),
  };
}

export function queueEntJson(e: QueueEntryView): Record<string, unknown> {
  const r = e.instanceResources;
  return {
    container: containerJson(e.container),
    instance_resources: {
      VCPUs: r.VCPUs,
      RAM: r.RAM,
      Scratch: r.Scratch,
      GPUs: r.GPUs,
      GPUVRAM: r.GPUVRAM,
    },
    instance_types: e.instanceTypes.map(instanceTypeJson),
    first_seen_at: goTime(e.firstSeenAt),
    scheduling_status: e.schedulingStatus,
  };
}

/** Sorted by instance id, ties by configured type name; null (Go's nil slice) when empty. */
export function instancesJson(views: readonly InstanceView[]): {
  items: Record<string, unknown>[] | null;
} {
  if (views.length === 0) return { items: null };
  const sorted = [...views].sort(
    (a, b) => cmp(a.instance, b.instance) || cmp(a.arvados_instance_type, b.arvados_instance_type),
  );
  return { items: sorted.map(instanceViewJson) };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const promTypes: Record<string, string> = {
  counter: "COUNTER",
  gauge: "GAUGE",
  histogram: "HISTOGRAM",
  summary: "SUMMARY",
};

/**
 * prom-client's JSON turned into the protobuf-JSON metric families the Go exporter serves at
 * /metrics.json (uint64 counts as strings, label pairs as lists).
 */
export function metricFamiliesJson(metrics: readonly PromMetricJson[]): unknown[] {
  return metrics.map((m) => {
    const type = promTypes[m.type] ?? "UNTYPED";
    const byLabels = new Map<
      string,
      { labels: Record<string, string | number>; values: PromMetricJson["values"][number][] }
    >();
    for (const v of m.values) {
      const labels: Record<string, string | number> = {};
      for (const [k, val] of Object.entries(v.labels)) {
        if (k !== "le" && k !== "quantile" && val !== undefined) labels[k] = val;
      }
      const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => cmp(a, b)));
      let group = byLabels.get(key);
      if (!group) {
        group = { labels, values: [] };
        byLabels.set(key, group);
      }
      group.values.push(v);
    }
    const metric = [...byLabels.values()].map(({ labels, values }) => {
      const label = Object.entries(labels)
        .sort(([a], [b]) => cmp(a, b))
        .map(([name, value]) => ({ name, value: String(value) }));
      const base = label.length > 0 ? { label } : {};
      const count = values.find((v) => v.metricName?.endsWith("_count"))?.value ?? 0;
      const sum = values.find((v) => v.metricName?.endsWith("_sum"))?.value ?? 0;
      switch (type) {
        case "COUNTER":
          return { ...base, counter: { value: values[0]?.value ?? 0 } };
        case "GAUGE":
          return { ...base, gauge: { value: values[0]?.value ?? 0 } };
        case "HISTOGRAM":
          return {
            ...base,
            histogram: {
              sampleCount: String(count),
              sampleSum: sum,
              bucket: values
                .filter((v) => v.metricName?.endsWith("_bucket") && v.labels["le"] !== "+Inf")
                .map((v) => ({
                  cumulativeCount: String(v.value),
                  upperBound: Number(v.labels["le"]),
                })),
            },
          };
        case "SUMMARY":
          return {
            ...base,
            summary: {
              sampleCount: String(count),
              sampleSum: sum,
              quantile: values
                .filter((v) => v.labels["quantile"] !== undefined)
                .map((v) => ({ quantile: Number(v.labels["quantile"]), value: v.value })),
            },
          };
        default:
          return { ...base, untyped: { value: values[0]?.value ?? 0 } };
      }
    });
    return { name: m.name, help: m.help, type, metric };
  });
}
