export type {
  ApiConfig,
  ByteSize,
  CloudVMsConfig,
  ClusterConfig,
  CollectionsConfig,
  ContainersConfig,
  ContainersLoggingConfig,
  Duration,
  InternalUrlConfig,
  PassthroughSection,
  PostgreSQLConfig,
  RawSection,
  ServiceConfig,
  ShellAccessConfig,
  StorageClassConfig,
  SystemLogsConfig,
  TlsConfig,
  UsersConfig,
  VolumeConfig,
} from "./types.js";
export { passthroughSections } from "./types.js";
export { parseDuration, formatDuration, parseByteSize, type Parsed } from "./units.js";
export type { ConfigProblem, ProblemKind } from "./problems.js";
export { loadConfig, type LoadedConfig, type LoadOptions, type LoadResult } from "./load.js";
export { parsePrivateKey, type DispatchKey } from "./private-key.js";
export { REDACTED, secretKeyPattern, redactConfig, encodeCluster, dumpConfig } from "./redact.js";
