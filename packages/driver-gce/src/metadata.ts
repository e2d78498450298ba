/*
 * How the dispatcher's tags live on a GCE instance.
 *
 * Tag keys such as `ArvadosInstanceSetID` cannot be GCE labels (labels are lowercase
 * [a-z0-9_-]), so every tag is an instance metadata item with the tag's key and value, next to
 * the items GCE itself acts on (`startup-script`, `ssh-keys`, …), which are never tags. The
 * instance set is also written as a label, derived from the InstanceSetID, because a listing
 * can filter on labels but not on metadata.
 */
import { createHash, randomInt } from "node:crypto";
import type { InstanceTags } from "@dispatch-cloud/cloud-driver-api";

/**
 * The label that marks the VMs (and disks) of one instance set, for the list filter. An
 * underscore rather than a dash keeps the key a plain name in the filter expression.
 */
export const INSTANCE_SET_LABEL = "arvados_instance_set";

/**
 * Metadata keys the guest environment or GCE interprets. The driver writes `startup-script` and
 * `ssh-keys`; none of these can be a tag, and none is reported as one.
 */
export const RESERVED_METADATA_KEYS: ReadonlySet<string> = new Set([
  "startup-script",
  "startup-script-url",
  "shutdown-script",
  "shutdown-script-url",
  "ssh-keys",
  "sshKeys",
  "block-project-ssh-keys",
  "enable-oslogin",
  "enable-oslogin-2fa",
  "enable-guest-attributes",
  "serial-port-enable",
  "user-data",
]);

/** GCE's rule for metadata keys. */
const METADATA_KEY_RE = /^[A-Za-z0-9_-]{1,128}$/;
const LABEL_VALUE_RE = /^[a-z0-9_-]{1,63}$/;

export interface MetadataItem {
  readonly key: string;
  readonly value: string;
}

/** Why a tag cannot be stored as metadata, or undefined if it can. */
export function badTagKey(key: string): string | undefined {
  if (RESERVED_METADATA_KEYS.has(key)) {
    return `tag key ${JSON.stringify(key)} is a GCE metadata key with its own meaning`;
  }
  if (!METADATA_KEY_RE.test(key)) {
    return `tag key ${JSON.stringify(key)} cannot be a GCE metadata key (letters, digits, - and _, at most 128)`;
  }
  return undefined;
}

/** The tags among an instance's metadata items: every item GCE does not interpret. */
export function tagsFromMetadata(
  items: readonly { key?: string | null; value?: string | null }[] | null | undefined,
): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const { key, value } of items ?? []) {
    if (typeof key === "string" && key !== "" && !RESERVED_METADATA_KEYS.has(key)) {
      tags[key] = value ?? "";
    }
  }
  return tags;
}

/**
 * Metadata for a new VM: the tags, the first-boot script and, when given, the dispatcher's
 * public key for `user` (the guest agent creates the account, with sudo).
 */
export function createMetadata(
  tags: InstanceTags,
  initCommand: string,
  user: string,
  publicKey: string | null,
): MetadataItem[] {
  const items: MetadataItem[] = Object.entries(tags).map(([key, value]) => ({ key, value }));
  items.push({ key: "startup-script", value: `#!/bin/sh\n${initCommand}\n` });
  if (publicKey !== null) items.push({ key: "ssh-keys", value: `${user}:${publicKey.trim()}` });
  return items;
}

/**
 * The items after a tag update: the non-tag items as they were, the existing tags overwritten
 * by `tags` (tags not mentioned stay, as on EC2 and Azure).
 */
export function mergeTagsIntoMetadata(
  items: readonly { key?: string | null; value?: string | null }[] | null | undefined,
  tags: InstanceTags,
): MetadataItem[] {
  const out: MetadataItem[] = [];
  const seen = new Set<string>();
  for (const { key, value } of items ?? []) {
    if (typeof key !== "string" || key === "") continue;
    seen.add(key);
    const replaced = !RESERVED_METADATA_KEYS.has(key) && Object.hasOwn(tags, key);
    out.push({ key, value: replaced ? tags[key]! : (value ?? "") });
  }
  for (const [key, value] of Object.entries(tags)) if (!seen.has(key)) out.push({ key, value });
  return out;
}

/**
 * The label value for an instance set: the InstanceSetID itself when it is a valid label value
 * (token UUIDs and MD5 hex are), else a readable lowercase form with a hash of the ID appended,
 * so different IDs get different labels.
 */
export function instanceSetLabelValue(instanceSetId: string): string {
  if (LABEL_VALUE_RE.test(instanceSetId)) return instanceSetId;
  const readable = instanceSetId
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .slice(0, 50);
  const hash = createHash("sha256").update(instanceSetId).digest("hex").slice(0, 12);
  return `${readable}-${hash}`.replace(/^-+/, "");
}

const NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const NAME_SUFFIX_LENGTH = 15;
/** GCE instance names: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63. */
const MAX_NAME_LENGTH = 63;

/** `compute-<instance set>-<15 random characters>`, like the Azure driver's VM names. */
export function newInstanceName(setLabelValue: string): string {
  let suffix = "";
  for (let i = 0; i < NAME_SUFFIX_LENGTH; i++) suffix += NAME_ALPHABET[randomInt(36)];
  const room = MAX_NAME_LENGTH - "compute-".length - 1 - NAME_SUFFIX_LENGTH;
  const set = setLabelValue.replace(/_/g, "-").slice(0, room);
  return `compute-${set}-${suffix}`;
}
