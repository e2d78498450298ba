import http from "node:http";
import https from "node:https";

/** One HTTP call the simulated crunch-run makes to the Arvados API. */
export interface ApiCall {
  readonly method: "PUT";
  readonly url: string;
  readonly token: string;
  readonly body: unknown;
  /** ARVADOS_API_HOST_INSECURE was set: skip TLS verification. */
  readonly insecure: boolean;
}

export type ApiRequester = (
  call: ApiCall,
  signal?: AbortSignal,
) => Promise<{ status: number; body: string }>;

/**
 * The default requester: node:http(s), so that ARVADOS_API_HOST_INSECURE can turn TLS
 * verification off for this request only (global fetch has no per-request switch).
 */
export const nodeApiRequester: ApiRequester = (call, signal) =>
  new Promise((resolve, reject) => {
    const url = new URL(call.url);
    const payload = JSON.stringify(call.body);
    const options: https.RequestOptions = {
      method: call.method,
      headers: {
        authorization: `Bearer ${call.token}`,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(payload),
      },
      ...(signal === undefined ? {} : { signal }),
    };
    if (url.protocol === "https:") options.rejectUnauthorized = !call.insecure;
    const req = (url.protocol === "https:" ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
