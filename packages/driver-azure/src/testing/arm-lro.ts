/**
 * ARM's long-running operation protocol as the fake ARM server speaks it: the accepted
 * response carries `Azure-AsyncOperation` and `Location` URLs and `Retry-After: 0`; the status
 * URL answers `InProgress` for a set number of polls, then `Succeeded` or `Failed`; the
 * `Location` URL then answers with the final result.
 */
import { randomUUID } from "node:crypto";
import type http from "node:http";
import type { InjectedFailure } from "./arm-knobs.js";

interface Operation {
  pollsLeft: number;
  failure: InjectedFailure | undefined;
  finish: () => void;
  done: boolean;
  /** For delete operations the final Location GET answers 204. */
  resultStatus: number;
  resultBody: () => unknown;
}

/** Where operation URLs live under the fake's endpoint. */
export const OPERATIONS_PATH = /^\/fakeOperations\/([^/]+)(\/result)?$/;

export class LongRunningOperations {
  private readonly operations = new Map<string, Operation>();

  constructor(
    private readonly endpoint: string,
    private readonly pollsBeforeDone: number,
  ) {}

  /**
   * Answer `status` with `body` and the operation's URLs. `finish` runs once, when a poll finds
   * the operation done; with a `failure` the operation then reports it instead of a result.
   */
  accept(
    res: http.ServerResponse,
    status: number,
    body: unknown,
    op: {
      failure?: InjectedFailure | undefined;
      finish?: () => void;
      resultStatus: number;
      resultBody: () => unknown;
    },
  ): void {
    const opId = randomUUID();
    this.operations.set(opId, {
      pollsLeft: this.pollsBeforeDone,
      failure: op.failure,
      finish: op.finish ?? (() => undefined),
      done: false,
      resultStatus: op.resultStatus,
      resultBody: op.resultBody,
    });
    res.writeHead(status, {
      "content-type": "application/json",
      "azure-asyncoperation": `${this.endpoint}/fakeOperations/${opId}?api-version=fake`,
      location: `${this.endpoint}/fakeOperations/${opId}/result?api-version=fake`,
      "retry-after": "0",
    });
    res.end(body === undefined ? "" : JSON.stringify(body));
  }

  /** A GET of an operation's status URL (`result` false) or its Location URL. */
  poll(res: http.ServerResponse, opId: string, result: boolean): void {
    const op = this.operations.get(opId);
    if (op === undefined) return sendError(res, 404, "NotFound", `no operation ${opId}`);
    if (!op.done) {
      if (op.pollsLeft > 0) {
        op.pollsLeft--;
      } else {
        op.done = true;
        op.finish();
      }
    }
    if (result) {
      if (!op.done) {
        res
          .writeHead(202, {
            "retry-after": "0",
            location: `${this.endpoint}/fakeOperations/${opId}/result`,
          })
          .end();
      } else if (op.failure !== undefined) {
        sendError(res, op.failure.status, op.failure.code, op.failure.message);
      } else if (op.resultStatus === 204) {
        res.writeHead(204).end();
      } else {
        sendJson(res, op.resultStatus, op.resultBody());
      }
      return;
    }
    const status = !op.done ? "InProgress" : op.failure === undefined ? "Succeeded" : "Failed";
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (!op.done) headers["retry-after"] = "0";
    res.writeHead(200, headers);
    res.end(
      JSON.stringify({
        status,
        ...(op.done && op.failure !== undefined
          ? { error: { code: op.failure.code, message: op.failure.message } }
          : {}),
      }),
    );
  }
}

/** An ARM error body, `{"error":{"code","message"}}`, optionally with `Retry-After`. */
export function sendError(
  res: http.ServerResponse,
  status: number,
  code: string,
  message: string,
  retryAfter?: string,
): void {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (retryAfter !== undefined) headers["retry-after"] = retryAfter;
  res.writeHead(status, headers);
  res.end(JSON.stringify({ error: { code, message } }));
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
