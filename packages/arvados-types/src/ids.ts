// Ids that cross package boundaries. Brands keep a container UUID from being passed where an
// instance id is wanted; they cost nothing at run time.

declare const brand: unique symbol;

/** An Arvados container UUID (`zzzzz-dz642-0123456789abcde`). */
export type ContainerUuid = string & { readonly [brand]: "ContainerUuid" };

/** A provider's id for one VM: stable for the VM's life; "" for a create that has not returned. */
export type InstanceId = string & { readonly [brand]: "InstanceId" };

/** Identifies one dispatcher's set of VMs; written as a tag value on every VM it creates. */
export type InstanceSetId = string & { readonly [brand]: "InstanceSetId" };

/** Brands a string (no validation: the controller or the cloud is the authority). */
export const containerUuid = (s: string): ContainerUuid => s as ContainerUuid;
export const instanceId = (s: string): InstanceId => s as InstanceId;
export const instanceSetId = (s: string): InstanceSetId => s as InstanceSetId;
