import type { Logger } from "@dispatch-cloud/arvados-types";
import winston from "winston";

export type LogFormat = "json" | "text";

export interface LoggerOptions {
  /** `SystemLogs.LogLevel`: debug, info, warn/warning, error (anything else: info). */
  readonly level: string;
  /** `SystemLogs.Format`: json (default) or text. */
  readonly format: LogFormat;
  readonly stream: NodeJS.WritableStream;
  /**
   * Strings that must never reach the log (tokens, key text): replaced by `[REDACTED]` wherever
   * they appear in a message or a string field. A last line of defence; callers still avoid
   * logging secrets at all.
   */
  readonly secrets?: readonly string[];
}

const REDACTED = "[REDACTED]";

/** Maps `SystemLogs.Format` to ours: Arvados accepts `json` and `text`, json being the default. */
export function logFormat(configured: string): LogFormat {
  return configured.toLowerCase() === "text" ? "text" : "json";
}

function scrubber(secrets: readonly string[]): (s: string) => string {
  // Very short strings would redact ordinary words; config validation keeps tokens long.
  const list = secrets.filter((s) => s.length >= 8);
  if (list.length === 0) return (s) => s;
  return (s) => {
    let out = s;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  };
}

/** Error values become their message: a log line carries text, never a stack. */
function plain(
  fields: Record<string, unknown>,
  scrub: (s: string) => string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    const value = v instanceof Error ? v.message : v;
    out[k] = typeof value === "string" ? scrub(value) : value;
  }
  return out;
}

class WinstonLogger implements Logger {
  constructor(
    private readonly w: winston.Logger,
    private readonly scrub: (s: string) => string,
  ) {}
  debug(fields: Record<string, unknown>, message: string): void {
    this.write("debug", fields, message);
  }
  info(fields: Record<string, unknown>, message: string): void {
    this.write("info", fields, message);
  }
  warn(fields: Record<string, unknown>, message: string): void {
    this.write("warn", fields, message);
  }
  error(fields: Record<string, unknown>, message: string): void {
    this.write("error", fields, message);
  }
  /** Probe chatter at debug is most of what a busy pool logs: skip it before any work. */
  private write(level: string, fields: Record<string, unknown>, message: string): void {
    if (!this.w.isLevelEnabled(level)) return;
    this.w.log(level, this.scrub(message), plain(fields, this.scrub));
  }
  child(fields: Record<string, unknown>): Logger {
    return new WinstonLogger(this.w.child(plain(fields, this.scrub)), this.scrub);
  }
}

/**
 * JSON lines as Arvados services write them (`SystemLogs.Format: json`): `time`, `level`, `msg`,
 * `PID`, then the fields (`ContainerUUID`, `Instance`, `InstanceType`, `State`, `error`, …), so
 * existing log queries keep working. `text` is for humans at a terminal.
 */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level.toLowerCase() === "warning" ? "warn" : options.level.toLowerCase();
  const json = winston.format.printf((info) => {
    const { level: lvl, message, timestamp: _t, ...rest } = info;
    return JSON.stringify({
      time: new Date().toISOString(),
      level: lvl === "warn" ? "warning" : lvl,
      msg: message,
      PID: process.pid,
      ...rest,
    });
  });
  const text = winston.format.printf((info) => {
    const { level: lvl, message, ...rest } = info;
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(" ");
    return `${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} ${String(message)}${fields ? ` ${fields}` : ""}`;
  });
  const w = winston.createLogger({
    level: ["debug", "info", "warn", "error"].includes(level) ? level : "info",
    format: options.format === "json" ? json : text,
    transports: [new winston.transports.Stream({ stream: options.stream })],
  });
  return new WinstonLogger(w, scrubber(options.secrets ?? []));
}
