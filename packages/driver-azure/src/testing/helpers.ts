import type { AccessToken, TokenCredential } from "@azure/identity";
import type { Logger } from "@dispatch-cloud/arvados-types";

/** A credential for the fake ARM server; the driver never sends it over plain http anyway. */
export const fakeCredential: TokenCredential = {
  getToken: (): Promise<AccessToken> =>
    Promise.resolve({ token: "fake-token", expiresOnTimestamp: Date.now() + 3_600_000 }),
};

export interface LogLine {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

/** A Logger that appends every line (with its child fields) to `lines`. */
export function recordingLogger(lines: LogLine[], base: Record<string, unknown> = {}): Logger {
  const at =
    (level: LogLine["level"]) =>
    (fields: Record<string, unknown>, msg: string): void => {
      lines.push({ level, fields: { ...base, ...fields }, msg });
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (fields) => recordingLogger(lines, { ...base, ...fields }),
  };
}
