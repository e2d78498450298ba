import type { InstancePrice } from "./types.js";

/**
 * Newest first, with each run of equal prices reduced to its oldest point and duplicate start
 * times removed: the form the run probe passes to crunch-run.
 */
export function normalizePriceHistory(history: readonly InstancePrice[]): InstancePrice[] {
  const sorted = [...history].sort((a, b) => b.StartTime.getTime() - a.StartTime.getTime());
  const out: InstancePrice[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const cur = sorted[i]!;
    const older = sorted[i + 1];
    if (
      older !== undefined &&
      (older.StartTime.getTime() === cur.StartTime.getTime() || older.Price === cur.Price)
    ) {
      continue;
    }
    out.push(cur);
  }
  return out;
}
