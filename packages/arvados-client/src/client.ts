import { randomBytes } from "node:crypto";
import type { Container, ContainerField, Logger } from "@dispatch-cloud/arvados-types";
import { Agent } from "undici";
import { type Clock, systemClock } from "./clock.js";
import { encodeParams, MAX_GET_QUERY_LENGTH, type Params } from "./encode.js";
import { ArvadosApiError } from "./errors.js";
import { RequestLimiter } from "./limiter.js";
import type {
  ApiClientAuthorization,
  ContainerRequest,
  ContainerRequestCreate,
  ContainerRequestUpdate,
  ContainerUpdate,
  DispatchQueueEntry,
  ListParams,
  ListResult,
  LockResponse,
  Log,
  LogCreate,
} from "./types.js";

/** Default request timeout: generous, but a hung request cannot stall polling forever. */
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

export interface ArvadosClientOptions {
  /**
   * The controller: `host[:port]` (https is assumed) or a full URL such as
   * `Services.Controller.ExternalURL` (`https://zzzzz.example.com/`, `http://127.0.0.1:8000`).
   */
  apiHost: string;
  /** Sent as `Authorization: Bearer <token>`; never logged. */
  token: string;
  /** Accept any TLS certificate (`ARVADOS_API_HOST_INSECURE`). */
  insecure?: boolean;
  /** PEM root certificates to trust instead of the system's (crunch-run's `--ca-certs`). */
  caCerts?: string;
  /** Per-request timeout in ms (0 = none, as Arvados); default 5 minutes. */
  timeoutMs?: number;
  /** `API.MaxConcurrentRequests` of the cluster; the limiter never exceeds a quarter of it. */
  maxConcurrentRequests?: number;
  logger?: Logger;
  clock?: Clock;
}

/** Per-call options. */
export interface CallOptions {
  signal?: AbortSignal;
  /** Sent as `X-Request-Id`; generated (`req-` + 20 chars) when absent. */
  requestId?: string;
}

type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Full record, or the picked fields when `select` is given. */
type Selected<T, K extends string> = [K] extends [never] ? T : Pick<T, K & keyof T>;

/**
 * A typed client for the Arvados REST calls the dispatcher and crunch-run make. No call is
 * retried: callers see every 503 (and `lastServerError503()` records it) so they can back off.
 */
export class ArvadosClient {
  readonly baseUrl: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly limiter: RequestLimiter;
  private readonly agent: Agent | undefined;
  private last503: number | null = null;

  constructor(options: ArvadosClientOptions) {
    this.baseUrl = normaliseBaseUrl(options.apiHost);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    this.limiter = new RequestLimiter(
      this.clock,
      Math.floor((options.maxConcurrentRequests ?? 0) / 4),
    );
    this.agent = options.insecure
      ? new Agent({ connect: { rejectUnauthorized: false } })
      : options.caCerts !== undefined
        ? new Agent({ connect: { ca: options.caCerts } })
        : undefined;
  }

  /** When the last 503 answer arrived (ms since the epoch), or null if none yet. */
  lastServerError503(): number | null {
    return this.last503;
  }

  /** The adaptive concurrency limit and the number of requests in flight. */
  concurrency(): { limit: number; current: number } {
    const { limit, current } = this.limiter.snapshot();
    return { limit, current };
  }

  /** Releases the connection pool of the TLS settings above, if any. */
  async close(): Promise<void> {
    await this.agent?.close();
  }

  readonly containers = {
    list: <K extends ContainerField = never>(
      params: ListParams<K> = {},
      opts?: CallOptions,
    ): Promise<ListResult<Selected<Container, K>>> =>
      this.list("arvados/v1/containers", params, opts),

    get: <K extends ContainerField = never>(
      uuid: string,
      params: { select?: readonly K[] } = {},
      opts?: CallOptions,
    ): Promise<Selected<Container, K>> =>
      this.request("GET", `arvados/v1/containers/${enc(uuid)}`, { select: params.select }, opts),

    /** `select: ["uuid"]` keeps the answer small when the caller ignores it. */
    update: <K extends ContainerField = never>(
      uuid: string,
      attrs: ContainerUpdate,
      params: { select?: readonly K[] } = {},
      opts?: CallOptions,
    ): Promise<Selected<Container, K>> =>
      this.request(
        "PUT",
        `arvados/v1/containers/${enc(uuid)}`,
        { container: attrs, select: params.select },
        opts,
      ),

    lock: (uuid: string, opts?: CallOptions): Promise<LockResponse> =>
      this.request("POST", `arvados/v1/containers/${enc(uuid)}/lock`, {}, opts),

    unlock: (uuid: string, opts?: CallOptions): Promise<LockResponse> =>
      this.request("POST", `arvados/v1/containers/${enc(uuid)}/unlock`, {}, opts),
  };

