/**
 * A small description of config sections that drives both decoding (YAML value → typed value,
 * defaults filled, every problem collected) and encoding back to what an operator would write
 * (durations Go-style, sets as maps). One description keeps the two directions in step.
 */
import type { Problems } from "./problems.js";
import { formatDuration, parseByteSize, parseDuration } from "./units.js";

export type Node =
  | { readonly t: "string" | "int" | "float" | "bool" | "duration" | "bytes" | "url" }
  | { readonly t: "enum"; readonly values: readonly string[] }
  /** A list of strings. */
  | { readonly t: "stringList" }
  /** A set of strings, written as a list or as a map whose keys are the members. */
  | { readonly t: "stringSet" }
  /** A map of strings to strings. */
  | { readonly t: "stringMap" }
  /** Kept as written; `mustBeMap` rejects anything but a map. */
  | { readonly t: "raw"; readonly mustBeMap?: boolean }
  | { readonly t: "map"; readonly of: Node; readonly urlKeys?: boolean }
  | {
      readonly t: "struct";
      readonly fields: Readonly<Record<string, Field>>;
      /** Unknown keys are kept as written, without a warning (sections owned by other components). */
      readonly open?: boolean;
    }
  | {
      readonly t: "custom";
      decode(value: unknown, path: string, problems: Problems): unknown;
      encode(value: unknown): unknown;
    };

export interface Field {
  readonly node: Node;
  /** The value when the key is absent or null (already in decoded form). */
  readonly def: unknown;
}

export const f = (node: Node, def: unknown): Field => ({ node, def });
export const str = (def = ""): Field => f({ t: "string" }, def);
export const int = (def = 0): Field => f({ t: "int" }, def);
export const float = (def = 0): Field => f({ t: "float" }, def);
export const bool = (def = false): Field => f({ t: "bool" }, def);
export const dur = (def: number): Field => f({ t: "duration" }, def);
export const bytes = (def = 0): Field => f({ t: "bytes" }, def);
export const struct = (fields: Record<string, Field>, open = false): Node => ({
  t: "struct",
  fields,
  open,
});

export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A short, safe rendering of a bad value for a message (never used for secret keys' values). */
export function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (Array.isArray(v)) return "a list";
  if (isMap(v)) return "a map";
  return String(v);
}

// YAML 1.1 (what Go's yaml.v2 reads) also spells booleans these ways; the yaml package reads the
// file as YAML 1.2, so accept them here.
const yaml11True = new Set([
  "y",
  "Y",
  "yes",
  "Yes",
  "YES",
  "on",
  "On",
  "ON",
  "true",
  "True",
  "TRUE",
]);
const yaml11False = new Set([
  "n",
  "N",
  "no",
  "No",
  "NO",
  "off",
  "Off",
  "OFF",
  "false",
  "False",
  "FALSE",
]);

/** `http://host:port` gets the path `/`, as Arvados normalises URLs. */
export function normaliseUrl(s: string): string | null {
  if (s === "") return "";
  if (!URL.canParse(s)) return null;
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*$/i.test(s) ? `${s}/` : s;
}

/**
 * Every count, price, size and duration Arvados's dispatcher reads means nothing below zero (Go
 * would take a negative MaxInstances or TimeoutIdle and misbehave), so a negative one is an error.
 */
function nonNegative(v: number, path: string, p: Problems, shown = show(v)): number {
  if (v >= 0) return v;
  p.error("value", path, `${shown} is negative; it must be 0 or more`);
  return 0;
}

