/*
 * The part of the Compute API's list `filter` language the fake understands: comparisons
 * `FIELD = VALUE` / `FIELD != VALUE` on `name`, `status` and `labels.KEY`, values bare or in
 * double quotes, joined by AND or spaces, in parentheses or not. Anything else is refused, as
 * the real API refuses what it does not understand, so a driver bug shows.
 */

export type Predicate = (instance: {
  name?: unknown;
  status?: unknown;
  labels?: Record<string, string> | undefined;
}) => boolean;

const TOKEN_RE = /\s*(\(|\)|!=|=|"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.*-]+)/y;

export function parseFilter(text: string): Predicate {
  const tokens: string[] = [];
  let pos = 0;
  TOKEN_RE.lastIndex = 0;
  for (let m = TOKEN_RE.exec(text); m !== null; m = TOKEN_RE.exec(text)) {
    tokens.push(m[1]!);
    pos = TOKEN_RE.lastIndex;
  }
  const rest = text.slice(pos).trim();
  if (rest !== "") throw new Error(`cannot parse filter at ${rest}`);
  let i = 0;
  const expr = (): Predicate => {
    const terms: Predicate[] = [term()];
    while (i < tokens.length && tokens[i] !== ")") {
      if (tokens[i] === "AND") i++;
      terms.push(term());
    }
    return (x) => terms.every((t) => t(x));
  };
  const term = (): Predicate => {
    if (tokens[i] === "(") {
      i++;
      const inner = expr();
      if (tokens[i++] !== ")") throw new Error("unbalanced parentheses in filter");
      return inner;
    }
    const field = tokens[i++];
    const op = tokens[i++];
    const raw = tokens[i++];
    if (field === undefined || (op !== "=" && op !== "!=") || raw === undefined) {
      throw new Error(`filter term must be FIELD = VALUE or FIELD != VALUE`);
    }
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    const get = fieldGetter(field);
    return op === "=" ? (x) => get(x) === value : (x) => get(x) !== value;
  };
  const p = expr();
  if (i !== tokens.length) throw new Error(`unexpected ${tokens[i]} in filter`);
  return p;
}

function fieldGetter(field: string): (x: Parameters<Predicate>[0]) => unknown {
  if (field === "name" || field === "status") return (x) => x[field];
  const label = /^labels\.([a-z][a-z0-9_-]*)$/.exec(field);
  if (label !== null) return (x) => x.labels?.[label[1]!];
  throw new Error(`the fake cannot filter on ${field}`);
}
