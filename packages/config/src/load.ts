import { readFile } from "node:fs/promises";
import type { InstanceType } from "@dispatch-cloud/arvados-types";
import { LineCounter, parseDocument } from "yaml";
import { clusterNode } from "./cluster-schema.js";
import { parsePrivateKey, type DispatchKey } from "./private-key.js";
import { Problems, type ConfigProblem } from "./problems.js";
import { withImplicitStorageClasses } from "./runner-sections.js";
import { decode, isMap } from "./schema.js";
import type { ClusterConfig } from "./types.js";

/** A successfully loaded config: the one cluster, with defaults filled in. */
export interface LoadedConfig {
  /** Where it came from: the path, `<stdin>` or `<text>`. */
  readonly source: string;
  readonly clusterId: string;
  readonly cluster: ClusterConfig;
  /** The parsed `Containers.DispatchPrivateKey`, or null when it is not set. */
  readonly dispatchKey: DispatchKey | null;
}

export type LoadResult =
  | {
      readonly ok: true;
      readonly config: LoadedConfig;
      readonly warnings: readonly ConfigProblem[];
    }
  | {
      readonly ok: false;
      readonly errors: readonly ConfigProblem[];
      readonly warnings: readonly ConfigProblem[];
    };

export interface LoadOptions {
  /** The config text itself; takes precedence over `path`. */
  readonly text?: string;
  /** A file to read; `-` means standard input (through `readStdin`). */
  readonly path?: string;
  /** Reads all of standard input; required for `path: "-"`. */
  readonly readStdin?: () => Promise<string>;
  /** Reads a file as UTF-8 (the config, and a `file:///` DispatchPrivateKey); defaults to node:fs. */
  readonly readFile?: (path: string) => Promise<string>;
}

const clusterIdRe = /^[a-z0-9]{5}$/;
const tokenRe = /^[a-zA-Z0-9]+$/;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Loads an Arvados config file as Arvados does: exactly one cluster, the user's values merged
 * over the defaults, every problem collected. Never throws for anything an operator can cause.
 */
export async function loadConfig(options: LoadOptions): Promise<LoadResult> {
  const problems = new Problems();
  const fail = (): LoadResult => ({
    ok: false,
    errors: problems.errors,
    warnings: problems.warnings,
  });
  const read = options.readFile ?? ((p: string) => readFile(p, "utf8"));

  let text: string;
  let source: string;
  if (options.text !== undefined) {
    text = options.text;
    source = options.path ?? "<text>";
  } else if (options.path === "-") {
    source = "<stdin>";
    if (!options.readStdin) {
      problems.error("io", source, "reading the config from standard input is not available here");
      return fail();
    }
    try {
      text = await options.readStdin();
    } catch (err) {
      problems.error("io", source, `cannot read the config: ${describe(err)}`);
      return fail();
    }
  } else if (options.path !== undefined) {
    source = options.path;
    try {
      text = await read(options.path);
    } catch (err) {
      problems.error("io", source, `cannot read the config file: ${describe(err)}`);
      return fail();
    }
  } else {
    problems.error("io", "", "no config given");
    return fail();
  }

  const root = parseYaml(text, source, problems);
  if (root === undefined) return fail();
  if (!isMap(root)) {
    problems.error("type", "", `${source}: expected a map with a Clusters key at the top level`);
    return fail();
  }
  for (const key of Object.keys(root)) {
    if (
      key === "Clusters" ||
      key === "AutoReloadConfig" ||
      key === "SourceTimestamp" ||
      key === "SourceSHA256"
    )
      continue;
    problems.unknownKey(key, key.toLowerCase() === "clusters" ? "Clusters" : undefined);
  }
  const clusters = root["Clusters"];
  if (
    clusters === undefined ||
    clusters === null ||
    (isMap(clusters) && Object.keys(clusters).length === 0)
  ) {
    problems.error("cluster", "", "config does not define any clusters");
    return fail();
  }
  if (!isMap(clusters)) {
    problems.error("type", "Clusters", "expected a map from cluster ID to cluster config");
    return fail();
  }
  const ids = Object.keys(clusters);
  if (ids.length > 1) {
    problems.error(
      "cluster",
      "Clusters",
      `multiple clusters configured, cannot choose (${ids.join(", ")})`,
    );
    return fail();
  }
  const clusterId = ids[0]!;
  const label = `Clusters.${clusterId}`;
  if (!clusterIdRe.test(clusterId)) {
    problems.error("cluster", label, "cluster ID must be exactly 5 characters from a-z and 0-9");
  }
  const cluster = withImplicitStorageClasses(
    decode(clusterNode, removeSampleKeys(clusters[clusterId]), label, problems) as ClusterConfig,
  );

  checkToken(cluster.ManagementToken, `${label}.ManagementToken`, problems);
  checkToken(cluster.SystemRootToken, `${label}.SystemRootToken`, problems);
  if (
    cluster.Services["Controller"]?.ExternalURL === undefined ||
    cluster.Services["Controller"].ExternalURL === ""
  ) {
    problems.warn(
      "value",
      `${label}.Services.Controller.ExternalURL`,
      "not set; the dispatcher needs it to reach the API",
    );
  }
  const vms = cluster.Containers.CloudVMs;
  if (vms.Enable && vms.Driver === "loopback" && Object.keys(cluster.InstanceTypes).length > 1) {
    problems.error(
      "value",
      `${label}.InstanceTypes`,
      "cannot use multiple InstanceTypes with loopback driver",
    );
  }
  const withTwins = addPreemptibleTwins(cluster, label, problems);
  const dispatchKey = await loadDispatchKey(
    cluster.Containers.DispatchPrivateKey,
    `${label}.Containers.DispatchPrivateKey`,
    read,
    problems,
  );

  if (problems.errors.length > 0) return fail();
  return {
    ok: true,
    config: { source, clusterId, cluster: withTwins, dispatchKey },
    warnings: problems.warnings,
  };
}

