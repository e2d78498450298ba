/**
 * The cluster keys this package knows, with Arvados's defaults (config.default.yml). Sections
 * other components own are passed through as written.
 */
import type { InstanceType } from "@dispatch-cloud/arvados-types";
import type { Problems } from "./problems.js";
import {
  bool,
  bytes,
  decode,
  dur,
  encode,
  f,
  float,
  int,
  isMap,
  show,
  str,
  struct,
  type Node,
} from "./schema.js";
import {
  apiFields,
  collectionsNode,
  containersLoggingFields,
  storageClassesNode,
  systemLogsFields,
  tlsFields,
  usersNode,
  volumesNode,
} from "./runner-sections.js";
import { passthroughSections } from "./types.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const MiB = 2 ** 20;

const gpuNode = struct({
  Stack: f({ t: "enum", values: ["", "cuda", "rocm"] }, ""),
  DriverVersion: str(),
  HardwareTarget: str(),
  DeviceCount: int(),
  VRAM: bytes(),
});

/** What a user writes for one instance type. Name and Scratch are computed, so not accepted. */
const instanceTypeNode = struct({
  ProviderType: str(),
  VCPUs: int(),
  RAM: bytes(),
  IncludedScratch: bytes(),
  AddedScratch: bytes(),
  Price: float(),
  Preemptible: bool(),
  GPU: f(gpuNode, { Stack: "", DriverVersion: "", HardwareTarget: "", DeviceCount: 0, VRAM: 0 }),
});

/** The section Arvados dropped in 3.3; we still read it (see decodeInstanceType). */
const legacyCudaNode = struct({
  DriverVersion: str(),
  HardwareCapability: str(),
  DeviceCount: int(),
});

const floatRe = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function decodeInstanceType(name: string, value: unknown, path: string, p: Problems): InstanceType {
  const input: Record<string, unknown> = isMap(value) ? { ...value } : {};
  if (!isMap(value) && value !== null && value !== undefined) {
    p.error("type", path, `expected a map of instance type fields, got ${show(value)}`);
  }
  const legacy = input["CUDA"];
  delete input["CUDA"];
  const t = decode(instanceTypeNode, input, path, p) as Omit<InstanceType, "Name" | "Scratch">;
  let gpu = t.GPU;
  if (legacy !== undefined && legacy !== null) {
    // Arvados 3.3 ignores CUDA (the type silently loses its GPU); the install guide still shows
    // it, so we read it as GPU and tell the operator to rewrite it.
    const cuda = decode(legacyCudaNode, legacy, `${path}.CUDA`, p) as {
      DriverVersion: string;
      HardwareCapability: string;
      DeviceCount: number;
    };
    if (input["GPU"] !== undefined && input["GPU"] !== null) {
      p.warn(
        "deprecated",
        `${path}.CUDA`,
        "deprecated section ignored because GPU is also set; remove CUDA",
      );
    } else {
      gpu = {
        Stack: "cuda",
        DriverVersion: cuda.DriverVersion,
        HardwareTarget: cuda.HardwareCapability,
        DeviceCount: cuda.DeviceCount,
        VRAM: 0,
      };
      p.warn(
        "deprecated",
        `${path}.CUDA`,
        `deprecated section read as GPU: {Stack: cuda, DriverVersion: ${JSON.stringify(cuda.DriverVersion)}, HardwareTarget: ${JSON.stringify(cuda.HardwareCapability)}, DeviceCount: ${cuda.DeviceCount}}; write it as GPU (with VRAM) instead`,
      );
    }
  }
  if (gpu.DeviceCount > 0) {
    if (!floatRe.test(gpu.DriverVersion.trim())) {
      p.error(
        "value",
        `${path}.GPU.DriverVersion`,
        `InstanceType ${JSON.stringify(name)} has invalid GPU.DriverVersion ${JSON.stringify(gpu.DriverVersion)}, expected format X.Y (not a number)`,
      );
    }
    if (gpu.VRAM <= 0) {
      p.warn(
        "value",
        `${path}.GPU.VRAM`,
        "not set; a GPU type with VRAM 0 never satisfies a container that requests GPU memory",
      );
    }
  }
  return {
    Name: name,
    ProviderType: t.ProviderType === "" ? name : t.ProviderType,
    VCPUs: t.VCPUs,
    RAM: t.RAM,
    IncludedScratch: t.IncludedScratch,
    AddedScratch: t.AddedScratch,
    Scratch: t.IncludedScratch + t.AddedScratch,
    Price: t.Price,
    Preemptible: t.Preemptible,
    GPU: gpu,
  };
}

const instanceTypesNode: Node = {
  t: "custom",
  decode(value, path, p) {
    if (Array.isArray(value)) {
      p.error(
        "type",
        path,
        "InstanceTypes must be specified as a map, not an array, see https://doc.arvados.org/admin/config.html",
      );
      return {};
    }
    if (!isMap(value)) {
      p.error("type", path, `expected a map of instance types, got ${show(value)}`);
      return {};
    }
    const out: Record<string, InstanceType> = {};
    for (const [name, v] of Object.entries(value))
      out[name] = decodeInstanceType(name, v, `${path}.${name}`, p);
    return out;
  },
  // Written back without the computed Name and Scratch, so a dump loads again without warnings.
  encode(value) {
    const out: Record<string, unknown> = {};
    for (const [name, t] of Object.entries(value as Record<string, InstanceType>)) {
      const { Name: _name, Scratch: _scratch, ...rest } = t;
      out[name] = encode(instanceTypeNode, rest);
    }
    return out;
  },
};

