import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, logFormat, type LoggerOptions } from "./logger.js";

/** A logger writing into memory; `lines()` parses what it wrote so far. */
function capture(options: Partial<LoggerOptions> = {}) {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c.toString()));
  const logger = createLogger({ level: "info", format: "json", stream, ...options });
  const text = () => chunks.join("");
  const lines = () =>
    text()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, text };
}

describe("the daemon's logger", () => {
  it("writes Arvados-style JSON lines with the fields as given", () => {
    const { logger, lines } = capture();
    logger
      .child({ Instance: "i-123", InstanceType: "m5large" })
      .warn(
        { ContainerUUID: "zzzzz-dz642-000000000000001", error: new Error("boom") },
        "probe failed",
      );
    expect(lines()).toEqual([
      {
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        level: "warning",
        msg: "probe failed",
        PID: process.pid,
        Instance: "i-123",
        InstanceType: "m5large",
        ContainerUUID: "zzzzz-dz642-000000000000001",
        error: "boom",
      },
    ]);
  });

  it("drops lines below SystemLogs.LogLevel", () => {
    const { logger, lines } = capture({ level: "warning" });
    logger.debug({}, "probe chatter");
    logger.info({}, "state change");
    logger.error({}, "failed");
    expect(lines().map((l) => l["msg"])).toEqual(["failed"]);
  });

  it("never writes a secret, in the message or in a field", () => {
    const token = "abcdefghijklmnopqrstuvwxyz0123456789";
    const { logger, text } = capture({ secrets: [token] });
    logger.info({ error: `request failed: token ${token} rejected` }, `used ${token}`);
    expect(text()).not.toContain(token);
    expect(text()).toContain("[REDACTED]");
  });

  it("maps SystemLogs.Format to json unless text is asked for", () => {
    expect(logFormat("text")).toBe("text");
    expect(logFormat("json")).toBe("json");
    expect(logFormat("")).toBe("json");
  });
});
