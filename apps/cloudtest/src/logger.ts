import type { Logger } from "@dispatch-cloud/arvados-types";

/** Where the text logger writes, and the values it must never write. */
export interface TextLoggerOptions {
  readonly write: (line: string) => void;
  readonly now: () => number;
  /** Also write debug lines (default: info and above, as Arvados's cloudtest logs). */
  readonly debug?: boolean;
  /** Values blanked out of every line, whatever field or message they turn up in. */
  readonly secrets?: ReadonlySet<string>;
}

const REDACTED = "[redacted]";

function formatValue(v: unknown): string {
  let s: string;
  if (v instanceof Error) s = v.message;
  else if (typeof v === "string") s = v;
  else if (v instanceof Date) s = v.toISOString();
  else if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined)
    s = String(v);
  else s = JSON.stringify(v);
  return /^[A-Za-z0-9_.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * A logger writing logrus-style text lines (`time=… level=info msg="…" Key=value`), the format
 * Arvados's cloudtest logs in, so operators' greps keep working.
 */
export function textLogger(
  options: TextLoggerOptions,
  bound: Record<string, unknown> = {},
): Logger {
  const emit =
    (level: "debug" | "info" | "warn" | "error") =>
    (fields: Record<string, unknown>, msg: string): void => {
      if (level === "debug" && !options.debug) return;
      const all = { ...bound, ...fields };
      let line = `time=${formatValue(new Date(options.now()).toISOString())} level=${
        level === "warn" ? "warning" : level
      } msg=${formatValue(msg)}`;
      for (const key of Object.keys(all).sort()) line += ` ${key}=${formatValue(all[key])}`;
      for (const secret of options.secrets ?? []) {
        if (secret !== "") line = line.split(secret).join(REDACTED);
      }
      options.write(`${line}\n`);
    };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    child: (fields) => textLogger(options, { ...bound, ...fields }),
  };
}