export function decode(node: Node, value: unknown, path: string, p: Problems): unknown {
  switch (node.t) {
    case "string":
      // YAML 1.2 reads `SSHPort: 22` as a number; Arvados users write it unquoted, so take it.
      if (typeof value === "string") return value;
      if (typeof value === "number" || typeof value === "boolean") return String(value);
      p.error("type", path, `expected a string, got ${show(value)}`);
      return "";
    case "int":
      if (typeof value === "number" && Number.isInteger(value)) {
        // Go reads these into int64; past 2^53 we could not even hold the value exactly.
        if (!Number.isSafeInteger(value)) {
          p.error(
            "value",
            path,
            `${show(value)} is too large (at most ${Number.MAX_SAFE_INTEGER})`,
          );
          return 0;
        }
        return nonNegative(value, path, p);
      }
      p.error("type", path, `${show(value)} is not a whole number`);
      return 0;
    case "float":
      if (typeof value === "number") {
        if (!Number.isFinite(value)) {
          p.error("value", path, `${show(value)} is not a finite number`);
          return 0;
        }
        return nonNegative(value, path, p);
      }
      p.error("type", path, `${show(value)} is not a number`);
      return 0;
    case "bool":
      if (typeof value === "boolean") return value;
      if (typeof value === "string" && yaml11True.has(value)) return true;
      if (typeof value === "string" && yaml11False.has(value)) return false;
      p.error("type", path, `${show(value)} is not a boolean (true or false)`);
      return false;
    case "duration": {
      if (typeof value === "string" || typeof value === "number") {
        const r = parseDuration(value);
        if (r.ok && !Number.isFinite(r.value)) {
          p.error("value", path, `${show(value)} is too long a duration`);
          return 0;
        }
        if (r.ok) return nonNegative(r.value, path, p, show(value));
        p.error(
          "type",
          path,
          `${show(value)} is not a duration: ${r.error} (examples: 300ms, 10s, 1m30s, 2h)`,
        );
      } else {
        p.error("type", path, `${show(value)} is not a duration (examples: 300ms, 10s, 1m30s, 2h)`);
      }
      return 0;
    }
    case "bytes": {
      if (typeof value === "string" || typeof value === "number") {
        const r = parseByteSize(value);
        if (r.ok) return nonNegative(r.value, path, p, show(value));
        if (r.error.includes("overflows")) {
          p.error("value", path, `${show(value)} is too large: ${r.error}`);
          return 0;
        }
      }
      p.error("type", path, `${show(value)} is not a byte size (examples: 64GiB, 128GB)`);
      return 0;
    }
    case "url": {
      const s = typeof value === "string" ? normaliseUrl(value) : null;
      if (s !== null) return s;
      p.error("type", path, `${show(value)} is not a URL`);
      return "";
    }
    case "enum":
      if (typeof value === "string" && node.values.includes(value)) return value;
      p.error(
        "value",
        path,
        `unacceptable value ${show(value)}, must be one of: ${node.values.map((v) => JSON.stringify(v)).join(", ")}`,
      );
      return node.values[0];
    case "stringList":
      if (!Array.isArray(value)) {
        p.error("type", path, `expected a list of strings, got ${show(value)}`);
        return [];
      }
      return value.flatMap((v, i) => {
        const s = decode({ t: "string" }, v, `${path}[${i}]`, p);
        return typeof s === "string" ? [s] : [];
      });
    case "stringSet":
      if (Array.isArray(value)) return decode({ t: "stringList" }, value, path, p);
      if (isMap(value)) return Object.keys(value);
      p.error("type", path, `expected a list or a map, got ${show(value)}`);
      return [];
    case "stringMap": {
      if (!isMap(value)) {
        p.error("type", path, `expected a map, got ${show(value)}`);
        return {};
      }
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(value)) {
        if (v === null || v === undefined) continue;
        out[k] = decode({ t: "string" }, v, `${path}.${k}`, p) as string;
      }
      return out;
    }
    case "raw":
      if (node.mustBeMap && !isMap(value)) {
        p.error("type", path, `expected a map, got ${show(value)}`);
        return {};
      }
      return value;
    case "map": {
      if (!isMap(value)) {
        p.error("type", path, `expected a map, got ${show(value)}`);
        return {};
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        let key = k;
        if (node.urlKeys) {
          const u = normaliseUrl(k);
          if (u === null || u === "") {
            p.error("type", `${path}.${k}`, `${show(k)} is not a URL`);
            continue;
          }
          key = u;
        }
        out[key] = decode(node.of, v ?? {}, `${path}.${k}`, p);
      }
      return out;
    }
    case "struct":
      return decodeStruct(node, value, path, p);
    case "custom":
      return node.decode(value, path, p);
    default:
      return value;
  }
}

function decodeStruct(
  node: Extract<Node, { t: "struct" }>,
  value: unknown,
  path: string,
  p: Problems,
): Record<string, unknown> {
  const input = value === null || value === undefined ? {} : value;
  if (!isMap(input)) {
    p.error("type", path, `expected a map, got ${show(input)}`);
    return decodeStruct(node, {}, path, p);
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(node.fields)) {
    const v = input[key];
    if (v !== null && v !== undefined) out[key] = decode(field.node, v, `${path}.${key}`, p);
    else if (field.node.t === "struct")
      out[key] = decodeStruct(field.node, {}, `${path}.${key}`, p);
    else if (field.def !== undefined) out[key] = structuredClone(field.def);
  }
  const lower = new Map(Object.keys(node.fields).map((k) => [k.toLowerCase(), k]));
  for (const [key, v] of Object.entries(input)) {
    if (key in node.fields) continue;
    const suggestion = lower.get(key.toLowerCase());
    if (node.open && suggestion === undefined) {
      if (v !== null && v !== undefined) out[key] = v;
      continue;
    }
    // As in Arvados, a mis-cased key is reported and dropped rather than guessed at.
    p.unknownKey(`${path}.${key}`, suggestion);
  }
  return out;
}

export function encode(node: Node, value: unknown): unknown {
  switch (node.t) {
    case "duration":
      return typeof value === "number" ? formatDuration(value) : value;
    case "stringSet":
      return Object.fromEntries((value as readonly string[]).map((k) => [k, {}]));
    case "stringList":
      return [...(value as readonly string[])];
    case "map": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>))
        out[k] = encode(node.of, v);
      return out;
    }
    case "struct": {
      const input = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [k, field] of Object.entries(node.fields)) {
        if (input[k] !== undefined) out[k] = encode(field.node, input[k]);
      }
      for (const [k, v] of Object.entries(input))
        if (!(k in node.fields) && v !== undefined) out[k] = v;
      return out;
    }
    case "custom":
      return node.encode(value);
    default:
      return value;
  }
}
