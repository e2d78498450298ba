/**
 * Reading `Containers.CloudVMs.DriverParameters`.
 *
 * Arvados decodes this object with Go's encoding/json, which matches keys to fields
 * case-insensitively (an exact match first) and ignores unknown keys; both drivers also receive
 * the other drivers' defaults. This reader does the same, and collects every problem with its
 * key path so a bad config is reported in one go.
 */

/** The config path of the object drivers read. */
export const DRIVER_PARAMETERS_PATH = "Containers.CloudVMs.DriverParameters";

/** Bad DriverParameters: every problem, each starting with its key path. */
export class DriverParametersError extends Error {
  override readonly name = "DriverParametersError";
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
  }
}

interface Common<T> {
  /** Value when the key is absent (or null). Without it an absent key is a problem. */
  readonly default?: T;
}

export interface NumberOptions extends Common<number> {
  readonly min?: number;
  readonly max?: number;
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Milliseconds in a Go-style duration (`300ms`, `10s`, `1m30s`, `1.5h`, `0`), or undefined if
 * the text is not one.
 */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === "0") return 0;
  const sign = s.startsWith("-") ? -1 : 1;
  const body = s.replace(/^[+-]/, "");
  if (body === "") return undefined;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(body); m !== null; m = re.exec(body)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== body.length || pos === 0) return undefined;
  return sign * total;
}

export interface DriverParameterReader {
  /** The raw value of a key (matched case-insensitively), or undefined. */
  raw(key: string): unknown;
  string(key: string, options?: Common<string> & { readonly nonEmpty?: boolean }): string;
  /** A JSON number that is an integer. */
  integer(key: string, options?: NumberOptions): number;
  number(key: string, options?: NumberOptions): number;
  boolean(key: string, options?: Common<boolean>): boolean;
  /** A Go duration string (`"10s"`), returned in milliseconds. */
  duration(key: string, options?: NumberOptions): number;
  /** One of a fixed set of strings. */
  oneOf<T extends string>(key: string, values: readonly T[], options?: Common<T>): T;
  stringList(key: string, options?: Common<readonly string[]>): string[];
  stringMap(
    key: string,
    options?: Common<Readonly<Record<string, string>>>,
  ): Record<string, string>;
  /** Record a problem of the caller's own (e.g. two keys that conflict). */
  problem(key: string, message: string): void;
  /** Problems so far. */
  readonly problems: readonly string[];
  /** Throw a DriverParametersError listing every problem, if there were any. */
  finish(): void;
}

/**
 * A reader over `parameters`. `declared`, if given, lists every key the driver may read (its
 * `DriverDefinition.parameterKeys`); reading another is a bug and throws. Each typed getter returns the value, or the default (or a zero
 * value) after recording a problem such as
 * `Containers.CloudVMs.DriverParameters.Region: must be a non-empty string`.
 * Call `finish()` after reading every key.
 */
