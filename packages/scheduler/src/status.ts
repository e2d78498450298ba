// Scheduling status texts, exactly as Arvados words them (users and the controller read them;
// note the two spaces after each period inside a message).

export const preparingRuntimeEnvironment =
  "Container is allocated to an instance and preparing to run.";

export const priorityZero = (state: string): string =>
  `This container will not be scheduled to run because its priority is 0 and state is ${state}.`;

export const supervisorLimitReached = (position: number): string =>
  `Waiting in workflow queue at position ${position}.  Cluster is at capacity and cannot start any new workflows right now.`;

export const waitingForPreviousAttempt = "Waiting for previous container attempt to exit.";

export const waitingNewInstance = (typeName: string): string =>
  `Waiting for a ${typeName} instance to boot and be ready to accept work.`;

export const waitingInstanceType = (position: number, typeNames: string): string =>
  `Waiting in queue at position ${position}.  Cluster is at capacity for all eligible instance types (${typeNames}) and cannot start a new instance right now.`;

export const waitingCloudResources = (position: number): string =>
  `Waiting in queue at position ${position}.  Cluster is at cloud account limits and cannot start any new instances right now.`;

export const waitingClusterCapacity = (position: number): string =>
  `Waiting in queue at position ${position}.  Cluster is at capacity and cannot start any new instances right now.`;
