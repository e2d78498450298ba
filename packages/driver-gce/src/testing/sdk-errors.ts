import { GceOperationError } from "../classify.js";
import type { HttpErrorAnswer, OperationFailure } from "./errors.js";

/**
 * An error as the Compute SDK's REST transport throws it for an HTTP error answer: the HTTP
 * status, the JSON body as the message, the response with its headers. (The driver's tests
 * against the fake get the real thing; this is for fast classifier tables.)
 */
export function sdkHttpError(answer: HttpErrorAnswer): Error {
  const headers = new Headers({ "content-type": "application/json; charset=UTF-8" });
  if (answer.retryAfter !== undefined) headers.set("retry-after", answer.retryAfter);
  return Object.assign(new Error(JSON.stringify(answer.body)), {
    name: "GaxiosError",
    status: answer.status,
    code: answer.status,
    response: { status: answer.status, headers },
  });
}

/** The error the driver raises for an operation that finished with `failure`'s errors. */
export function operationError(
  failure: OperationFailure,
  operation = "operation-1",
): GceOperationError {
  return new GceOperationError(
    operation,
    failure.errors.map((e) => {
      const info = e.errorDetails?.find((d) => "quotaInfo" in d)?.["quotaInfo"];
      return {
        code: e.code,
        message: e.message,
        ...(info === undefined || info === null ? {} : { quotaInfo: info }),
      };
    }),
    failure.httpErrorStatusCode,
  );
}