export function readDriverParameters(
  parameters: Readonly<Record<string, unknown>> | null | undefined,
  path: string = DRIVER_PARAMETERS_PATH,
  declared?: readonly string[],
): DriverParameterReader {
  const problems: string[] = [];
  const params = parameters ?? {};
  const keys = Object.keys(params);
  const at = (key: string): string => `${path}.${key}`;
  const declaredKeys = declared === undefined ? undefined : new Set(declared);

  function raw(key: string): unknown {
    // A driver that declares its keys (for config checks) must read no other: keep the list true.
    if (declaredKeys !== undefined && !declaredKeys.has(key)) {
      throw new Error(`bug: DriverParameters key ${key} is read but not declared`);
    }
    if (Object.hasOwn(params, key)) return params[key];
    const lower = key.toLowerCase();
    const found = keys.find((k) => k.toLowerCase() === lower);
    return found === undefined ? undefined : params[found];
  }

  function problem(key: string, message: string): void {
    problems.push(`${at(key)}: ${message}`);
  }

  function get<T>(
    key: string,
    options: Common<T> | undefined,
    zero: T,
    convert: (v: unknown) => T | string,
    check?: (v: T) => string | undefined,
  ): T {
    const v = raw(key);
    if (v === undefined || v === null) {
      if (options !== undefined && "default" in options) return options.default;
      problem(key, "is required");
      return zero;
    }
    const r = convert(v);
    if (typeof r === "string" && typeof zero !== "string") {
      problem(key, r);
      return options?.default ?? zero;
    }
    const bad = check?.(r as T);
    if (bad !== undefined) {
      problem(key, bad);
      return options?.default ?? zero;
    }
    return r as T;
  }

  function range(n: number, o: NumberOptions | undefined, unit = ""): string | undefined {
    if (o?.min !== undefined && n < o.min) return `must be at least ${o.min}${unit}`;
    if (o?.max !== undefined && n > o.max) return `must be at most ${o.max}${unit}`;
    return undefined;
  }

  // String getters can't use the "returned a string means problem" trick, so they check here.
  function stringValue(
    key: string,
    options: (Common<string> & { nonEmpty?: boolean }) | undefined,
  ): string {
    const v = raw(key);
    if (v === undefined || v === null) {
      if (options !== undefined && "default" in options) return options.default;
      problem(key, "is required");
      return "";
    }
    if (typeof v !== "string") {
      problem(key, `must be a string, not ${JSON.stringify(v)}`);
      return options?.default ?? "";
    }
    if (options?.nonEmpty === true && v === "") {
      problem(key, "must not be empty");
      return options.default ?? "";
    }
    return v;
  }

  const reader: DriverParameterReader = {
    raw,
    string: stringValue,
    integer: (key, o) =>
      get(
        key,
        o,
        0,
        (v) =>
          typeof v === "number" && Number.isInteger(v)
            ? v
            : `must be an integer, not ${JSON.stringify(v)}`,
        (n) => range(n, o),
      ),
    number: (key, o) =>
      get(
        key,
        o,
        0,
        (v) =>
          typeof v === "number" && Number.isFinite(v)
            ? v
            : `must be a number, not ${JSON.stringify(v)}`,
        (n) => range(n, o),
      ),
    boolean: (key, o) =>
      get(key, o, false, (v) =>
        typeof v === "boolean" ? v : `must be true or false, not ${JSON.stringify(v)}`,
      ),
    duration: (key, o) =>
      get(
        key,
        o,
        0,
        (v) => {
          const ms = typeof v === "string" ? parseGoDuration(v) : undefined;
          return ms ?? `must be a duration such as "10s" or "1m30s", not ${JSON.stringify(v)}`;
        },
        (n) => range(n, o, "ms"),
      ),
    oneOf<T extends string>(key: string, values: readonly T[], o?: Common<T>): T {
      const v = stringValue(key, o);
      if ((values as readonly string[]).includes(v)) return v as T;
      if (raw(key) !== undefined && typeof raw(key) === "string") {
        problem(
          key,
          `must be one of ${values.map((x) => JSON.stringify(x)).join(", ")}, not ${JSON.stringify(v)}`,
        );
      }
      return o?.default ?? values[0]!;
    },
    stringList: (key, o) =>
      get<string[]>(key, o as Common<string[]> | undefined, [], (v) =>
        Array.isArray(v) && v.every((x) => typeof x === "string")
          ? [...v]
          : `must be a list of strings, not ${JSON.stringify(v)}`,
      ),
    stringMap: (key, o) =>
      get<Record<string, string>>(key, o, {}, (v) =>
        typeof v === "object" &&
        v !== null &&
        !Array.isArray(v) &&
        Object.values(v).every((x) => typeof x === "string")
          ? { ...(v as Record<string, string>) }
          : `must be a map of strings, not ${JSON.stringify(v)}`,
      ),
    problem,
    get problems() {
      return problems;
    },
    finish() {
      if (problems.length > 0) throw new DriverParametersError(problems);
    },
  };
  return reader;
}
