import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";

/**
 * `-pprof ADDR`: Arvados serves Go's profiler there. The Node equivalents, over plain HTTP
 * without authentication, as Go's (so bind it to localhost):
 *
 * - `/debug/pprof/profile?seconds=N`: a CPU profile of the next N seconds (default 30), as a
 *   `.cpuprofile` (Chrome DevTools, `speedscope`, VS Code);
 * - `/debug/pprof/heap`: the sampling heap profile since start-up, allocation sites and
 *   sizes, as a `.heapprofile` — like Go's heap profile, which also samples allocations.
 *
 * No full heap snapshot: it would contain every string in memory, tokens and keys included.
 */
export interface Profiler {
  /** Where it listens, `host:port`. */
  readonly address: string;
  close(): Promise<void>;
}

/** Thrown for an ADDR that is not `[host]:port`. */
export class ProfilerAddressError extends Error {
  override readonly name = "ProfilerAddressError";
}

/** Go's `[host]:port`; an empty host means every interface, as with Go's net.Listen. */
export function parseProfilerAddress(addr: string): { host?: string; port: number } {
  const m = /^(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(addr);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535) {
    throw new ProfilerAddressError(
      `-pprof ${JSON.stringify(addr)}: want [host]:port, e.g. localhost:6060`,
    );
  }
  const host = (m[1] ?? "").replace(/^\[(.*)\]$/, "$1");
  return host === "" ? { port } : { host, port };
}

const MAX_SECONDS = 3600;

const INDEX = `/debug/pprof/

profile?seconds=N  CPU profile of the next N seconds (default 30), .cpuprofile JSON
heap               sampling heap profile (allocation sites and sizes), .heapprofile JSON

Open them in Chrome DevTools (Performance / Memory tabs), VS Code or speedscope.
A full heap snapshot is not offered: it would contain the tokens and keys in memory.
`;

export async function startProfiler(addr: string): Promise<Profiler> {
  const { host, port } = parseProfilerAddress(addr);
  const session = new Session();
  session.connect();
  // Sampling from the start, as Go records allocations from the start: the heap profile
  // then covers the whole life of the process. V8's default interval is 32 KiB.
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling");
  await session.post("Profiler.enable");
  let cpuBusy = false;

  const send = (res: ServerResponse, status: number, body: string, file?: string): void => {
    res.writeHead(status, {
      "Content-Type": file === undefined ? "text/plain; charset=utf-8" : "application/json",
      ...(file === undefined ? {} : { "Content-Disposition": `attachment; filename="${file}"` }),
    });
    res.end(body);
  };

  const cpuProfile = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const raw = url.searchParams.get("seconds") ?? "30";
    const seconds = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(seconds >= 1 && seconds <= MAX_SECONDS)) {
      send(
        res,
        400,
        `seconds: want a whole number from 1 to ${MAX_SECONDS}, got ${JSON.stringify(raw)}\n`,
      );
      return;
    }
    if (cpuBusy) {
      send(res, 409, "a CPU profile is already being taken\n");
      return;
    }
    cpuBusy = true;
    try {
      await session.post("Profiler.start");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        // A client that gives up ends the profile early.
        req.socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const { profile } = await session.post("Profiler.stop");
      send(res, 200, JSON.stringify(profile), "profile.cpuprofile");
    } finally {
      cpuBusy = false;
    }
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://pprof");
    if (req.method !== "GET") {
      send(res, 405, "only GET\n");
      return;
    }
    const reply = async (): Promise<void> => {
      switch (url.pathname) {
        case "/debug/pprof":
        case "/debug/pprof/":
          send(res, 200, INDEX);
          return;
        case "/debug/pprof/profile":
          await cpuProfile(req, res, url);
          return;
        case "/debug/pprof/heap": {
          const { profile } = await session.post("HeapProfiler.getSamplingProfile");
          send(res, 200, JSON.stringify(profile), "heap.heapprofile");
          return;
        }
        default:
          send(res, 404, "not found: see /debug/pprof/\n");
      }
    };
    reply().catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, `${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    session.disconnect();
    throw err;
  }
  const a = server.address() as AddressInfo;
  return {
    address: a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      session.disconnect();
    },
  };
}