function parseYaml(text: string, source: string, problems: Problems): unknown {
  const lineCounter = new LineCounter();
  // merge: Go's yaml.v2 honours `<<` merge keys, so operators' anchors keep working.
  const doc = parseDocument(text, {
    lineCounter,
    merge: true,
    prettyErrors: false,
    uniqueKeys: true,
  });
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const { line, col } = lineCounter.linePos(err.pos[0]);
      problems.error(
        "syntax",
        "",
        `${source}: line ${line}, column ${col}: ${err.message.split("\n")[0] ?? err.message}`,
      );
    }
    return undefined;
  }
  try {
    return doc.toJS({ maxAliasCount: 10_000 });
  } catch (err) {
    problems.error("syntax", "", `${source}: ${describe(err)}`);
    return undefined;
  }
}

/** Arvados drops every `SAMPLE` key: they document a map's entries and are never real entries. */
function removeSampleKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(removeSampleKeys);
  if (!isMap(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) if (k !== "SAMPLE") out[k] = removeSampleKeys(val);
  return out;
}

function checkToken(token: string, path: string, problems: Problems): void {
  if (token === "") {
    problems.warn(
      "token",
      path,
      "secret token is not set (use 32+ random characters from a-z, A-Z, 0-9)",
    );
  } else if (!tokenRe.test(token)) {
    problems.error(
      "token",
      path,
      "unacceptable characters in token (only a-z, A-Z, 0-9 are acceptable)",
    );
  } else if (token.length < 32) {
    problems.warn("token", path, "token is too short (should be at least 32 characters)");
  }
}

function sameType(a: InstanceType, b: InstanceType): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function addPreemptibleTwins(
  cluster: ClusterConfig,
  label: string,
  problems: Problems,
): ClusterConfig {
  const factor = cluster.Containers.PreemptiblePriceFactor;
  if (!(factor > 0)) return cluster;
  const types: Record<string, InstanceType> = { ...cluster.InstanceTypes };
  for (const t of Object.values(cluster.InstanceTypes)) {
    if (t.Preemptible) continue;
    const name = `${t.Name}.preemptible`;
    const twin: InstanceType = {
      ...t,
      Name: name,
      Preemptible: true,
      Price: t.Price * factor,
    };
    const existing = types[name];
    if (existing === undefined) types[name] = twin;
    else if (!sameType(existing, twin)) {
      problems.warnText(
        "value",
        `${label}.InstanceTypes.${name}`,
        `${label}.InstanceTypes[${name}]: already exists, so not automatically adding a preemptible variant of ${t.Name}`,
      );
    }
  }
  return { ...cluster, InstanceTypes: types };
}

async function loadDispatchKey(
  value: string,
  path: string,
  read: (path: string) => Promise<string>,
  problems: Problems,
): Promise<DispatchKey | null> {
  if (value === "") {
    problems.warn(
      "private-key",
      path,
      "not set; the dispatcher and cloudtest need it to log in to VMs",
    );
    return null;
  }
  let text = value;
  if (value.startsWith("file:")) {
    let file: string;
    try {
      const url = new URL(value);
      if (url.host !== "" || !url.pathname.startsWith("/")) throw new Error("not absolute");
      file = decodeURIComponent(url.pathname);
    } catch {
      problems.error(
        "private-key",
        path,
        `${JSON.stringify(value)} is not a file:///absolute/path URL`,
      );
      return null;
    }
    try {
      text = await read(file);
    } catch (err) {
      problems.error("private-key", path, `cannot read ${file}: ${describe(err)}`);
      return null;
    }
  }
  const parsed = parsePrivateKey(text);
  if (!parsed.ok) {
    problems.error("private-key", path, parsed.error);
    return null;
  }
  return parsed.value;
}
