import { badRequest, unprocessable } from "./errors.js";
import type { TableSpec } from "./schema.js";

/** Parsed `index` parameters. */
export interface ListQuery {
  where: string[];
  args: unknown[];
  orderBy: string[];
  select: string[] | undefined;
  limit: number;
  offset: number;
  count: "exact" | "none";
}

const OPERATORS = new Set([
  "=",
  "!=",
  "<>",
  "<",
  "<=",
  ">",
  ">=",
  "in",
  "not in",
  "like",
  "ilike",
  "is_a",
  "exists",
]);

/** Reads a parameter that may arrive JSON-encoded (form/query) or as JSON (JSON body). */
export function jsonParam(name: string, value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw badRequest(`${name}: not valid JSON: ${truncate(value)}`);
  }
}

export function intParam(name: string, value: unknown, min = 0): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const n = typeof value === "string" && /^-?\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min) {
    throw badRequest(
      `${name}: must be an integer >= ${min}, got ${truncate(JSON.stringify(value))}`,
    );
  }
  return n;
}

const truncate = (s: string): string => (s.length > 100 ? `${s.slice(0, 100)}...` : s);

/** Column name, allowing the `table.column` form Arvados accepts. */
function column(spec: TableSpec, attr: unknown, where: string): string {
  if (typeof attr !== "string")
    throw unprocessable(`Invalid attribute in ${where}: ${JSON.stringify(attr)}`);
  const name = attr.startsWith(`${spec.table}.`) ? attr.slice(spec.table.length + 1) : attr;
  if (!(name in spec.columns) || spec.hidden.includes(name)) {
    throw unprocessable(`Invalid attribute '${attr}' in ${where}`);
  }
  return name;
}

/** Coerces an operand to the column's type (Arvados compares `priority > "0"` numerically). */
function operand(spec: TableSpec, col: string, v: unknown): unknown {
  const kind = spec.columns[col];
  if (v === null) return null;
  if (kind === "int" || kind === "float") {
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n)) {
      throw unprocessable(
        `Invalid operand ${JSON.stringify(v)} for numeric attribute '${col}' in filters`,
      );
    }
    return n;
  }
  if (kind === "bool") {
    if (typeof v === "boolean") return v ? 1 : 0;
    throw unprocessable(
      `Invalid operand ${JSON.stringify(v)} for boolean attribute '${col}' in filters`,
    );
  }
  if (kind === "json") throw unprocessable(`Filtering on '${col}' is not supported`);
  if (typeof v !== "string") {
    throw unprocessable(`Invalid operand ${JSON.stringify(v)} for attribute '${col}' in filters`);
  }
  return v;
}

export function parseFilters(spec: TableSpec, raw: unknown): { where: string[]; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  if (raw === undefined || raw === null || raw === "") return { where, args };
  const filters = jsonParam("filters", raw);
  if (!Array.isArray(filters))
    throw unprocessable("filters: must be an array of [attribute, operator, operand]");
  for (const f of filters) {
    // A single filter not wrapped in a list (["state","=","Queued"]) is refused as the API
    // server refuses it: its first element is not an array. The text is the server's
    // (Ruby's inspect of its ArgumentError), without the request ID it appends.
    if (!Array.isArray(f)) {
      throw unprocessable(
        `#<ArgumentError: Invalid element in filters array: ${rubyInspect(f)} is not an array>`,
      );
    }
    if (f.length !== 3) {
      throw unprocessable(
        `Invalid filter ${JSON.stringify(f)}: must be [attribute, operator, operand]`,
      );
    }
    const [attr, opRaw, value] = f as [unknown, unknown, unknown];
    const op = typeof opRaw === "string" ? opRaw.toLowerCase() : "";
    if (!OPERATORS.has(op))
      throw unprocessable(`Invalid operator '${String(opRaw)}' in filter ${JSON.stringify(f)}`);
    if (op === "is_a") {
      const types = Array.isArray(value) ? value : [value];
      if (attr !== "uuid")
        throw unprocessable(`Invalid attribute '${String(attr)}' for is_a filter`);
      where.push(types.includes(spec.kind) ? "1" : "0");
      continue;
    }
    const col = column(spec, attr, "filters");
    if (op === "exists") throw unprocessable(`exists filter on '${col}' is not supported`);
    if (op === "in" || op === "not in") {
      if (!Array.isArray(value))
        throw unprocessable(
          `Invalid operand for '${op}' in filter ${JSON.stringify(f)}: must be an array`,
        );
      if (value.length === 0) {
        where.push(op === "in" ? "0" : "1");
        continue;
      }
      const vals = value.map((v) => operand(spec, col, v));
      where.push(`${col} ${op === "in" ? "IN" : "NOT IN"} (${vals.map(() => "?").join(", ")})`);
      args.push(...vals);
      continue;
    }
    if (op === "like" || op === "ilike") {
      if (typeof value !== "string")
        throw unprocessable(
          `Invalid operand for '${op}' in filter ${JSON.stringify(f)}: must be a string`,
        );
      where.push(op === "like" ? `${col} GLOB ?` : `${col} LIKE ? ESCAPE '\\'`);
      args.push(op === "like" ? likeToGlob(value) : value);
      continue;
    }
    const v = operand(spec, col, value);
    if (v === null) {
      if (op === "=") where.push(`${col} IS NULL`);
      else if (op === "!=" || op === "<>") where.push(`${col} IS NOT NULL`);
      else throw unprocessable(`Invalid operand null for '${op}' in filter ${JSON.stringify(f)}`);
      continue;
    }
    const sqlOp = op === "!=" || op === "<>" ? "!=" : op;
    // SQL `!=` never matches NULL; Arvados (PostgreSQL) behaves the same.
    where.push(`${col} ${sqlOp} ?`);
    args.push(v);
  }
  return { where, args };
}

