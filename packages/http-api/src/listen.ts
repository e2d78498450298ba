import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Express } from "express";

export interface ListeningServer {
  readonly server: Server;
  /** host:port actually bound (port 0 picks a free one). */
  readonly address: AddressInfo;
  /** Stops accepting, ends idle keep-alive connections, and resolves when the server is closed. */
  close(): Promise<void>;
}

/** Starts `app` on host:port; rejects if the address cannot be bound. */
export function listen(app: Express, host: string, port: number): Promise<ListeningServer> {
  const server = createServer(app);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        server,
        address: server.address() as AddressInfo,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeIdleConnections();
          }),
      });
    });
  });
}
