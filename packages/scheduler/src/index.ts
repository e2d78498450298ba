export * from "./ports.js";
export {
  Scheduler,
  formatDuration,
  type SchedulerOptions,
  type ScheduledEntry,
} from "./scheduler.js";
export { FreeResources } from "./resources.js";
export * as schedulingStatus from "./status.js";
