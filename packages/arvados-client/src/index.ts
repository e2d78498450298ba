export {
  ArvadosClient,
  DEFAULT_TIMEOUT_MS,
  type ArvadosClientOptions,
  type CallOptions,
} from "./client.js";
export { type Clock, systemClock } from "./clock.js";
export { encodeParams, MAX_GET_QUERY_LENGTH, type Params, type ParamValue } from "./encode.js";
export {
  ArvadosApiError,
  isArvadosApiError,
  type ArvadosErrorInit,
  type ArvadosErrorKind,
} from "./errors.js";
export { INITIAL_LIMIT, QUIET_PERIOD_MS, RequestLimiter } from "./limiter.js";
export * from "./types.js";
