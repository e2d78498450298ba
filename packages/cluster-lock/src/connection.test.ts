import { describe, expect, it } from "vitest";
import { checkConnection, clientConfig, connectionConfigured } from "./connection.js";

const P = "Clusters.zzzzz.PostgreSQL.Connection";

describe("checkConnection", () => {
  it("reads Arvados's keywords in any case, with lib/pq's default sslmode require", async () => {
    const r = checkConnection(
      { Host: "db.example", Port: 5433, User: "arvados", Password: "s3cret", DBName: "arvados" },
      P,
    );
    expect(r.errors).toEqual([]);
    expect(r.settings).toMatchObject({ host: "db.example", port: 5433, database: "arvados" });
    const c = await clientConfig(r.settings!, "app");
    expect(c.ssl).toEqual({ rejectUnauthorized: false });
    expect(c.application_name).toBe("app");
  });

  it.each([
    [{ port: "54x" }, `${P}.port: "54x" is not a TCP port (1-65535)`],
    [{ port: "70000" }, `${P}.port: "70000" is not a TCP port (1-65535)`],
    [
      { sslmode: "prefer" },
      `${P}.sslmode: unsupported sslmode "prefer"; use one of disable, require, verify-ca, verify-full (as Arvados's PostgreSQL client)`,
    ],
    [{ connect_timeout: "5s" }, `${P}.connect_timeout: "5s" is not a whole number of seconds`],
    [{ password: ["x"] }, `${P}.password: expected a string`],
  ])("%j is an error naming its key", (conn, error) => {
    const r = checkConnection(conn, P);
    expect(r.settings).toBeNull();
    expect(r.errors).toEqual([error]);
  });

  it("warns about keywords it cannot use and never shows the password", () => {
    const r = checkConnection({ password: "hunter2hunter2", keepalives_idle: "30" }, P);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^Clusters\.zzzzz\.PostgreSQL\.Connection\.keepalives_idle: not supported/,
    );
    expect(JSON.stringify(r.warnings)).not.toContain("hunter2");
  });

  it("counts as configured only when a keyword has a value (Arvados's defaults are all empty)", () => {
    expect(connectionConfigured({ Host: "", Port: "", User: "", Password: "", DBName: "" })).toBe(
      false,
    );
    expect(connectionConfigured({ Host: "localhost" })).toBe(true);
    expect(connectionConfigured(undefined)).toBe(false);
  });

  it("uses no TLS on a Unix socket, whatever sslmode says", async () => {
    const r = checkConnection({ host: "/var/run/postgresql", sslmode: "verify-full" }, P);
    expect((await clientConfig(r.settings!, "a")).ssl).toBe(false);
  });
});
