/** An error's message, for log fields. */
export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A duration the way Go prints one (`1s`, `250ms`, `1m30s`), for familiar log lines. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h > 0 ? `${h}h` : ""}${h > 0 || m > 0 ? `${m}m` : ""}${Number(s.toFixed(3))}s`;
}
