/**
 * `Clusters.<id>.PostgreSQL.Connection` as Arvados reads it: libpq keywords, matched
 * case-insensitively (Arvados lowercases them), empty values meaning "not set". Arvados hands
 * them to Go's lib/pq; here they become node-postgres client settings with the same meaning,
 * including lib/pq's default `sslmode: require` (TLS without certificate checks).
 */
import { readFile } from "node:fs/promises";
import type { ClientConfig } from "pg";
import type { ConnectionOptions } from "node:tls";

export const SSL_MODES = ["disable", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The keywords we turn into client settings; anything else is reported and ignored. */
const KNOWN = new Set([
  "host",
  "port",
  "user",
  "password",
  "dbname",
  "sslmode",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "connect_timeout",
  "application_name",
  "fallback_application_name",
  "client_encoding",
  "options",
]);

/** The settings decoded from the config, before any file is read. */
export interface ConnectionSettings {
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  /** Secret: never logged. */
  readonly password?: string;
  readonly database?: string;
  readonly sslMode: SslMode;
  readonly sslRootCert?: string;
  readonly sslCert?: string;
  readonly sslKey?: string;
  readonly connectTimeoutMs?: number;
  readonly applicationName?: string;
  readonly fallbackApplicationName?: string;
  readonly clientEncoding?: string;
  readonly options?: string;
}

export interface ConnectionCheck {
  /** Null when there are errors. */
  readonly settings: ConnectionSettings | null;
  /** Each starts with the key path. */
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
}

function text(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return null;
}

/** True when any keyword has a value: then the dispatcher takes the cluster-wide lock. */
export function connectionConfigured(connection: unknown): boolean {
  if (typeof connection !== "object" || connection === null) return false;
  return Object.values(connection).some((v) => {
    const s = text(v);
    return s !== null && s !== "";
  });
}

/**
 * Decodes and checks the Connection keywords. `path` prefixes every problem, e.g.
 * `Clusters.zzzzz.PostgreSQL.Connection`. Passwords never appear in a problem.
 */
export function checkConnection(connection: unknown, path: string): ConnectionCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const values = new Map<string, string>();
  if (connection !== null && connection !== undefined) {
    if (typeof connection !== "object" || Array.isArray(connection)) {
      return { settings: null, errors: [`${path}: expected a map of settings`], warnings };
    }
    for (const [key, raw] of Object.entries(connection)) {
      if (raw === null || raw === undefined) continue;
      const v = text(raw);
      if (v === null) {
        errors.push(`${path}.${key}: expected a string`);
        continue;
      }
      if (v === "") continue;
      const k = key.toLowerCase();
      if (!KNOWN.has(k)) {
        warnings.push(
          `${path}.${key}: not supported by this dispatcher's lock connection; ignored (supported: ${[...KNOWN].join(", ")})`,
        );
        continue;
      }
      values.set(k, v);
    }
  }
  const get = (k: string): string | undefined => values.get(k);
  let port: number | undefined;
  const portText = get("port");
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      errors.push(`${path}.port: ${JSON.stringify(portText)} is not a TCP port (1-65535)`);
    }
  }
  let connectTimeoutMs: number | undefined;
  const timeoutText = get("connect_timeout");
  if (timeoutText !== undefined) {
    if (!/^\d+$/.test(timeoutText)) {
      errors.push(
        `${path}.connect_timeout: ${JSON.stringify(timeoutText)} is not a whole number of seconds`,
      );
    } else if (Number(timeoutText) > 0) {
      connectTimeoutMs = Number(timeoutText) * 1000;
    }
  }
  const sslText = get("sslmode") ?? "require";
  if (!(SSL_MODES as readonly string[]).includes(sslText)) {
    errors.push(
      `${path}.sslmode: unsupported sslmode ${JSON.stringify(sslText)}; use one of ${SSL_MODES.join(", ")} (as Arvados's PostgreSQL client)`,
    );
  }
  if (errors.length > 0) return { settings: null, errors, warnings };
  const optional = <K extends string>(name: K, v: string | undefined) =>
    (v === undefined ? {} : { [name]: v }) as Partial<Record<K, string>>;
  const settings: ConnectionSettings = {
    ...optional("host", get("host")),
    ...(port === undefined ? {} : { port }),
    ...optional("user", get("user")),
    ...optional("password", get("password")),
    ...optional("database", get("dbname")),
    sslMode: sslText as SslMode,
    ...optional("sslRootCert", get("sslrootcert")),
    ...optional("sslCert", get("sslcert")),
    ...optional("sslKey", get("sslkey")),
    ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
    ...optional("applicationName", get("application_name")),
    ...optional("fallbackApplicationName", get("fallback_application_name")),
    ...optional("clientEncoding", get("client_encoding")),
    ...optional("options", get("options")),
  };
  return { settings, errors, warnings };
}

/** host:port (or the socket directory) for messages; never the password. */
export function describeServer(s: ConnectionSettings): string {
  const host = s.host ?? "localhost";
  return host.startsWith("/") ? `${host} (socket)` : `${host}:${s.port ?? 5432}`;
}

/** How long a connection attempt may take when connect_timeout is not set. */
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

/**
 * node-postgres client settings, reading the certificate files named. `applicationName` is used
 * unless the config sets its own.
 */
export async function clientConfig(
  s: ConnectionSettings,
  applicationName: string,
): Promise<ClientConfig> {
  return {
    ...(s.host === undefined ? {} : { host: s.host }),
    ...(s.port === undefined ? {} : { port: s.port }),
    ...(s.user === undefined ? {} : { user: s.user }),
    ...(s.password === undefined ? {} : { password: s.password }),
    ...(s.database === undefined ? {} : { database: s.database }),
    ssl: await tlsOptions(s),
    connectionTimeoutMillis: s.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    application_name: s.applicationName ?? applicationName,
    ...(s.fallbackApplicationName === undefined
      ? {}
      : { fallback_application_name: s.fallbackApplicationName }),
    ...(s.clientEncoding === undefined ? {} : { client_encoding: s.clientEncoding }),
    ...(s.options === undefined ? {} : { options: s.options }),
    // A dead peer is noticed by the liveness query too; keepalives also free the server side.
    keepAlive: true,
  };
}

async function tlsOptions(s: ConnectionSettings): Promise<false | ConnectionOptions> {
  // PostgreSQL never offers TLS on a Unix socket.
  if (s.sslMode === "disable" || (s.host ?? "").startsWith("/")) return false;
  const files: ConnectionOptions = {
    ...(s.sslRootCert === undefined ? {} : { ca: await readFile(s.sslRootCert, "utf8") }),
    ...(s.sslCert === undefined ? {} : { cert: await readFile(s.sslCert, "utf8") }),
    ...(s.sslKey === undefined ? {} : { key: await readFile(s.sslKey, "utf8") }),
  };
  // require (lib/pq's default): encrypted, certificate not checked.
  if (s.sslMode === "require") return { ...files, rejectUnauthorized: false };
  if (s.sslMode === "verify-ca") {
    return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  }
  return { ...files, rejectUnauthorized: true };
}
