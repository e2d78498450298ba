import type { Logger } from "@dispatch-cloud/arvados-types";
import { readDriverParameters, type DriverParameterReader } from "@dispatch-cloud/cloud-driver-api";
import { DEFAULT_INSTANCE_TYPE_QUOTA_GROUPS } from "./quota-group.js";

/** The EC2 driver's DriverParameters, decoded, with defaults applied. */
export interface Ec2Config {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  /** An EC2-compatible API endpoint (e.g. a moto server); "" means AWS's own. */
  readonly endpoint: string;
  readonly securityGroupIds: readonly string[];
  readonly subnetIds: readonly string[];
  readonly adminUsername: string;
  readonly ebsVolumeType: string;
  /** Dollars per GiB-month of EBS, for the AddedScratch volume's share of PriceHistory. */
  readonly ebsPrice: number;
  readonly iamInstanceProfile: string;
  /** Milliseconds; 0 turns availability-zone and spot price lookups off. */
  readonly spotPriceUpdateIntervalMs: number;
  /** Configured groups merged over the defaults. */
  readonly instanceTypeQuotaGroups: Readonly<Record<string, string>>;
}

const DAY_MS = 24 * 3_600_000;

/** Every DriverParameters key the EC2 driver reads (config checks warn about any other). */
export const EC2_PARAMETER_KEYS = [
  "AccessKeyID",
  "SecretAccessKey",
  "Region",
  "Endpoint",
  "SecurityGroupIDs",
  "SubnetID",
  "AdminUsername",
  "EBSVolumeType",
  "EBSPrice",
  "IAMInstanceProfile",
  "SpotPriceUpdateInterval",
  "InstanceTypeQuotaGroups",
] as const;

/**
 * Decode DriverParameters (keys matched case-insensitively, unknown keys ignored, since the
 * object also carries other drivers' defaults). Throws DriverParametersError listing every
 * problem with its key path.
 */
export function parseEc2Parameters(
  parameters: Readonly<Record<string, unknown>>,
  logger?: Logger,
): Ec2Config {
  const r = readDriverParameters(parameters, undefined, EC2_PARAMETER_KEYS);
  const accessKeyId = r.string("AccessKeyID", { default: "" });
  const secretAccessKey = r.string("SecretAccessKey", { default: "" });
  if ((accessKeyId === "") !== (secretAccessKey === "")) {
    r.problem(
      accessKeyId === "" ? "AccessKeyID" : "SecretAccessKey",
      "AccessKeyID and SecretAccessKey must both be set, or both be empty to use the default credential chain",
    );
  }
  const endpoint = r.string("Endpoint", { default: "" });
  if (endpoint !== "" && !isHttpUrl(endpoint)) {
    r.problem("Endpoint", `must be an http:// or https:// URL, not ${JSON.stringify(endpoint)}`);
  }
  const ebsVolumeType = r.string("EBSVolumeType", { default: "gp2" });
  const config: Ec2Config = {
    accessKeyId,
    secretAccessKey,
    region: r.string("Region", { default: "" }),
    endpoint,
    securityGroupIds: readSecurityGroups(r),
    subnetIds: readSubnets(r),
    adminUsername: r.string("AdminUsername", { default: "crunch" }),
    ebsVolumeType: ebsVolumeType === "" ? "gp2" : ebsVolumeType,
    ebsPrice: r.number("EBSPrice", { default: 0.1, min: 0 }),
    iamInstanceProfile: r.string("IAMInstanceProfile", { default: "" }),
    spotPriceUpdateIntervalMs: Math.max(
      0,
      r.duration("SpotPriceUpdateInterval", { default: DAY_MS }),
    ),
    instanceTypeQuotaGroups: readQuotaGroups(r, logger),
  };
  r.finish();
  return config;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

/** A list of IDs, or a map whose keys are the IDs (Arvados accepts both). */
function readSecurityGroups(r: DriverParameterReader): string[] {
  const key = "SecurityGroupIDs";
  const v = r.raw(key);
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) {
    const out: string[] = [];
    v.forEach((id, i) => {
      if (typeof id === "string" && id !== "") out.push(id);
      else r.problem(`${key}[${i}]`, `must be a non-empty string, not ${JSON.stringify(id)}`);
    });
    return [...new Set(out)];
  }
  if (typeof v === "object") return Object.keys(v).sort();
  r.problem(
    key,
    `must be a list of security group IDs or a map keyed by them, not ${JSON.stringify(v)}`,
  );
  return [];
}

/** `""`, `[]` or absent → none; `"x"` → [x]; a list as given. */
function readSubnets(r: DriverParameterReader): string[] {
  const key = "SubnetID";
  const v = r.raw(key);
  if (v === undefined || v === null || v === "") return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) {
    const out: string[] = [];
    v.forEach((id, i) => {
      if (typeof id === "string" && id !== "") out.push(id);
      else r.problem(`${key}[${i}]`, `must be a non-empty string, not ${JSON.stringify(id)}`);
    });
    return out;
  }
  r.problem(key, `must be a subnet ID or a list of them, not ${JSON.stringify(v)}`);
  return [];
}

function readQuotaGroups(
  r: DriverParameterReader,
  logger: Logger | undefined,
): Record<string, string> {
  const configured = r.stringMap("InstanceTypeQuotaGroups", { default: {} });
  for (const prefix of Object.keys(configured)) {
    // Arvados silently never matches such a key; a warning keeps the config acceptable but visible.
    if (prefix !== prefix.toLowerCase()) {
      logger?.warn(
        { key: `InstanceTypeQuotaGroups.${prefix}` },
        "InstanceTypeQuotaGroups keys must be lowercase; this one never matches",
      );
    }
  }
  return { ...DEFAULT_INSTANCE_TYPE_QUOTA_GROUPS, ...configured };
}
