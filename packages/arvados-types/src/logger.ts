/**
 * Structured logging as every library in this project takes it. Apps back it with winston, JSON
 * lines, using Arvados's field names (`ContainerUUID`, `Instance`, `InstanceType`, `State`,
 * `error`) so existing log queries keep working.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child(fields: Record<string, unknown>): Logger;
}

/** A Logger that drops everything: for callers that have nowhere to log, and for tests. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
