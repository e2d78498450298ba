import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  errorMessage,
  readDriverParameters,
  type DriverParameterReader,
} from "@dispatch-cloud/cloud-driver-api";
import { INSTANCE_SET_LABEL } from "./metadata.js";

/** Every DriverParameters key the GCE driver reads (config checks warn about any other). */
export const GCE_PARAMETER_KEYS = [
  "Project",
  "Zone",
  "Zones",
  "Network",
  "Subnetwork",
  "NetworkTags",
  "Credentials",
  "CredentialsFile",
  "ServiceAccount",
  "ServiceAccountScopes",
  "AdminUsername",
  "DiskType",
  "MinBootDiskSizeGB",
  "ScratchDiskType",
  "Labels",
  "Endpoint",
] as const;

export type GceParameterKey = (typeof GCE_PARAMETER_KEYS)[number];

/** The parts of a service-account key file the driver uses. */
export interface ServiceAccountKey {
  readonly client_email: string;
  readonly private_key: string;
  readonly project_id?: string;
  readonly private_key_id?: string;
}

/** Where the service-account key comes from, before a `CredentialsFile` is read. */
export type CredentialsSource =
  | { readonly kind: "inline"; readonly key: ServiceAccountKey }
  | { readonly kind: "file"; readonly path: string }
  /** Neither key given: the SDK's Application Default Credentials (e.g. the VM's own account). */
  | { readonly kind: "default" };

/** The GCE driver's DriverParameters, decoded, with defaults applied. */
export interface GceConfig {
  /** "" until a CredentialsFile supplies its project_id (see `resolveGceConfig`). */
  readonly project: string;
  /** Zones to create in, tried in turn when one has no capacity. At least one. */
  readonly zones: readonly string[];
  /** Network name or URL; "" means the project's `default` network. */
  readonly network: string;
  /** Subnetwork name (in each zone's region) or URL; "" lets GCE choose from the network. */
  readonly subnetwork: string;
  /** Network tags, for the firewall rules that let the dispatcher reach the VMs over SSH. */
  readonly networkTags: readonly string[];
  readonly credentials: CredentialsSource;
  /** Email of the service account the VMs run as; "" for none. */
  readonly serviceAccount: string;
  readonly serviceAccountScopes: readonly string[];
  readonly adminUsername: string;
  /** Boot disk type (`pd-balanced`, `pd-ssd`, `hyperdisk-balanced`, …). */
  readonly diskType: string;
  /** The boot disk is at least this big; 0 means the image's own size. */
  readonly minBootDiskSizeGb: number;
  /** `local-ssd`, or a persistent disk type, for AddedScratch. */
  readonly scratchDiskType: string;
  /** Labels for every VM and its disks (billing, ownership), besides the instance-set label. */
  readonly labels: Readonly<Record<string, string>>;
  /** A Compute API base URL (a local fake in tests); "" means Google's. */
  readonly endpoint: string;
}

export const DEFAULT_SCOPES: readonly string[] = ["https://www.googleapis.com/auth/cloud-platform"];

const ZONE_RE = /^[a-z]+(?:-[a-z]+)*[0-9]+-[a-z0-9]+$/;
const LABEL_KEY_RE = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE_RE = /^[a-z0-9_-]{0,63}$/;
const NETWORK_TAG_RE = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const DISK_TYPE_RE = /^[a-z][-a-z0-9]*$/;
const EMAIL_RE = /^[^@\s]+@[^@\s]+$/;
/** GCE allows 64 labels; one is ours. */
const MAX_LABELS = 63;

/** The region a zone belongs to (`us-central1-a` → `us-central1`). */
export function regionOf(zone: string): string {
  return zone.slice(0, zone.lastIndexOf("-"));
}

/**
 * Decode DriverParameters (keys matched case-insensitively, unknown keys ignored). Throws a
 * DriverParametersError listing every problem with its key path. Credentials are checked for
 * shape here but never echoed in a problem.
 */
