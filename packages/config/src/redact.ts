import { stringify } from "yaml";
import { clusterNode } from "./cluster-schema.js";
import type { LoadedConfig } from "./load.js";
import { encode, isMap } from "./schema.js";
import type { ClusterConfig } from "./types.js";

/** What a secret is replaced with. */
export const REDACTED = "[REDACTED]";

/**
 * Keys whose values are secrets wherever they appear: the cluster tokens, DispatchPrivateKey,
 * cloud credentials in DriverParameters (SecretAccessKey, AccessKeyID, ClientSecret), and the
 * secrets of the sections crunch-run reads or we pass through (BlobSigningKey, volumes'
 * StorageAccountKey, TLS.Key, database passwords, OAuth secrets).
 */
export const secretKeyPattern =
  /secret|password|passwd|token|privatekey|signingkey|accesskey|accountkey|credential|^key$/i;

function redactValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redactValue);
  if (!isMap(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) {
    // An empty value is kept: it tells the reader the secret is unset without revealing anything.
    out[k] =
      secretKeyPattern.test(k) && val !== "" && val !== null && val !== undefined
        ? REDACTED
        : redactValue(val);
  }
  return out;
}

/** A copy of the cluster config with every secret replaced by `[REDACTED]`. */
export function redactConfig(cluster: ClusterConfig): ClusterConfig {
  return redactValue(cluster) as ClusterConfig;
}

/**
 * The cluster config as Arvados writes it (durations like `1m30s`, sets as maps, instance types
 * without the computed Name and Scratch), as plain data. Not redacted: this is also what a
 * runner on a VM is given.
 */
export function encodeCluster(cluster: ClusterConfig): Record<string, unknown> {
  return encode(clusterNode, cluster) as Record<string, unknown>;
}

/** The effective config as YAML: defaults filled in, secrets redacted. */
export function dumpConfig(config: LoadedConfig): string {
  const doc = { Clusters: { [config.clusterId]: encodeCluster(redactConfig(config.cluster)) } };
  return stringify(doc, { lineWidth: 0 });
}
