export {
  SSL_MODES,
  checkConnection,
  connectionConfigured,
  describeServer,
  type ConnectionCheck,
  type ConnectionSettings,
  type SslMode,
} from "./connection.js";
export {
  ClusterLock,
  DISPATCH_LOCK_KEY,
  RETRY_MS,
  describeHolder,
  lockApplicationName,
  type ClusterLockOptions,
  type LockHolder,
} from "./lock.js";
