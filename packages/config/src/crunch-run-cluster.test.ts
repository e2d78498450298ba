import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { dumpConfig, encodeCluster, loadConfig, parseDuration, REDACTED } from "./index.js";

// The cluster config crunch-run receives (`--stdin-config`'s Cluster) must carry Arvados's
// defaults for the sections it reads, as Go's dispatcher sends them: compared key by key with
// values taken from Arvados's config.default.yml.

const fixture = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures/crunch-run-cluster-defaults.json"), "utf8"),
) as { values: Record<string, unknown> };

const SECTIONS = [
  "Collections",
  "API",
  "Users",
  "SystemLogs",
  "TLS",
  "Containers.Logging",
  "StorageClasses",
  "Volumes",
];

async function encoded(extra = ""): Promise<Record<string, unknown>> {
  const r = await loadConfig({
    text: `Clusters:\n  zzzzz:\n    SystemRootToken: ${"a".repeat(32)}\n${extra}`,
  });
  if (!r.ok) throw new Error(r.errors.map((e) => e.text).join("\n"));
  return encodeCluster(r.config.cluster);
}

/** Leaf key paths (an empty map is a leaf) and their values. */
function flatten(v: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> {
  if (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, val] of Object.entries(v)) flatten(val, `${prefix}.${k}`, out);
  } else {
    out.set(prefix, v);
  }
  return out;
}

function at(obj: Record<string, unknown>, dotted: string): unknown {
  let v: unknown = obj;
  for (const k of dotted.split(".")) v = (v as Record<string, unknown> | undefined)?.[k];
  return v;
}

/** Durations compare by length ("60s" is Go's "1m0s"); everything else exactly. */
function same(got: unknown, want: unknown): boolean {
  if (typeof got === "string" && typeof want === "string") {
    const g = parseDuration(got);
    const w = parseDuration(want);
    if (g.ok && w.ok) return g.value === w.value;
  }
  return JSON.stringify(got) === JSON.stringify(want);
}

describe("the Cluster crunch-run receives", () => {
  test("has Arvados's default for every key of the sections crunch-run reads, and no other", async () => {
    const cluster = await encoded();
    const got = new Map<string, unknown>();
    for (const s of SECTIONS) flatten(at(cluster, s), s, got);
    const want = new Map(Object.entries(fixture.values));
    const mismatched = [...want]
      .filter(([k, v]) => !same(got.get(k), v))
      .map(([k, v]) => `${k}: got ${JSON.stringify(got.get(k))}, want ${JSON.stringify(v)}`);
    expect(mismatched).toEqual([]);
    expect([...got.keys()].filter((k) => !want.has(k))).toEqual([]);
  });

  test("keeps values as written over the defaults, and keys of other Arvados versions", async () => {
    const cluster = await encoded(
      [
        "    Collections:",
        "      DefaultReplication: 3",
        "      BlobSigningTTL: 24h",
        "      KeepproxyPermission: {User: {Download: true}}",
        "    API:",
        "      MaxKeepBlobBuffers: 16",
      ].join("\n"),
    );
    expect(at(cluster, "Collections.DefaultReplication")).toBe(3);
    expect(at(cluster, "Collections.BlobSigningTTL")).toBe("24h");
    expect(at(cluster, "Collections.BlobTrash")).toBe(true);
    expect(at(cluster, "Collections.KeepproxyPermission")).toEqual({ User: { Download: true } });
    expect(at(cluster, "API.MaxKeepBlobBuffers")).toBe(16);
  });

  test("gives volumes Go's zero values and Arvados's implicit storage class", async () => {
    const cluster = await encoded(
      [
        "    Volumes:",
        "      zzzzz-nyw5e-000000000000000:",
        "        Driver: S3",
        "        Replication: 2",
        "        DriverParameters: {Bucket: b, SecretAccessKey: s3cret}",
        "        AccessViaHosts:",
        '          "http://keep0.zzzzz.example:25107": {ReadOnly: true}',
      ].join("\n"),
    );
    expect(at(cluster, "Volumes")).toEqual({
      "zzzzz-nyw5e-000000000000000": {
        AccessViaHosts: { "http://keep0.zzzzz.example:25107/": { ReadOnly: true } },
        ReadOnly: false,
        Replication: 2,
        StorageClasses: { default: true },
        Driver: "S3",
        DriverParameters: { Bucket: "b", SecretAccessKey: "s3cret" },
      },
    });
    expect(at(cluster, "StorageClasses")).toEqual({ default: { Default: true, Priority: 0 } });
  });

  test("leaves storage classes alone once any is configured", async () => {
    const cluster = await encoded(
      [
        "    StorageClasses:",
        "      fast: {Default: true, Priority: 10}",
        "    Volumes:",
        "      zzzzz-nyw5e-000000000000001: {Driver: Directory, StorageClasses: {fast: true}}",
        "      zzzzz-nyw5e-000000000000002: {Driver: Directory}",
      ].join("\n"),
    );
    expect(at(cluster, "StorageClasses")).toEqual({ fast: { Default: true, Priority: 10 } });
    expect(at(cluster, "Volumes.zzzzz-nyw5e-000000000000002.StorageClasses")).toEqual({});
  });

  test("carries the secrets crunch-run needs, which a dump redacts", async () => {
    const extra = [
      "    Collections:",
      "      BlobSigningKey: blobSigningKeyValue",
      "    TLS:",
      "      Key: tlsKeyValue",
      "    Volumes:",
      "      zzzzz-nyw5e-000000000000000:",
      "        Driver: Azure",
      "        DriverParameters: {StorageAccountName: a, StorageAccountKey: azureKeyValue}",
    ].join("\n");
    const cluster = await encoded(extra);
    expect(at(cluster, "Collections.BlobSigningKey")).toBe("blobSigningKeyValue");
    const r = await loadConfig({
      text: `Clusters:\n  zzzzz:\n    SystemRootToken: ${"a".repeat(32)}\n${extra}`,
    });
    if (!r.ok) throw new Error("expected a usable config");
    const dump = dumpConfig(r.config);
    for (const secret of ["blobSigningKeyValue", "tlsKeyValue", "azureKeyValue"]) {
      expect(dump).not.toContain(secret);
    }
    const c = (parse(dump) as { Clusters: { zzzzz: Record<string, unknown> } }).Clusters.zzzzz;
    expect(at(c, "Volumes.zzzzz-nyw5e-000000000000000.DriverParameters")).toEqual({
      StorageAccountName: "a",
      StorageAccountKey: REDACTED,
    });
  });
});
