/**
 * What can be wrong with a config. Every problem is a value with the dotted key path it concerns
 * and the full line an operator sees, which starts with that path (or names it, for unknown keys
 * whose wording Arvados fixed).
 */
export type ProblemKind =
  /** The file could not be read. */
  | "io"
  /** YAML syntax. */
  | "syntax"
  /** The wrong kind of value: a list for a map, a word for a number. */
  | "type"
  /** A well-typed value that is not acceptable. */
  | "value"
  /** A key nobody reads. */
  | "unknown-key"
  /** A key or form that still works but is on its way out. */
  | "deprecated"
  /** ManagementToken / SystemRootToken checks. */
  | "token"
  /** Containers.DispatchPrivateKey. */
  | "private-key"
  /** No cluster, several clusters, a bad cluster id. */
  | "cluster";

export interface ConfigProblem {
  readonly kind: ProblemKind;
  /** Dotted key path, e.g. `Clusters.zzzzz.InstanceTypes.x1md.RAM`; "" for the whole file. */
  readonly path: string;
  /** The line to show the operator. */
  readonly text: string;
}

/** A problem whose line is `<path>: <message>`. */
export function problemAt(kind: ProblemKind, path: string, message: string): ConfigProblem {
  return { kind, path, text: path === "" ? message : `${path}: ${message}` };
}

/** Collects problems during one load. */
export class Problems {
  readonly errors: ConfigProblem[] = [];
  readonly warnings: ConfigProblem[] = [];
  error(kind: ProblemKind, path: string, message: string): void {
    this.errors.push(problemAt(kind, path, message));
  }
  warn(kind: ProblemKind, path: string, message: string): void {
    this.warnings.push(problemAt(kind, path, message));
  }
  /** A warning whose wording is fixed by Arvados and does not start with `<path>: `. */
  warnText(kind: ProblemKind, path: string, text: string): void {
    this.warnings.push({ kind, path, text });
  }
  unknownKey(path: string, suggestion?: string): void {
    const hint = suggestion === undefined ? "" : ` (perhaps you meant ${suggestion}?)`;
    this.warnings.push({
      kind: "unknown-key",
      path,
      text: `deprecated or unknown config entry: ${path}${hint}`,
    });
  }
}
