/**
 * A float64 written the way Go's `%v` writes it: the shortest decimal that reads back as the same
 * number, in exponent form (`1e-05`, `1.5e+06`) only when the decimal exponent is below -4 or at
 * least 6. Arvados sends the spot MaxPrice in this form, so we do too.
 */
export function formatGoFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  // toExponential() without an argument gives the shortest round-tripping digits.
  const [mantissa, expText] = value.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? "-" : "+";
    const digits = String(Math.abs(exp)).padStart(2, "0");
    return `${mantissa}e${sign}${digits}`;
  }
  // For these exponents JavaScript's own shortest form is already plain decimal.
  return String(value);
}
