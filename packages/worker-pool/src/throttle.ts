import { goTime } from "@dispatch-cloud/arvados-types";
import type { RateLimitError } from "@dispatch-cloud/cloud-driver-api";

/**
 * A suspension of one kind of cloud call (creates, listings) until a time, after the cloud
 * answered with a rate-limit error that says when to come back.
 */
export class Throttle {
  #until = 0;
  #message = "";

  /** Calls are suspended while `now` is before this. */
  get until(): number {
    return this.#until;
  }

  /** What a suspended call reports instead of calling. */
  get message(): string {
    return this.#message;
  }

  suspend(until: number, message: string): void {
    this.#until = until;
    this.#message = message;
  }
}

/** Arvados's text for a suspension after `err`. */
export function suspendedMessage(now: number, err: RateLimitError): string {
  const until = err.earliestRetry.getTime();
  return `remote calls are suspended for ${((until - now) / 1000).toFixed(3)}s, until ${goTime(until)}`;
}
