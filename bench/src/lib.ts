// Shared plumbing for the benchmark programs: progress lines, a stop signal wired to
// SIGINT/SIGTERM, statistics, and the JSON result that scripts/bench.mjs collects.
import { setMaxListeners } from "node:events";
import { writeFileSync } from "node:fs";
import type { Logger } from "@dispatch-cloud/arvados-types";

/** One row of docs/benchmarks.md. */
export interface Row {
  readonly benchmark: string;
  readonly result: string;
  /** The DESIGN.md target, or "" when the row is informational. */
  readonly target: string;
  /** null: no target, or not measured. */
  readonly met: boolean | null;
  /** How it was measured, or why it was not measured. */
  readonly note?: string;
  /** When the target may be missed: what the miss comes from (written under "Missed targets"). */
  readonly why?: string;
}

export interface BenchResult {
  readonly name: string;
  readonly rows: readonly Row[];
  /** Raw numbers, kept in the JSON for anyone who wants more than the table. */
  readonly data: Record<string, unknown>;
  /** Set when the run was interrupted: rows are partial. */
  readonly interrupted?: boolean;
}

const started = Date.now();

/** A progress line on stderr, prefixed with the benchmark name and seconds since start. */
export function progress(name: string, msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${name} ${s}s] ${msg}\n`);
}

/**
 * Aborted on the first SIGINT/SIGTERM so the benchmark can wind down and report what it has;
 * a second signal exits at once.
 */
export function stopSignal(name: string): AbortSignal {
  const ctl = new AbortController();
  // Benchmarks hand this signal to many concurrent calls.
  setMaxListeners(100_000, ctl.signal);
  const onSignal = (sig: NodeJS.Signals) => {
    if (ctl.signal.aborted) process.exit(130);
    progress(name, `${sig}: stopping`);
    ctl.abort(new Error(`interrupted by ${sig}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return ctl.signal;
}

/** Writes the result where scripts/bench.mjs asked (BENCH_OUT), else prints it on stdout. */
export function emit(result: BenchResult): void {
  const text = JSON.stringify(result, null, 2);
  const out = process.env["BENCH_OUT"];
  if (out) writeFileSync(out, text + "\n");
  else process.stdout.write(text + "\n");
}

/** Nearest-rank percentile of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

export function ms(n: number, digits = 1): string {
  return `${n.toFixed(digits)} ms`;
}

/** Nanoseconds elapsed since `t0` (from process.hrtime.bigint()), as milliseconds. */
export function since(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** The largest number of timestamps in any half-open window [t, t + windowMs). */
export function maxInWindow(times: readonly number[], windowMs: number): number {
  const s = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < s.length; hi++) {
    while (s[hi]! - s[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** A deterministic PRNG (mulberry32), so every run measures the same workload. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sleep(msec: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, msec);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export const GiB = 2 ** 30;

/** Sizes in MiB with one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Counts warnings and errors, so a benchmark can say whether the system complained. */
export function countingLogger(): Logger & { warnings: number; errors: number; last: string[] } {
  const l = {
    warnings: 0,
    errors: 0,
    last: [] as string[],
    debug() {},
    info() {},
    warn(_f: Record<string, unknown>, m: string) {
      l.warnings++;
      if (l.last.length < 5) l.last.push(`warn: ${m}`);
    },
    error(f: Record<string, unknown>, m: string) {
      l.errors++;
      if (l.last.length < 5) l.last.push(`error: ${m} ${JSON.stringify(f)}`);
    },
    child: () => l,
  };
  return l;
}
