/*
 * Which cluster the client commands (`submit`, `container ...`) talk to, and with which token.
 *
 * A config file named by `--config` or `$ARVADOS_CONFIG` wins: its
 * `Services.Controller.ExternalURL` with the SystemRootToken, and the dispatchers' management
 * APIs (`Services.DispatchCloud.InternalURLs` with the ManagementToken). Otherwise
 * `ARVADOS_API_HOST` / `ARVADOS_API_TOKEN` / `ARVADOS_API_HOST_INSECURE`, as Arvados's own
 * client tools read them. Otherwise `/etc/arvados/config.yml`.
 */
import { ArvadosApiError, ArvadosClient } from "@dispatch-cloud/arvados-client";
import { loadConfig } from "@dispatch-cloud/config";
import type { CliIo } from "../io.js";

/** Requests from a person's terminal: a hung controller is reported within this time. */
export const CLIENT_TIMEOUT_MS = 30_000;

const DEFAULT_CONFIG = "/etc/arvados/config.yml";

/** Something the user can fix; its message is the whole story and is printed as it is. */
export class ClientError extends Error {
  override readonly name = "ClientError";
}

export interface Target {
  /** The controller (or the embedded container API). */
  readonly api: ArvadosClient;
  /** Where the API token came from, for "refused the token" messages. */
  readonly tokenSource: string;
  /** The dispatchers' management APIs; empty without a config or a ManagementToken. */
  readonly dispatchers: readonly ArvadosClient[];
  /** Where the ManagementToken came from. */
  readonly managementTokenSource: string;
  close(): Promise<void>;
}

export const TARGET_HELP = `
Which cluster and token:
  A config file given by --config or $ARVADOS_CONFIG wins: Services.Controller.ExternalURL with
  the SystemRootToken (and TLS.Insecure), plus the dispatcher's management API at
  Services.DispatchCloud.InternalURLs with the ManagementToken for scheduling status.
  Otherwise $ARVADOS_API_HOST (host:port for https, or a full URL) and $ARVADOS_API_TOKEN, as
  Arvados's own tools use them ($ARVADOS_API_HOST_INSECURE=1 accepts any TLS certificate).
  Otherwise ${DEFAULT_CONFIG}.
`;

const nonEmpty = (v: string | undefined): string | undefined =>
  v === undefined || v === "" ? undefined : v;

/** Arvados's SDKs take 1, true or yes (any case) as "insecure". */
function truthy(v: string | undefined): boolean {
  return ["1", "true", "yes"].includes((v ?? "").trim().toLowerCase());
}

function client(apiHost: string, token: string, insecure: boolean, what: string): ArvadosClient {
  try {
    return new ArvadosClient({ apiHost, token, insecure, timeoutMs: CLIENT_TIMEOUT_MS });
  } catch {
    // The URL parser's own message ("Invalid URL") does not say which setting is wrong.
    throw new ClientError(`${what} ${JSON.stringify(apiHost)} is not a host:port or a URL`);
  }
}

export async function resolveTarget(io: CliIo, configFlag: string | undefined): Promise<Target> {
  const configPath = configFlag ?? nonEmpty(io.env["ARVADOS_CONFIG"]);
  if (configPath === undefined) {
    const host = nonEmpty(io.env["ARVADOS_API_HOST"]);
    const token = nonEmpty(io.env["ARVADOS_API_TOKEN"]);
    if (host !== undefined || token !== undefined) {
      if (host === undefined)
        throw new ClientError("ARVADOS_API_TOKEN is set but ARVADOS_API_HOST is not");
      if (token === undefined)
        throw new ClientError("ARVADOS_API_HOST is set but ARVADOS_API_TOKEN is not");
      const api = client(
        host,
        token,
        truthy(io.env["ARVADOS_API_HOST_INSECURE"]),
        "ARVADOS_API_HOST",
      );
      return {
        api,
        tokenSource: "ARVADOS_API_TOKEN",
        dispatchers: [],
        managementTokenSource: "",
        close: () => api.close(),
      };
    }
  }
  return targetFromConfig(configPath ?? DEFAULT_CONFIG, io);
}

async function targetFromConfig(path: string, io: CliIo): Promise<Target> {
  const result = await loadConfig({ path, readStdin: io.readStdin });
  if (!result.ok) {
    const [first, ...more] = result.errors;
    const rest =
      more.length === 0
        ? ""
        : ` (and ${more.length} more problem${more.length === 1 ? "" : "s"}: see dispatch-cloud config-check)`;
    throw new ClientError(`${first?.text ?? `${path}: unusable config`}${rest}`);
  }
  const { cluster, source } = result.config;
  const external = cluster.Services["Controller"]?.ExternalURL ?? "";
  if (external === "") {
    throw new ClientError(
      `${source}: Services.Controller.ExternalURL is not set: no API server to talk to`,
    );
  }
  if (cluster.SystemRootToken === "") {
    throw new ClientError(`${source}: SystemRootToken is not set`);
  }
  const insecure = cluster.TLS.Insecure;
  const api = client(
    external,
    cluster.SystemRootToken,
    insecure,
    `${source}: Services.Controller.ExternalURL`,
  );
  const urls =
    cluster.ManagementToken === ""
      ? []
      : Object.keys(cluster.Services["DispatchCloud"]?.InternalURLs ?? {});
  const dispatchers = urls.map((u) =>
    client(u, cluster.ManagementToken, insecure, `${source}: Services.DispatchCloud.InternalURLs`),
  );
  return {
    api,
    tokenSource: `the SystemRootToken in ${source}`,
    dispatchers,
    managementTokenSource: `the ManagementToken in ${source}`,
    async close() {
      await Promise.all([api.close(), ...dispatchers.map((d) => d.close())]);
    },
  };
}

const origin = (url: string): string => {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
};

/** Why a connection failed, from the innermost cause fetch gives ("fetch failed" says nothing). */
function networkDetail(err: ArvadosApiError): string {
  let inner: unknown = err;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const raw = (inner as { code?: unknown }).code;
  const code = typeof raw === "string" ? raw : "";
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER") {
    return "it does not speak TLS (for a plain-http server give http://HOST:PORT)";
  }
  const message = (inner instanceof Error ? inner.message : err.message).replace(/\s*\n\s*/g, " ");
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return `${message} (ARVADOS_API_HOST_INSECURE=1, or TLS.Insecure in the config, accepts any certificate)`;
  }
  return message;
}

/**
 * One line saying what went wrong with a request and what to check. `tokenSource` names where
 * the token came from, for a refused token.
 */
export function explainApiError(err: unknown, tokenSource: string): string {
  if (!(err instanceof ArvadosApiError)) return err instanceof Error ? err.message : String(err);
  const where = origin(err.url);
  const path = err.url.slice(where.length) || "/";
  if (err.kind === "network") return `cannot reach ${where}: ${networkDetail(err)}`;
  if (err.kind === "timeout") {
    return `${where} did not answer ${err.method} ${path} within ${CLIENT_TIMEOUT_MS / 1000}s`;
  }
  if (err.kind === "aborted") return "interrupted";
  const status = err.statusLine ?? String(err.status);
  if (err.kind === "decode") {
    return `${where} answered ${err.method} ${path} with ${status} that is not JSON: is it an Arvados API server?`;
  }
  const errors = err.errors.length > 0 ? `: ${err.errors.join("; ")}` : "";
  if (err.status === 401 || err.status === 403) {
    return `${where} refused the token (${status}${errors}): check ${tokenSource}`;
  }
  return `${err.method} ${where}${path}: ${status}${errors}`;
}
