export * from "./ports.js";
export { Scheduler, type SchedulerOptions } from "./scheduler.js";
export type { ScheduledEntry } from "./run-queue.js";
export { formatDuration } from "./format.js";
export { FreeResources } from "./resources.js";
export * as schedulingStatus from "./status.js";
