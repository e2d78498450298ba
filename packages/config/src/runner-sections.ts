/**
 * Arvados's defaults (config.default.yml) for the sections the dispatcher does not use itself
 * but hands, with the rest of the cluster config, to crunch-run on each VM (`--stdin-config`),
 * which passes them to the keepstore it starts beside the container: Collections, Volumes,
 * StorageClasses, Users, and the API, SystemLogs, TLS and Containers.Logging keys beyond the
 * dispatcher's own. Go's crunch-run decodes the JSON into its cluster struct, so a key we leave
 * out arrives as zero (DefaultReplication 0, BlobSigningTTL 0s) instead of Arvados's default.
 * The sections stay open: keys of other Arvados versions pass through as written.
 */
import { bool, bytes, dur, f, int, show, str, struct, type Field, type Node } from "./schema.js";
import type { ClusterConfig, StorageClassConfig, VolumeConfig } from "./types.js";
import { formatDuration, parseDuration } from "./units.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * A duration where a negative value means something: PreserveVersionIfIdle's -1s is "never"
 * (the dispatcher's own durations are never negative, so the shared node refuses them).
 */
const signedDuration = (def: number): Field =>
  f(
    {
      t: "custom",
      decode(value, path, p) {
        const r =
          typeof value === "string" || typeof value === "number" ? parseDuration(value) : null;
        if (r?.ok) return r.value;
        p.error("type", path, `${show(value)} is not a duration (examples: -1s, 0s, 10s, 1m30s)`);
        return def;
      },
      encode: (value) => formatDuration(value as number),
    },
    def,
  );

/** A map whose keys are the set's members: written as a list or a map, sent as a map. */
const stringSet = (def: readonly string[] = []): Field => f({ t: "stringSet" }, def);

export const collectionsNode = struct(
  {
    BlobSigning: bool(true),
    BlobSigningKey: str(""),
    BlobSigningTTL: dur(336 * HOUR),
    BlobTrash: bool(true),
    BlobTrashLifetime: dur(336 * HOUR),
    BlobTrashCheckInterval: dur(24 * HOUR),
    BlobTrashConcurrency: int(4),
    BlobDeleteConcurrency: int(4),
    BlobReplicateConcurrency: int(4),
    CollectionVersioning: bool(false),
    DefaultTrashLifetime: dur(336 * HOUR),
    DefaultReplication: int(2),
    ManagedProperties: f({ t: "raw", mustBeMap: true }, {}),
    PreserveVersionIfIdle: signedDuration(-1 * SECOND),
    TrashSweepInterval: dur(60 * SECOND),
    TrustAllContent: bool(false),
    ForwardSlashNameSubstitution: str(""),
    S3FolderObjects: bool(true),
    BlobMissingReport: str(""),
    BalancePeriod: dur(10 * MINUTE),
    BalanceCollectionBatch: int(0),
    BalanceCollectionBuffers: int(1000),
    BalanceTimeout: dur(6 * HOUR),
    WebDAVCache: f(
      struct(
        {
          TTL: dur(300 * SECOND),
          UUIDTTL: dur(5 * SECOND),
          MaxBlockEntries: int(4),
          MaxCollectionEntries: int(1000),
          MaxCollectionBytes: bytes(100_000_000),
          MaxPermissionEntries: int(1000),
          MaxUUIDEntries: int(1000),
          MaxSessions: int(100),
        },
        true,
      ),
      undefined,
    ),
  },
  true,
);

/** The API keys beyond the dispatcher's own (cluster-schema.ts has those). */
export const apiFields: Readonly<Record<string, Field>> = {
  MaxTokenLifetime: dur(0),
  MaxRequestSize: int(134_217_728),
  MaxIndexDatabaseRead: int(134_217_728),
  MaxKeepBlobBuffers: int(128),
  DisabledAPIs: stringSet(),
  AsyncPermissionsUpdateInterval: dur(20 * SECOND),
  MaxRequestAmplification: int(4),
  SendTimeout: dur(60 * SECOND),
  WebsocketClientEventQueue: int(64),
  WebsocketServerEventQueue: int(4),
  KeepServiceRequestTimeout: dur(15 * SECOND),
};

export const usersNode = struct(
  {
    AutoSetupNewUsers: bool(false),
    AutoSetupNewUsersWithVmUUID: str(""),
    AutoSetupNewUsersWithRepository: bool(false),
    AutoSetupUsernameBlacklist: stringSet([
      "arvados",
      "git",
      "gitolite",
      "gitolite-admin",
      "root",
      "syslog",
    ]),
    NewUsersAreActive: bool(false),
    AutoAdminUserWithEmail: str(""),
    AutoAdminFirstUser: bool(false),
    UserProfileNotificationAddress: str(""),
    AdminNotifierEmailFrom: str("arvados@example.com"),
    EmailSubjectPrefix: str("[ARVADOS] "),
    UserNotifierEmailFrom: str("arvados@example.com"),
    NewUserNotificationRecipients: stringSet(),
    NewInactiveUserNotificationRecipients: stringSet(),
    AnonymousUserToken: str(""),
    PreferDomainForUsername: str(""),
  },
  true,
);

export const systemLogsFields: Readonly<Record<string, Field>> = {
  MaxRequestLogParamsSize: int(2000),
};

export const tlsFields: Readonly<Record<string, Field>> = {
  Certificate: str(""),
  Key: str(""),
};

/** Containers.Logging beyond LogUpdatePeriod and LogUpdateSize. */
export const containersLoggingFields: Readonly<Record<string, Field>> = {
  MaxAge: dur(720 * HOUR),
  LogBytesPerEvent: int(4096),
  LogSecondsBetweenEvents: dur(5 * SECOND),
  LogThrottlePeriod: dur(60 * SECOND),
  LogThrottleBytes: int(65_536),
  LogThrottleLines: int(1024),
  LimitLogBytesPerJob: int(67_108_864),
  LogPartialLineThrottlePeriod: dur(5 * SECOND),
};

/**
 * One Keep volume. Arvados gives volume entries no defaults (its SAMPLE entry only documents
 * the keys), so an absent key is Go's zero value, as crunch-run would decode it.
 */
const volumeNode = struct(
  {
    AccessViaHosts: f({ t: "map", urlKeys: true, of: struct({ ReadOnly: bool(false) }, true) }, {}),
    ReadOnly: bool(false),
    Replication: int(0),
    StorageClasses: f({ t: "map", of: { t: "bool" } }, {}),
    Driver: str(""),
    DriverParameters: f({ t: "raw" }, null),
  },
  true,
);

export const volumesNode: Node = { t: "map", of: volumeNode };

export const storageClassesNode: Node = {
  t: "map",
  of: struct({ Default: bool(false), Priority: int(0) }, true),
};

/**
 * Arvados's implicit storage class: with no storage class configured anywhere (neither in
 * StorageClasses nor on any volume), every volume gets `{default: true}` and StorageClasses
 * becomes `{default: {Default: true, Priority: 0}}`.
 */
export function withImplicitStorageClasses(cluster: ClusterConfig): ClusterConfig {
  const volumes = cluster.Volumes;
  if (Object.keys(cluster.StorageClasses).length > 0) return cluster;
  if (Object.values(volumes).some((v) => Object.keys(v.StorageClasses).length > 0)) return cluster;
  const withDefault: Record<string, VolumeConfig> = {};
  for (const [id, v] of Object.entries(volumes)) {
    withDefault[id] = { ...v, StorageClasses: { default: true } };
  }
  const classes: Record<string, StorageClassConfig> = { default: { Default: true, Priority: 0 } };
  return { ...cluster, Volumes: withDefault, StorageClasses: classes };
}
