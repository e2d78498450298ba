/** Values a request parameter may take before encoding. */
export type ParamValue = string | number | boolean | null | undefined | readonly unknown[] | object;
export type Params = Readonly<Record<string, ParamValue>>;

/**
 * Encodes parameters the way Arvados clients do: one form value per top-level parameter;
 * strings verbatim, numbers in decimal, `true` as "true", `false`/null/undefined omitted,
 * arrays and objects as JSON.
 */
export function encodeParams(params: Params): URLSearchParams {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "string") out.append(key, value);
    else if (typeof value === "number") out.append(key, numberToString(value));
    else if (value === true) out.append(key, "true");
    else out.append(key, JSON.stringify(value));
  }
  return out;
}

function numberToString(n: number): string {
  // Avoid exponent notation for large integers (priorities are ~2^59).
  return Number.isInteger(n) ? BigInt(n).toString() : String(n);
}

/** Queries at or above this length go as POST with `X-Http-Method-Override: GET`. */
export const MAX_GET_QUERY_LENGTH = 1000;
