import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

/** One canned EC2 error answer. */
export interface Ec2Fault {
  /** The API action it answers, e.g. `RunInstances`. */
  readonly action: string;
  readonly code: string;
  readonly message: string;
  /** HTTP status (EC2 uses 503 for RequestLimitExceeded, 400 for most client errors). */
  readonly status?: number;
  /** Only requests whose form parameters satisfy this (e.g. a given subnet). */
  readonly when?: (params: URLSearchParams) => boolean;
  /** How many matching requests it answers (default 1); Infinity for all. */
  readonly times?: number;
}

/**
 * An HTTP proxy in front of moto that answers chosen EC2 requests with EC2 error responses, so
 * tests see throttling, quota and capacity errors come through the real SDK's parsing — errors
 * moto itself never produces. Everything else is forwarded unchanged.
 */
export interface FaultProxy {
  readonly endpoint: string;
  /** Queue a fault; faults are matched in the order added. */
  inject(fault: Ec2Fault): void;
  /** The Action of every request seen, in order (answered by a fault or forwarded). */
  readonly actions: string[];
  /** The form parameters of every request seen, in order. */
  readonly requests: URLSearchParams[];
  clear(): void;
  stop(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const faults: { fault: Ec2Fault; left: number }[] = [];
  const actions: string[] = [];
  const requests: URLSearchParams[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const params = new URLSearchParams(body.toString("utf8"));
    const action = params.get("Action") ?? "";
    actions.push(action);
    requests.push(params);
    const hit = faults.find(
      (f) => f.left > 0 && f.fault.action === action && (f.fault.when?.(params) ?? true),
    );
    if (hit !== undefined) {
      hit.left--;
      const { code, message, status = 400 } = hit.fault;
      res.writeHead(status, { "content-type": "text/xml;charset=UTF-8" });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${xmlEscape(code)}</Code>` +
          `<Message>${xmlEscape(message)}</Message></Error></Errors>` +
          `<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>`,
      );
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const out = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host, "content-length": String(body.length) },
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          up.on("end", resolve);
          up.on("error", reject);
        },
      );
      out.on("error", reject);
      out.end(body);
    });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject: (fault) => faults.push({ fault, left: fault.times ?? 1 }),
    actions,
    requests,
    clear() {
      faults.length = 0;
      actions.length = 0;
      requests.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