  readonly apiClientAuthorizations = {
    /** The caller's own token record (its `uuid` is what lock sets as `locked_by_uuid`). */
    current: (opts?: CallOptions): Promise<ApiClientAuthorization> =>
      this.request("GET", "arvados/v1/api_client_authorizations/current", {}, opts),
  };

  readonly containerRequests = {
    create: (attrs: ContainerRequestCreate, opts?: CallOptions): Promise<ContainerRequest> =>
      this.request("POST", "arvados/v1/container_requests", { container_request: attrs }, opts),

    get: (uuid: string, opts?: CallOptions): Promise<ContainerRequest> =>
      this.request("GET", `arvados/v1/container_requests/${enc(uuid)}`, {}, opts),

    update: (
      uuid: string,
      attrs: ContainerRequestUpdate,
      opts?: CallOptions,
    ): Promise<ContainerRequest> =>
      this.request(
        "PUT",
        `arvados/v1/container_requests/${enc(uuid)}`,
        { container_request: attrs },
        opts,
      ),

    list: <K extends keyof ContainerRequest = never>(
      params: ListParams<K> = {},
      opts?: CallOptions,
    ): Promise<ListResult<Selected<ContainerRequest, K>>> =>
      this.list("arvados/v1/container_requests", params, opts),
  };

  readonly logs = {
    create: (attrs: LogCreate, opts?: CallOptions): Promise<Log> =>
      this.request("POST", "arvados/v1/logs", { log: attrs }, opts),

    list: <K extends keyof Log = never>(
      params: ListParams<K> = {},
      opts?: CallOptions,
    ): Promise<ListResult<Selected<Log, K>>> => this.list("arvados/v1/logs", params, opts),
  };

  /**
   * The dispatcher's management API, for a client made with one of
   * `Services.DispatchCloud.InternalURLs` as `apiHost` and the ManagementToken as `token`.
   */
  readonly dispatch = {
    /** The whole queue in scheduling order. */
    containers: async (opts?: CallOptions): Promise<DispatchQueueEntry[]> => {
      // `items` is null before the dispatcher's first scheduling pass.
      const res = await this.request<{ items: DispatchQueueEntry[] | null }>(
        "GET",
        "arvados/v1/dispatch/containers",
        {},
        opts,
      );
      return res.items ?? [];
    },

    /** One container's entry; 404 when this dispatcher does not have it queued or running. */
    container: (uuid: string, opts?: CallOptions): Promise<DispatchQueueEntry> =>
      this.request("GET", "arvados/v1/dispatch/container", { container_uuid: uuid }, opts),
  };

  private async list<T>(
    path: string,
    params: ListParams<string>,
    opts: CallOptions | undefined,
  ): Promise<ListResult<T>> {
    const res = await this.request<ListResult<T> | { items: null }>(
      "GET",
      path,
      {
        filters: params.filters,
        select: params.select,
        order: params.order,
        limit: params.limit,
        offset: params.offset,
        count: params.count,
      },
      opts,
    );
    // Arvados may answer `"items": null` for an empty page.
    return { ...res, items: res.items ?? [] };
  }

  /**
   * One API call with Arvados's wire conventions. Path is relative to the base URL
   * (`arvados/v1/...`). Throws ArvadosApiError on any failure; never retries.
   */
  async request<T>(
    method: HttpMethod,
    path: string,
    params: Params,
    opts: CallOptions = {},
  ): Promise<T> {
    let url = this.baseUrl + path.replace(/^\/+/, "");
    const encoded = encodeParams(params).toString();
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      "X-Request-Id": opts.requestId ?? newRequestId(),
      Accept: "application/json",
    };
    let wireMethod: string = method;
    let body: string | undefined;
    if (method === "GET") {
      if (encoded.length < MAX_GET_QUERY_LENGTH) {
        if (encoded !== "") url += `?${encoded}`;
      } else {
        wireMethod = "POST";
        headers["X-Http-Method-Override"] = "GET";
        headers["Content-Type"] = "application/x-www-form-urlencoded";
        body = encoded;
      }
    } else {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      body = encoded;
    }

