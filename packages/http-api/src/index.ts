export { createManagementApp, type ManagementAppOptions } from "./app.js";
export { DEFAULT_CLOSE_GRACE_MS, listen, type ListeningServer } from "./listen.js";
export { MIN_PRIORITY, RequestLimiter, arvadosPriority, type LimiterOptions } from "./limiter.js";
export {
  REQUEST_ID_HEADER,
  newRequestId,
  serviceFramework,
  type ServiceFramework,
  type ServiceOptions,
} from "./service.js";
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
