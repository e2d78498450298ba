import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Express } from "express";

/** How long `close()` lets requests in progress finish before cutting their connections. */
export const DEFAULT_CLOSE_GRACE_MS = 1000;

export interface ListeningServer {
  readonly server: Server;
  /** host:port actually bound (port 0 picks a free one). */
  readonly address: AddressInfo;
  /**
   * Stops accepting and resolves once every connection is gone, within about `graceMs`
   * whatever clients do: idle keep-alive connections and connections that have not finished
   * sending a request are closed at once; requests being handled get `graceMs` to finish, then
   * their connections are cut too.
   */
  close(graceMs?: number): Promise<void>;
}

/** Starts `app` on host:port; rejects if the address cannot be bound. */
export function listen(app: Express, host: string, port: number): Promise<ListeningServer> {
  const server = createServer(app);
  // Requests being handled, per connection. A connection with none is idle, or still sending
  // headers (Node's closeIdleConnections leaves those open, so a client that sends half a
  // request would hold a stop until the headers timeout).
  const inFlight = new Map<Socket, number>();
  let closing = false;
  server.on("connection", (socket: Socket) => {
    inFlight.set(socket, 0);
    socket.once("close", () => inFlight.delete(socket));
  });
  server.on("request", (req, res) => {
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const n = (inFlight.get(socket) ?? 1) - 1;
      inFlight.set(socket, n);
      if (closing && n === 0) socket.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        server,
        address: server.address() as AddressInfo,
        close: (graceMs = DEFAULT_CLOSE_GRACE_MS) =>
          new Promise<void>((done, fail) => {
            closing = true;
            const cut = setTimeout(() => server.closeAllConnections(), graceMs);
            server.close((err) => {
              clearTimeout(cut);
              if (err) fail(err);
              else done();
            });
            for (const [socket, n] of inFlight) if (n === 0) socket.destroy();
          }),
      });
    });
  });
}