/** Ruby's `inspect` of a decoded JSON value: as JSON, but `nil` for null (objects differ; rare). */
function rubyInspect(v: unknown): string {
  if (v === null) return "nil";
  return JSON.stringify(v);
}

/** SQL LIKE is case-insensitive in SQLite; PostgreSQL's LIKE is not, so use GLOB. */
function likeToGlob(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? "";
    if (c === "\\" && i + 1 < pattern.length) {
      out += globLiteral(pattern[++i] ?? "");
    } else if (c === "%") out += "*";
    else if (c === "_") out += "?";
    else out += globLiteral(c);
  }
  return out;
}
const globLiteral = (c: string): string => (c === "*" || c === "?" || c === "[" ? `[${c}]` : c);

export function parseOrder(spec: TableSpec, raw: unknown): string[] {
  let items: unknown[];
  if (raw === undefined || raw === null || raw === "") items = [...spec.defaultOrder];
  else if (typeof raw === "string" && !raw.trimStart().startsWith("[")) items = raw.split(",");
  else {
    const v = jsonParam("order", raw);
    items = Array.isArray(v) ? v : [v];
  }
  const out: string[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (typeof item !== "string") throw unprocessable(`Invalid order ${JSON.stringify(item)}`);
    const parts = item.trim().split(/\s+/);
    if (parts.length === 0 || parts.length > 2 || parts[0] === "")
      throw unprocessable(`Invalid order '${item}'`);
    const col = column(spec, parts[0], "order");
    const dir = (parts[1] ?? "asc").toLowerCase();
    if (dir !== "asc" && dir !== "desc")
      throw unprocessable(`Invalid order direction '${parts[1] ?? ""}' in '${item}'`);
    if (seen.has(col)) continue;
    seen.add(col);
    out.push(`${col} ${dir.toUpperCase()}`);
  }
  // A unique tiebreaker makes offset paging stable, as Arvados does.
  const tiebreak = "id" in spec.columns ? "id" : "uuid";
  if (!seen.has(tiebreak)) out.push(`${tiebreak} ASC`);
  return out;
}

export function parseSelect(spec: TableSpec, raw: unknown): string[] | undefined {
  if (raw === undefined || raw === null || raw === "") return undefined;
  const v = jsonParam("select", raw);
  if (!Array.isArray(v)) throw unprocessable("select: must be an array of attribute names");
  return v.map((a) => column(spec, a, "select"));
}

export function parseListQuery(
  spec: TableSpec,
  params: Record<string, unknown>,
  maxItemsPerResponse: number,
): ListQuery {
  const { where, args } = parseFilters(spec, params["filters"]);
  const limitParam = intParam("limit", params["limit"]);
  const count = params["count"] ?? "exact";
  if (count !== "exact" && count !== "none")
    throw unprocessable(`count: must be "exact" or "none", got ${JSON.stringify(count)}`);
  return {
    where,
    args,
    orderBy: parseOrder(spec, params["order"]),
    select: parseSelect(spec, params["select"]),
    limit: Math.min(limitParam ?? 100, maxItemsPerResponse),
    offset: intParam("offset", params["offset"]) ?? 0,
    count,
  };
}
