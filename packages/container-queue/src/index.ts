export { ContainerQueue, type ContainerQueueOptions, type QueueClient } from "./queue.js";
export { ContainerQueueError, type QueueErrorKind } from "./errors.js";
export {
  resourcesNeeded,
  estimateScratch,
  imageSizeEstimate,
  type OverheadConfig,
  type ResourceInputs,
} from "./resources.js";
export {
  chooseInstanceTypes,
  compareTypes,
  sortTypes,
  type Selection,
  type SelectionInputs,
} from "./select.js";
export { POLLED_FIELDS, type PolledContainer, type SelectionConfig } from "./types.js";
