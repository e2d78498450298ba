// JSON as the Go dispatcher writes it, for the documents operators and crunch-run compare
// byte for byte: Go structs serialise every field, zero values included, in declaration order,
// so encoders build objects key by key instead of passing records through.

/**
 * JSON as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped. Everything
 * else JSON.stringify already writes the same way.
 */
export function goJson(value: unknown, indent?: string): string {
  return JSON.stringify(value, null, indent)
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

/** Go's zero time, which Go prints for an unset `time.Time`. */
export const GO_ZERO_TIME = "0001-01-01T00:00:00Z";

/** RFC 3339 with nanosecond precision as Go prints it: UTC, trailing fractional zeros dropped. */
export function goTime(t: Date | number): string {
  const iso = (typeof t === "number" ? new Date(t) : t).toISOString(); // 2024-01-02T03:04:05.120Z
  return iso.replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac ? `.${frac}Z` : "Z"));
}

/** A document as Go's json.Encoder writes it: goJson, then a newline. */
export function goJsonLine(value: unknown): string {
  return `${goJson(value)}\n`;
}
