/**
 * The two value formats Arvados config files use beyond plain YAML: Go durations and byte sizes.
 * Parsers return values, not throws, so the loader can collect every problem in one pass.
 */

export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

/** Milliseconds in one of each Go duration unit. */
const durationUnits: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // µ MICRO SIGN
  "\u03bcs": 1e-3, // μ GREEK SMALL LETTER MU
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.Duration is int64 nanoseconds. */
const maxDurationMs = 9_223_372_036_854.775;

/**
 * Parses a Go duration (`300ms`, `10s`, `1m30s`, `-1.5h`, `0`) to milliseconds, as Arvados's
 * config loader does: a YAML number is only accepted when it is 0 (Go rejects any other bare
 * number as having no unit).
 */
export function parseDuration(input: string | number): Parsed<number> {
  if (typeof input === "number") {
    if (input === 0) return ok(0);
    return fail(`missing unit in duration "${input}"`);
  }
  const s = input.trim();
  let rest = s;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest.startsWith("-")) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return ok(0);
  if (rest === "") return fail(`invalid duration "${s}"`);
  let total = 0;
  while (rest !== "") {
    const m = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = m?.[1] ?? "";
    const frac = m?.[2];
    if (whole === "" && (frac === undefined || frac === "")) return fail(`invalid duration "${s}"`);
    rest = rest.slice(m?.[0].length ?? 0);
    const unitMatch = /^[^\d.]+/.exec(rest);
    if (!unitMatch) return fail(`missing unit in duration "${s}"`);
    const unit = unitMatch[0];
    const scale = durationUnits[unit];
    if (scale === undefined) return fail(`unknown unit "${unit}" in duration "${s}"`);
    rest = rest.slice(unit.length);
    total += Number(`${whole === "" ? "0" : whole}.${frac ?? ""}0`) * scale;
    if (total > maxDurationMs) return fail(`invalid duration "${s}" (too large)`);
  }
  return ok(sign * total);
}

/** Nanoseconds per unit, for formatting. */
const NS_PER_MS = 1e6;

function trimFraction(intPart: bigint, frac: bigint, digits: number): string {
  if (frac === 0n) return intPart.toString();
  let f = frac.toString().padStart(digits, "0");
  f = f.replace(/0+$/, "");
  return `${intPart}.${f}`;
}

/**
 * Formats milliseconds the way Arvados writes a duration back: Go's time.Duration form with the
 * zero minutes/seconds trimmed (`1h`, `1h30m`, `1m`, `10s`, `1m30s`, `300ms`, `0s`).
 */
export function formatDuration(ms: number): string {
  const ns = BigInt(Math.round(ms * NS_PER_MS));
  if (ns === 0n) return "0s";
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  let out: string;
  if (abs < 1000n) out = `${abs}ns`;
  else if (abs < 1_000_000n) out = `${trimFraction(abs / 1000n, abs % 1000n, 3)}\u00b5s`;
  else if (abs < 1_000_000_000n) out = `${trimFraction(abs / 1_000_000n, abs % 1_000_000n, 6)}ms`;
  else {
    const h = abs / 3_600_000_000_000n;
    const m = (abs / 60_000_000_000n) % 60n;
    const secNs = abs % 60_000_000_000n;
    const sec = trimFraction(secNs / 1_000_000_000n, secNs % 1_000_000_000n, 9);
    out = h > 0n ? `${h}h${m}m${sec}s` : m > 0n ? `${m}m${sec}s` : `${sec}s`;
    // Arvados's Duration.String drops a trailing "0s" and then a trailing "0m".
    if (out.endsWith("m0s")) out = out.slice(0, -2);
    if (out.endsWith("h0m")) out = out.slice(0, -2);
  }
  return neg ? `-${out}` : out;
}

const byteUnits: Readonly<Record<string, number>> = {
  "": 1,
  K: 1e3,
  Ki: 2 ** 10,
  M: 1e6,
  Mi: 2 ** 20,
  G: 1e9,
  Gi: 2 ** 30,
  T: 1e12,
  Ti: 2 ** 40,
  P: 1e15,
  Pi: 2 ** 50,
  E: 1e18,
  Ei: 2 ** 60,
};

/** Go's ByteSize is an int64. */
const maxInt64 = 2 ** 63;
const jsonNumber = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * Parses a byte size as Arvados does: a YAML integer is bytes; a string is a number (integer,
 * decimal or exponent form), optional spaces, and an optional case-sensitive unit (`K`, `Ki`,
 * ... `E`, `Ei`, each with an optional `B`; `B` alone is bytes). Decimal units are powers of
 * 1000, `i` units powers of 1024; fractions are truncated to whole bytes.
 */
export function parseByteSize(input: string | number): Parsed<number> {
  if (typeof input === "number") {
    if (!Number.isInteger(input)) return fail(`invalid byte size "${input}" (not a whole number)`);
    if (Math.abs(input) >= maxInt64) return fail(`size "${input}" overflows int64`);
    return ok(input);
  }
  const s = input;
  let split = -1;
  for (let i = s.length - 1; i >= 0; i--) {
    if ("0123456789.+-eE".includes(s[i]!)) {
      split = i;
      break;
    }
  }
  if (split < 0) return fail(`invalid byte size "${s}"`);
  // An E that is not followed by an exponent means exa, as in "4E" or "4EiB".
  if (s[split] === "E") split--;
  const num = s.slice(0, split + 1).trim();
  if (!jsonNumber.test(num)) return fail(`invalid byte size "${s}"`);
  const rawUnit = s.slice(split + 1).trim();
  const unit = rawUnit.endsWith("B") ? rawUnit.slice(0, -1) : rawUnit;
  const mult = byteUnits[unit];
  if (mult === undefined) return fail(`invalid unit "${rawUnit}"`);
  if (rawUnit === "" && !/^-?\d+$/.test(num)) {
    return fail(`invalid byte size "${s}" (a size without a unit must be a whole number of bytes)`);
  }
  const value = Number(num) * mult;
  if (!Number.isFinite(value) || Math.abs(value) >= maxInt64) {
    return fail(`size "${s}" overflows int64`);
  }
  return ok(Math.trunc(value));
}
