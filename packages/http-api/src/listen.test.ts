import http from "node:http";
import net from "node:net";
import express from "express";
import { describe, expect, it } from "vitest";
import { listen } from "./listen.js";

/** An app whose /slow requests wait until the test releases them. */
function slowApp() {
  let release = (): void => undefined;
  const released = new Promise<void>((r) => (release = r));
  let arrived = (): void => undefined;
  const arrival = new Promise<void>((r) => (arrived = r));
  const app = express();
  app.get("/slow", (_req, res) => {
    arrived();
    void released.then(() => res.end("done"));
  });
  app.get("/fast", (_req, res) => res.end("fast"));
  return { app, release, arrival };
}

function get(port: number, path: string, agent?: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, ...(agent ? { agent } : {}) }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve(body));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

describe("close", () => {
  it("closes a connection that sent half a request at once, not after the grace period", async () => {
    const srv = await listen(slowApp().app, "127.0.0.1", 0);
    const client = net.connect(srv.address.port, "127.0.0.1");
    client.on("error", () => undefined); // the server resets it
    const accepted = new Promise<void>((r) => srv.server.once("connection", () => r()));
    await new Promise<void>((r) => client.once("connect", () => r()));
    client.write("GET /fast HTTP/1.1\r\nHost: x\r\n"); // the blank line never comes
    await accepted;
    const clientClosed = new Promise<void>((r) => client.once("close", () => r()));
    const t0 = Date.now();
    await srv.close(30_000);
    await clientClosed;
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("closes idle keep-alive connections at once", async () => {
    const srv = await listen(slowApp().app, "127.0.0.1", 0);
    const agent = new http.Agent({ keepAlive: true });
    expect(await get(srv.address.port, "/fast", agent)).toBe("fast");
    const t0 = Date.now();
    await srv.close(30_000);
    expect(Date.now() - t0).toBeLessThan(2000);
    agent.destroy();
  });

  it("lets a request in progress finish within the grace period", async () => {
    const { app, release, arrival } = slowApp();
    const srv = await listen(app, "127.0.0.1", 0);
    const body = get(srv.address.port, "/slow", new http.Agent({ keepAlive: true }));
    await arrival;
    const closed = srv.close(30_000);
    release();
    expect(await body).toBe("done");
    await closed;
  });

  it("cuts a request that outlasts the grace period", async () => {
    const { app, arrival } = slowApp();
    const srv = await listen(app, "127.0.0.1", 0);
    const body = get(srv.address.port, "/slow");
    await arrival;
    await srv.close(50);
    await expect(body).rejects.toThrow(/socket hang up|ECONNRESET/);
  });
});
