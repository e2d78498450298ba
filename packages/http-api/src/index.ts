export { createManagementApp, type ManagementAppOptions } from "./app.js";
export { listen, type ListeningServer } from "./listen.js";
export { containerJson, instancesJson, queueEntJson, metricFamiliesJson } from "./json.js";
export { cleanPath } from "./path.js";
export type {
  ContainerRecordView,
  ContainersView,
  HealthCheck,
  ManagementPorts,
  MetricsSource,
  PoolAdmin,
  PromMetricJson,
  QueueEntryView,
} from "./ports.js";