export const cloudVMsNode = struct({
  Enable: bool(false),
  BootProbeCommand: str("systemctl is-system-running"),
  InstanceInitCommand: str(""),
  SSHPort: str("22"),
  SyncInterval: dur(MINUTE),
  TimeoutIdle: dur(MINUTE),
  TimeoutBooting: dur(10 * MINUTE),
  TimeoutProbe: dur(10 * MINUTE),
  TimeoutShutdown: dur(10 * SECOND),
  MaxCloudOpsPerSecond: int(10),
  MaxConcurrentInstanceCreateOps: int(1),
  MaxInstances: int(64),
  MaxRunningContainersPerInstance: int(0),
  InitialQuotaEstimate: int(0),
  SupervisorFraction: float(0.5),
  PollInterval: dur(10 * SECOND),
  ProbeInterval: dur(10 * SECOND),
  MaxProbesPerSecond: int(10),
  TimeoutSignal: dur(5 * SECOND),
  TimeoutTERM: dur(2 * MINUTE),
  TimeoutStaleRunLock: dur(5 * SECOND),
  ImageID: str(""),
  ResourceTags: f({ t: "stringMap" }, {}),
  TagKeyPrefix: str("Arvados"),
  Driver: str("ec2"),
  DriverParameters: f({ t: "raw", mustBeMap: true }, {}),
  DeployRunnerBinary: str("/proc/self/exe"),
  DeployRunnerDirectory: str("/tmp/arvados-crunch-run"),
  DeployPublicKey: bool(true),
});

const containersNode = struct({
  SupportedDockerImageFormats: f({ t: "stringSet" }, ["v2"]),
  LogReuseDecisions: bool(false),
  DefaultKeepCacheRAM: bytes(0),
  MaxDispatchAttempts: int(10),
  MaxRetryAttempts: int(3),
  AlwaysUsePreemptibleInstances: bool(false),
  PreemptiblePriceFactor: float(0),
  MaximumPriceFactor: float(1.5),
  DispatchPrivateKey: str(""),
  StaleLockTimeout: dur(MINUTE),
  CrunchRunCommand: str("crunch-run"),
  CrunchRunArgumentsList: f({ t: "stringList" }, []),
  ReserveExtraRAM: bytes(550 * MiB),
  MinRetryPeriod: dur(0),
  RuntimeEngine: str("docker"),
  LocalKeepBlobBuffersPerVCPU: int(1),
  LocalKeepLogsToContainerLog: f({ t: "enum", values: ["none", "all", "errors"] }, "none"),
  Logging: f(
    struct(
      {
        LogUpdatePeriod: dur(30 * MINUTE),
        LogUpdateSize: bytes(32 * MiB),
        ...containersLoggingFields,
      },
      true,
    ),
    {
      LogUpdatePeriod: 30 * MINUTE,
      LogUpdateSize: 32 * MiB,
    },
  ),
  ShellAccess: f(struct({ Admin: bool(true), User: bool(false) }), { Admin: true, User: false }),
  SLURM: f({ t: "raw" }, {}),
  LSF: f({ t: "raw" }, {}),
  CloudVMs: f(cloudVMsNode, undefined),
});

const serviceNode = struct(
  {
    InternalURLs: f(
      {
        t: "map",
        urlKeys: true,
        of: struct({ ListenURL: f({ t: "url" }, ""), Rendezvous: str("") }),
      },
      {},
    ),
    ExternalURL: f({ t: "url" }, ""),
  },
  true,
);

const passthrough = Object.fromEntries(
  passthroughSections.map((s) => [s, f({ t: "raw" }, undefined)]),
);

export const clusterNode = struct({
  ManagementToken: str(""),
  SystemRootToken: str(""),
  Services: f({ t: "map", of: serviceNode }, {}),
  API: f(
    struct(
      {
        MaxConcurrentRequests: int(64),
        MaxQueuedRequests: int(128),
        RequestTimeout: dur(5 * MINUTE),
        MaxQueueTimeForLockRequests: dur(2 * SECOND),
        MaxItemsPerResponse: int(1000),
        ...apiFields,
      },
      true,
    ),
    undefined,
  ),
  TLS: f(struct({ Insecure: bool(false), ...tlsFields }, true), undefined),
  PostgreSQL: f(
    struct({ Connection: f({ t: "raw" }, {}), ConnectionPool: int(32) }, true),
    undefined,
  ),
  SystemLogs: f(
    struct({ Format: str("json"), LogLevel: str("info"), ...systemLogsFields }, true),
    undefined,
  ),
  Containers: f(containersNode, undefined),
  InstanceTypes: f(instanceTypesNode, {}),
  Collections: f(collectionsNode, undefined),
  Users: f(usersNode, undefined),
  Volumes: f(volumesNode, {}),
  StorageClasses: f(storageClassesNode, {}),
  ...passthrough,
});
