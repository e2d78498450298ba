export {
  containerUuid,
  instanceId,
  instanceSetId,
  type ContainerUuid,
  type InstanceId,
  type InstanceSetId,
} from "./ids.js";
export { silentLogger, type Logger } from "./logger.js";
export {
  abortReason,
  raceAbort,
  systemClock,
  type Clock,
  type TimerHandle,
  type Timers,
} from "./clock.js";
export { GO_ZERO_TIME, goJson, goJsonLine, goTime } from "./go-json.js";
export { instanceTypeJson, type GpuFeatures, type InstanceType } from "./instance-type.js";
export {
  CONTAINER_STATES,
  type Container,
  type ContainerField,
  type ContainerState,
  type CudaRuntimeConstraints,
  type GpuRuntimeConstraints,
  type Mount,
  type RuntimeConstraints,
  type RuntimeStatus,
  type SchedulingParameters,
} from "./container.js";
export {
  isForgettable,
  type InstanceResources,
  type QueueEntry,
  type QueueOpResult,
  type QueueSnapshot,
  type QueuedContainer,
} from "./queue.js";
export {
  IDLE_BEHAVIORS,
  WORKER_STATES,
  instanceViewJson,
  isIdleBehavior,
  pendingInstanceView,
  type ActionResult,
  type IdleBehavior,
  type InstanceView,
  type WorkerState,
} from "./instance-view.js";
export type {
  ExecResult,
  ExecuteOptions,
  ExecutorTarget,
  HostKeyChallengeSession,
  HostKeyVerdict,
  RunResult,
} from "./executor.js";
export { KindedError } from "./errors.js";
