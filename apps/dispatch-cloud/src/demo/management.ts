/**
 * The few management API calls the demo makes (spec dispatcher-core §4.2), over plain fetch: the
 * same requests an operator makes with curl.
 */

/** The parts of an InstanceView the demo shows. */
export interface InstanceSummary {
  readonly instance: string;
  readonly worker_state: string;
  readonly idle_behavior: string;
  readonly running_container_uuids: readonly string[] | null;
}

/** The parts of a QueueEnt the demo shows. */
export interface QueueEntrySummary {
  readonly container: { readonly uuid: string; readonly state: string };
  readonly scheduling_status: string;
}

export class ManagementApiError extends Error {
  override readonly name = "ManagementApiError";
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

export class ManagementClient {
  readonly baseUrl: string;
  readonly #token: string;

  constructor(baseUrl: string, token: string) {
    this.baseUrl = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
    this.#token = token;
  }

  async #call(method: "GET" | "POST", path: string, signal?: AbortSignal): Promise<string> {
    const url = new URL(path, this.baseUrl);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.#token}` },
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : "";
      throw new ManagementApiError(
        `management API at ${this.baseUrl} did not answer ${method} /${path}${cause ? `: ${cause}` : ""}`,
        null,
      );
    }
    const body = await res.text();
    if (!res.ok) {
      throw new ManagementApiError(
        `management API: ${method} /${path}: ${res.status} ${body.trim()}`,
        res.status,
      );
    }
    return body;
  }

  async instances(signal?: AbortSignal): Promise<InstanceSummary[]> {
    const body = JSON.parse(await this.#call("GET", "arvados/v1/dispatch/instances", signal)) as {
      items: InstanceSummary[] | null;
    };
    return body.items ?? [];
  }

  async containers(signal?: AbortSignal): Promise<QueueEntrySummary[]> {
    const body = JSON.parse(await this.#call("GET", "arvados/v1/dispatch/containers", signal)) as {
      items: QueueEntrySummary[] | null;
    };
    return body.items ?? [];
  }

  /** One attempt to stop the container's crunch-run (SIGTERM); it then ends Cancelled. */
  async kill(containerUuid: string, reason: string, signal?: AbortSignal): Promise<void> {
    const q = new URLSearchParams({ container_uuid: containerUuid, reason });
    await this.#call("POST", `arvados/v1/dispatch/containers/kill?${q.toString()}`, signal);
  }
}
