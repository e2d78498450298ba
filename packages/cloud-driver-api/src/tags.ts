import type { InstanceType } from "@dispatch-cloud/arvados-types";
import type { InstanceTags } from "./types.js";

/** The tag keys the dispatcher writes, for a given `CloudVMs.TagKeyPrefix`. */
export interface TagKeys {
  readonly instanceSetId: string;
  readonly instanceType: string;
  readonly idleBehavior: string;
  readonly instanceSecret: string;
}

export const DEFAULT_TAG_KEY_PREFIX = "Arvados";

export function tagKeys(prefix: string = DEFAULT_TAG_KEY_PREFIX): TagKeys {
  return {
    instanceSetId: `${prefix}InstanceSetID`,
    instanceType: `${prefix}InstanceType`,
    idleBehavior: `${prefix}IdleBehavior`,
    instanceSecret: `${prefix}InstanceSecret`,
  };
}

/** Where the init command writes the instance secret on the VM. */
export const INSTANCE_SECRET_PATH = "/var/run/arvados-instance-secret";

/**
 * The first-boot script the dispatcher gives every VM: write the secret readable only by root,
 * then run the operator's `InstanceInitCommand`.
 */
export function initCommandWithSecret(secret: string, instanceInitCommand: string): string {
  return `umask 0177 && echo -n "${secret}" >${INSTANCE_SECRET_PATH}\n${instanceInitCommand}`;
}

/**
 * The tags the dispatcher puts on every VM it creates: its instance set, the configured type,
 * idle behaviour `run`, and the secret the VM's init command writes (the caller adds nothing
 * else; drivers may add ResourceTags).
 */
export function createTags(
  keys: TagKeys,
  instanceSetId: string,
  type: InstanceType,
  secret: string,
): InstanceTags {
  return {
    [keys.instanceSetId]: instanceSetId,
    [keys.instanceType]: type.Name,
    [keys.idleBehavior]: "run",
    [keys.instanceSecret]: secret,
  };
}
