/**
 * Why a request failed:
 * - `http`: the server answered with a non-2xx status (`status`, `statusLine`, `errors` set);
 * - `timeout`: no complete answer within the client's request timeout;
 * - `aborted`: the caller's AbortSignal fired;
 * - `network`: connection refused/reset, TLS failure, DNS, ...;
 * - `decode`: a 2xx answer whose body is not the JSON we expected.
 */
export type ArvadosErrorKind = "http" | "timeout" | "aborted" | "network" | "decode";

export interface ArvadosErrorInit {
  kind: ArvadosErrorKind;
  method: string;
  url: string;
  status?: number | null;
  statusLine?: string | null;
  errors?: string[];
  detail?: string;
  cause?: unknown;
}

/**
 * The one error family of this package. The message follows Arvados's Go client:
 * `request failed: <url>: <status line>: <errors joined by "; ">`, so log queries keep working.
 */
export class ArvadosApiError extends Error {
  override readonly name = "ArvadosApiError";
  readonly kind: ArvadosErrorKind;
  readonly method: string;
  readonly url: string;
  /** HTTP status, or null when there was no HTTP answer. */
  readonly status: number | null;
  /** e.g. `422 Unprocessable Entity`; null without an HTTP answer. */
  readonly statusLine: string | null;
  /** The server's `errors` array (empty if the body had none). */
  readonly errors: string[];

  constructor(init: ArvadosErrorInit) {
    const status = init.status ?? null;
    const statusLine = init.statusLine ?? null;
    const errors = init.errors ?? [];
    let message = `request failed: ${init.url}: `;
    if (init.kind === "http") {
      message += statusLine ?? String(status);
      if (errors.length > 0) message += `: ${errors.join("; ")}`;
    } else {
      message += init.detail ?? init.kind;
    }
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    this.method = init.method;
    this.url = init.url;
    this.status = status;
    this.statusLine = statusLine;
    this.errors = errors;
  }

  /** The controller said 503 (overloaded, or a lock request queued too long). */
  get isServiceUnavailable(): boolean {
    return this.status === 503;
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }
}

export const isArvadosApiError = (e: unknown): e is ArvadosApiError => e instanceof ArvadosApiError;
