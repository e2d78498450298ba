/** One line a `recordingLogger` saw, with its child loggers' fields merged in. */
import type { Logger } from "@dispatch-cloud/arvados-types";
export interface LogEntry {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A Logger that appends every line to `out`, for tests that assert on what was logged. */
export function recordingLogger(out: LogEntry[], base: Record<string, unknown> = {}): Logger {
  const at =
    (level: LogEntry["level"]) =>
    (fields: Record<string, unknown>, msg: string): void => {
      out.push({ level, msg, fields: { ...base, ...fields } });
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (fields) => recordingLogger(out, { ...base, ...fields }),
  };
}