export function parseGceParameters(parameters: Readonly<Record<string, unknown>>): GceConfig {
  const r = readDriverParameters(parameters, undefined, GCE_PARAMETER_KEYS);
  const credentials = readCredentials(r);
  let project = r.string("Project", { default: "" });
  if (project === "" && credentials.kind === "inline") project = credentials.key.project_id ?? "";
  if (project === "" && credentials.kind !== "file") {
    r.problem("Project", "is required (or give Credentials with a project_id)");
  }
  const endpoint = r.string("Endpoint", { default: "" });
  if (endpoint !== "" && endpointParts(endpoint) === undefined) {
    r.problem("Endpoint", `must be an http:// or https:// URL, not ${JSON.stringify(endpoint)}`);
  }
  const serviceAccount = r.string("ServiceAccount", { default: "" });
  // "default" is GCE's name for the project's default compute service account.
  if (serviceAccount !== "" && serviceAccount !== "default" && !EMAIL_RE.test(serviceAccount)) {
    r.problem("ServiceAccount", `must be a service account email or "default"`);
  }
  const scopes = r.stringList("ServiceAccountScopes", { default: DEFAULT_SCOPES });
  if (serviceAccount === "" && r.raw("ServiceAccountScopes") !== undefined && scopes.length > 0) {
    r.problem("ServiceAccountScopes", "needs ServiceAccount: scopes belong to the VMs' account");
  }
  const diskType = r.string("DiskType", { default: "pd-balanced" }) || "pd-balanced";
  checkDiskType(r, "DiskType", diskType);
  if (diskType === "local-ssd") r.problem("DiskType", "a boot disk cannot be a local SSD");
  const scratchDiskType = r.string("ScratchDiskType", { default: "pd-balanced" }) || "pd-balanced";
  checkDiskType(r, "ScratchDiskType", scratchDiskType);
  const config: GceConfig = {
    project,
    zones: readZones(r),
    network: r.string("Network", { default: "" }),
    subnetwork: r.string("Subnetwork", { default: "" }),
    networkTags: readNetworkTags(r),
    credentials,
    serviceAccount,
    serviceAccountScopes: serviceAccount === "" ? [] : scopes,
    adminUsername: r.string("AdminUsername", { default: "crunch" }) || "crunch",
    diskType,
    minBootDiskSizeGb: r.integer("MinBootDiskSizeGB", { default: 0, min: 0, max: 65_536 }),
    scratchDiskType,
    labels: readLabels(r),
    endpoint,
  };
  r.finish();
  return config;
}

/**
 * Read a `CredentialsFile` (if that is where the key is) and fill in Project from it. Throws a
 * DriverParametersError naming the key on an unreadable or malformed file.
 */
