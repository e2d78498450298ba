/**
 * The base of a package's error family: one class per package, its failures told apart by a
 * string-literal `kind` a caller can switch on, the underlying error kept as `cause`.
 */
export class KindedError<K extends string> extends Error {
  constructor(
    readonly kind: K,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