    const fail = (init: Omit<ConstructorParameters<typeof ArvadosApiError>[0], "method" | "url">) =>
      new ArvadosApiError({ method, url: stripQuery(url), ...init });

    // One controller combines the caller's signal and our timeout.
    const ctl = new AbortController();
    let timedOut = false;
    const onCallerAbort = (): void => ctl.abort(opts.signal?.reason);
    if (opts.signal?.aborted) throw fail({ kind: "aborted", detail: "aborted by caller" });
    opts.signal?.addEventListener("abort", onCallerAbort, { once: true });
    const cancelTimer =
      this.timeoutMs > 0
        ? this.clock.setTimer(this.timeoutMs, () => {
            timedOut = true;
            ctl.abort(new Error("timeout"));
          })
        : () => {};
    const abortError = (cause?: unknown): ArvadosApiError =>
      timedOut
        ? fail({ kind: "timeout", detail: `no answer within ${this.timeoutMs}ms`, cause })
        : fail({ kind: "aborted", detail: "aborted by caller", cause });

    try {
      try {
        await this.limiter.acquire(ctl.signal);
      } catch (e) {
        throw abortError(e);
      }
      let status = 0;
      try {
        const init: Record<string, unknown> = { method: wireMethod, headers, signal: ctl.signal };
        if (body !== undefined) init["body"] = body;
        // Node's fetch accepts an undici dispatcher; the npm undici and the bundled one
        // declare distinct (compatible) types, hence the untyped init.
        if (this.agent) init["dispatcher"] = this.agent;
        let res: Response;
        try {
          res = await fetch(url, init);
        } catch (e) {
          if (ctl.signal.aborted) throw abortError(e);
          throw fail({ kind: "network", detail: describeNetworkError(e), cause: e });
        }
        status = res.status;
        let text: string;
        try {
          text = await res.text();
        } catch (e) {
          if (ctl.signal.aborted) throw abortError(e);
          throw fail({ kind: "network", detail: describeNetworkError(e), cause: e });
        }
        const statusLine =
          `${res.status} ${res.statusText || defaultStatusText(res.status)}`.trim();
        if (res.status < 200 || res.status >= 300) {
          if (res.status === 503) this.last503 = this.clock.now();
          throw fail({ kind: "http", status: res.status, statusLine, errors: parseErrors(text) });
        }
        try {
          return JSON.parse(text) as T;
        } catch (e) {
          throw fail({
            kind: "decode",
            status: res.status,
            statusLine,
            detail: `${statusLine}: response is not JSON`,
            cause: e,
          });
        }
      } finally {
        if (status !== 0) this.limiter.report(status);
        this.limiter.release();
      }
    } catch (e) {
      if (e instanceof ArvadosApiError) {
        this.logger?.debug(
          { method, url: stripQuery(url), error: e.message },
          "API request failed",
        );
      }
      throw e;
    } finally {
      cancelTimer();
      opts.signal?.removeEventListener("abort", onCallerAbort);
    }
  }
}

function normaliseBaseUrl(apiHost: string): string {
  const u = new URL(apiHost.includes("://") ? apiHost : `https://${apiHost}`);
  u.search = "";
  u.hash = "";
  let s = u.toString();
  if (!s.endsWith("/")) s += "/";
  return s;
}

const enc = (s: string): string => encodeURIComponent(s);

function stripQuery(url: string): string {
  const i = url.indexOf("?");
  return i < 0 ? url : url.slice(0, i);
}

function newRequestId(): string {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  let id = "req-";
  for (const b of randomBytes(20)) id += alphabet[b % alphabet.length];
  return id;
}

function parseErrors(text: string): string[] {
  try {
    const body = JSON.parse(text) as { errors?: unknown };
    if (Array.isArray(body.errors)) return body.errors.map(String);
  } catch {
    // Not JSON (e.g. a proxy's HTML 502/503 page): no errors array.
  }
  return [];
}

function describeNetworkError(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : "";
    return `${e.message}${cause}`;
  }
  return String(e);
}

function defaultStatusText(status: number): string {
  const known: Record<number, string> = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
  };
  return known[status] ?? "";
}
