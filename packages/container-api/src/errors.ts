/** An API failure answered as `{"errors":[...]}` with this status (400/401/403/404/422/503). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly errors: string[];
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 413 | 422 | 503,
    ...errors: string[]
  ) {
    super(errors.join("; "));
    this.errors = errors;
  }
}

export const badRequest = (...e: string[]): ApiError => new ApiError(400, ...e);
export const unprocessable = (...e: string[]): ApiError => new ApiError(422, ...e);
export const forbidden = (...e: string[]): ApiError =>
  new ApiError(403, ...(e.length ? e : ["Forbidden"]));
export const notFound = (what = "Not Found"): ApiError => new ApiError(404, what);
