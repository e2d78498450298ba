import http from "node:http";
import type { AddressInfo } from "node:net";

/** One container update that went through the proxy, as the API answered it. */
export interface RecordedUpdate {
  readonly uuid: string;
  /** The state the update set, if it set one. */
  readonly state: string | undefined;
  /** The API's HTTP status for it. */
  readonly status: number;
  /** When the answer came back (ms since the epoch). */
  readonly at: number;
}

export interface RecordingProxy {
  /** What a dispatcher's config names as the controller (and crunch-run then talks to). */
  readonly url: string;
  /** Every `PUT /arvados/v1/containers/<uuid>` forwarded, in order. */
  readonly updates: RecordedUpdate[];
  stop(): Promise<void>;
}

/**
 * The `state` a container update sets, from a JSON body (the stub's simulated crunch-run) or a
 * form-encoded one with a JSON `container` parameter (the Arvados client, as crunch-run uses it).
 */
function updatedState(body: Buffer, contentType: string | undefined): string | undefined {
  try {
    const container: unknown = contentType?.startsWith("application/x-www-form-urlencoded")
      ? JSON.parse(new URLSearchParams(body.toString()).get("container") ?? "null")
      : (JSON.parse(body.toString()) as { container?: unknown }).container;
    const state = (container as { state?: unknown } | null)?.state;
    return typeof state === "string" ? state : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An HTTP proxy in front of the container API (`apiUrl`) that records every container update it
 * forwards, so a test can tell how often a container was set Running by whoever runs it.
 */
export async function startRecordingProxy(apiUrl: string): Promise<RecordingProxy> {
  const target = new URL(apiUrl);
  const updates: RecordedUpdate[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const fwd = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
        },
        (up) => {
          const m = /^\/arvados\/v1\/containers\/([a-z0-9-]+)(\?|$)/.exec(req.url ?? "");
          if (req.method === "PUT" && m?.[1] !== undefined) {
            updates.push({
              uuid: m[1],
              state: updatedState(body, req.headers["content-type"]),
              status: up.statusCode ?? 0,
              at: Date.now(),
            });
          }
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      fwd.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      fwd.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    updates,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