export async function resolveGceConfig(config: GceConfig): Promise<GceConfig> {
  if (config.credentials.kind !== "file") return config;
  const r = readDriverParameters({});
  let text: string | undefined;
  try {
    text = await readFile(config.credentials.path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    r.problem(
      "CredentialsFile",
      `cannot read ${config.credentials.path}: ${code ?? errorMessage(err)}`,
    );
  }
  const key =
    text === undefined ? undefined : checkServiceAccountKey(r, "CredentialsFile", parseJson(text));
  const project = config.project || key?.project_id || "";
  if (key !== undefined && project === "") {
    r.problem("Project", "is required (the key file has no project_id)");
  }
  r.finish();
  // finish() threw unless the key was read and checked.
  return { ...config, project, credentials: { kind: "inline", key: key! } };
}

/** host, port and protocol of an Endpoint URL, as the SDK takes them. */
export function endpointParts(
  endpoint: string,
): { host: string; port: number; protocol: "http" | "https" } | undefined {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  if (u.pathname !== "/" && u.pathname !== "") return undefined;
  const protocol = u.protocol === "http:" ? "http" : "https";
  const port = u.port === "" ? (protocol === "http" ? 80 : 443) : Number(u.port);
  // URL keeps IPv6 hosts in brackets; the SDK builds `protocol://host:port`, which needs them.
  return { host: u.hostname, port, protocol };
}

function readCredentials(r: DriverParameterReader): CredentialsSource {
  const inline = r.raw("Credentials");
  // Read raw: the string getter would quote a wrong value, and a key pasted here by mistake
  // must not end up in an error message.
  const rawFile = r.raw("CredentialsFile");
  let file = "";
  if (typeof rawFile === "string") file = rawFile;
  else if (rawFile !== undefined && rawFile !== null) {
    r.problem("CredentialsFile", "must be the path of a JSON key file");
  }
  const hasInline = inline !== undefined && inline !== null && inline !== "";
  if (hasInline && file !== "") {
    r.problem("Credentials", "give Credentials or CredentialsFile, not both");
    return { kind: "default" };
  }
  if (file !== "") return { kind: "file", path: file };
  if (!hasInline) return { kind: "default" };
  const value = typeof inline === "string" ? parseJson(inline) : inline;
  const key = checkServiceAccountKey(r, "Credentials", value);
  return key === undefined ? { kind: "default" } : { kind: "inline", key };
}

/** A parse failure is reported without the text: it holds a private key. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return Symbol.for("not JSON");
  }
}

function checkServiceAccountKey(
  r: DriverParameterReader,
  key: string,
  value: unknown,
): ServiceAccountKey | undefined {
  if (typeof value === "symbol") {
    r.problem(key, "is not a JSON service account key");
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    r.problem(key, "must be a service account key (a JSON object)");
    return undefined;
  }
  const v = value as Record<string, unknown>;
  const field = (name: string): string | undefined =>
    typeof v[name] === "string" && v[name] !== "" ? v[name] : undefined;
  if (v["type"] !== "service_account") {
    r.problem(key, `must be a key of type "service_account", not ${JSON.stringify(v["type"])}`);
    return undefined;
  }
  const email = field("client_email");
  const privateKey = field("private_key");
  if (email === undefined) r.problem(key, "has no client_email");
  if (privateKey === undefined) r.problem(key, "has no private_key");
  if (email === undefined || privateKey === undefined) return undefined;
  try {
    createPrivateKey(privateKey);
  } catch {
    r.problem(key, "has a private_key that is not a PEM private key");
    return undefined;
  }
  const projectId = field("project_id");
  const keyId = field("private_key_id");
  return {
    client_email: email,
    private_key: privateKey,
    ...(projectId === undefined ? {} : { project_id: projectId }),
    ...(keyId === undefined ? {} : { private_key_id: keyId }),
  };
}

/** `Zone: a` or `Zones: [a, b]` (tried in that order), not both. */
function readZones(r: DriverParameterReader): string[] {
  const one = r.string("Zone", { default: "" });
  const many = r.stringList("Zones", { default: [] });
  if (one !== "" && many.length > 0) {
    r.problem("Zones", "give Zone or Zones, not both");
    return [];
  }
  if (one === "" && many.length === 0) {
    r.problem("Zone", "is required (or Zones, a list of zones to fail over across)");
    return [];
  }
  const key = (i: number): string => (one !== "" ? "Zone" : `Zones[${i}]`);
  const zones = one !== "" ? [one] : many;
  const seen = new Set<string>();
  zones.forEach((z, i) => {
    if (!ZONE_RE.test(z)) {
      r.problem(key(i), `must be a zone name such as us-central1-a, not ${JSON.stringify(z)}`);
    } else if (seen.has(z)) {
      r.problem(key(i), `repeats zone ${z}`);
    }
    seen.add(z);
  });
  return zones;
}

function readNetworkTags(r: DriverParameterReader): string[] {
  const tags = r.stringList("NetworkTags", { default: [] });
  tags.forEach((t, i) => {
    if (!NETWORK_TAG_RE.test(t)) {
      r.problem(
        `NetworkTags[${i}]`,
        `must be lowercase letters, digits and dashes (at most 63, starting with a letter), not ${JSON.stringify(t)}`,
      );
    }
  });
  return tags;
}

function readLabels(r: DriverParameterReader): Record<string, string> {
  const labels = r.stringMap("Labels", { default: {} });
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) r.problem("Labels", `at most ${MAX_LABELS} labels`);
  for (const k of keys) {
    if (k === INSTANCE_SET_LABEL) {
      r.problem(`Labels.${k}`, "is the driver's own label for the instance set");
    } else if (!LABEL_KEY_RE.test(k)) {
      r.problem(
        `Labels.${k}`,
        "label keys must be lowercase letters, digits, _ and - (at most 63, starting with a letter)",
      );
    } else if (!LABEL_VALUE_RE.test(labels[k]!)) {
      r.problem(
        `Labels.${k}`,
        `label values must be lowercase letters, digits, _ and - (at most 63), not ${JSON.stringify(labels[k])}`,
      );
    }
  }
  return labels;
}

function checkDiskType(r: DriverParameterReader, key: string, value: string): void {
  if (!DISK_TYPE_RE.test(value)) {
    r.problem(key, `must be a disk type such as pd-balanced, not ${JSON.stringify(value)}`);
  }
}
