import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  NOT_ENABLED,
  acquireInstanceLock,
  chooseListenUrl,
  deriveInstanceSetId,
  runnerApiHost,
} from "./index.js";

describe("deriveInstanceSetId", () => {
  it("uses the token UUID of a v2 token, else the MD5 hex of the token", () => {
    expect(deriveInstanceSetId("v2/zzzzz-gj3su-012345678901234/secret")).toBe(
      "zzzzz-gj3su-012345678901234",
    );
    const md5 = createHash("md5").update("abcdefgh12345678").digest("hex");
    expect(deriveInstanceSetId("abcdefgh12345678")).toBe(md5);
  });
});

describe("runnerApiHost", () => {
  it("sends host:port for https (as Arvados) and the whole URL for http", () => {
    expect(runnerApiHost(new URL("https://zzzzz.example.com/"))).toBe("zzzzz.example.com");
    expect(runnerApiHost(new URL("http://127.0.0.1:8000/"))).toBe("http://127.0.0.1:8000");
  });
});

describe("chooseListenUrl", () => {
  const urls = {
    "http://10.9.9.9:9006/": { ListenURL: "", Rendezvous: "" },
    "http://localhost:9006/": { ListenURL: "http://0.0.0.0:9007/", Rendezvous: "" },
  };
  const bindable = (ok: string[]) => (u: URL) => Promise.resolve(ok.includes(u.href));

  it("takes the first entry this host can bind, binding its ListenURL", async () => {
    const r = await chooseListenUrl(urls, undefined, bindable(["http://0.0.0.0:9007/"]));
    expect(r.ok && [r.choice.url.href, r.choice.listen.href]).toEqual([
      "http://localhost:9006/",
      "http://0.0.0.0:9007/",
    ]);
  });

  it("takes the entry ARVADOS_SERVICE_INTERNAL_URL names, without trying to bind", async () => {
    const r = await chooseListenUrl(urls, "http://10.9.9.9:9006", bindable([]));
    expect(r.ok && r.choice.url.href).toBe("http://10.9.9.9:9006/");
  });

  it("refuses when nothing fits", async () => {
    expect(await chooseListenUrl(urls, undefined, bindable([]))).toEqual({
      ok: false,
      error: NOT_ENABLED,
    });
    const r = await chooseListenUrl(urls, "http://elsewhere:1/", bindable([]));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toContain(NOT_ENABLED);
  });
});

describe("acquireInstanceLock", () => {
  it("is exclusive per InstanceSetID, names the holder, and is free again after release", async () => {
    const id = `test-${process.pid}-${Date.now()}`;
    const a = await acquireInstanceLock(id);
    expect(a.ok).toBe(true);
    const b = await acquireInstanceLock(id);
    expect(b).toEqual({
      ok: false,
      error: `another dispatcher (process ${process.pid}) already runs for InstanceSetID ${id} on this host (lock arvados-dispatch-cloud-${id} is held)`,
    });
    const other = await acquireInstanceLock(`${id}-other`);
    expect(other.ok).toBe(true);
    if (a.ok) await a.lock.release();
    if (other.ok) await other.lock.release();
    const c = await acquireInstanceLock(id);
    expect(c.ok).toBe(true);
    if (c.ok) await c.lock.release();
  });
});
