export { createManagementApp, type ManagementAppOptions } from "./app.js";
export { DEFAULT_CLOSE_GRACE_MS, listen, type ListeningServer } from "./listen.js";
export { MIN_PRIORITY, RequestLimiter, arvadosPriority, type LimiterOptions } from "./limiter.js";
export {
  REQUEST_ID_HEADER,
  goJson,
  newRequestId,
  serviceFramework,
  type ServiceFramework,
  type ServiceOptions,
} from "./service.js";
export {
  containerJson,
  instanceTypeJson,
  instancesJson,
  queueEntJson,
  metricFamiliesJson,
  goTimeNano,
  GO_ZERO_TIME,
} from "./json.js";
export { cleanPath } from "./path.js";
export type {
  ActionResult,
  ContainerRecordView,
  ContainersView,
  GpuFeatures,
  HealthCheck,
  IdleBehavior,
  InstanceResourcesView,
  InstanceTypeView,
  InstanceView,
  Logger,
  ManagementPorts,
  MetricsSource,
  PoolAdmin,
  PromMetricJson,
  QueueEntryView,
  WorkerState,
} from "./ports.js";
