export { createManagementApp, type ManagementAppOptions } from "./app.js";
export { listen, type ListeningServer } from "./listen.js";
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
