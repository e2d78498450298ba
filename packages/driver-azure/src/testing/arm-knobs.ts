/** The fake ARM server's fault knobs: one-shot injected failures and holds that park requests. */
import { EventEmitter } from "node:events";

export type ArmResourceKind = "networkInterfaces" | "virtualMachines" | "disks";

/** Which requests a knob applies to; absent fields match anything. */
export interface RequestMatch {
  readonly method?: "GET" | "PUT" | "PATCH" | "DELETE" | "POST";
  readonly kind?: ArmResourceKind | "listKeys";
  /** Matches when the resource name starts with this. */
  readonly namePrefix?: string;
  /** Matches only list requests for a page after the first (those following a nextLink). */
  readonly laterPage?: boolean;
}

/** What a knob sees of a request. */
export interface MatchedRequest {
  readonly method: string;
  readonly kind: string;
  readonly name: string;
  readonly laterPage: boolean;
}

export interface InjectedFailure {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** Sent as the `Retry-After` header when given. */
  readonly retryAfter?: string;
  /**
   * Accept the request (201) and fail the operation when it is polled, as ARM does for most
   * provisioning errors. Only for PUT.
   */
  readonly async?: boolean;
}

/** Parked requests matching one `hold`. */
export interface Hold {
  /** Requests parked right now. */
  readonly waiting: number;
  /** The most parked at once since the hold began. */
  readonly maxWaiting: number;
  /** Resolves once at least `n` requests are parked. */
  untilWaiting(n: number): Promise<void>;
  /** Let every parked request (and all later ones) through. */
  release(): void;
}

interface HoldState {
  match: RequestMatch;
  waiting: (() => void)[];
  maxWaiting: number;
  released: boolean;
  events: EventEmitter;
}

export class RequestKnobs {
  private readonly failures: { match: RequestMatch; failure: InjectedFailure }[] = [];
  private readonly holds: HoldState[] = [];

  /** Fail the next request matching `match` with `failure` (one-shot, in the order given). */
  failNext(match: RequestMatch, failure: InjectedFailure): void {
    this.failures.push({ match, failure });
  }

  /** Park requests matching `match` until `release()`. */
  hold(match: RequestMatch): Hold {
    const state: HoldState = {
      match,
      waiting: [],
      maxWaiting: 0,
      released: false,
      events: new EventEmitter(),
    };
    this.holds.push(state);
    return {
      get waiting() {
        return state.waiting.length;
      },
      get maxWaiting() {
        return state.maxWaiting;
      },
      untilWaiting: (n) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (state.waiting.length >= n) {
              state.events.off("change", check);
              resolve();
            }
          };
          state.events.on("change", check);
          check();
        }),
      release: () => release(state),
    };
  }

  /** Resolves once no unreleased hold matches `req` any more. */
  async park(req: MatchedRequest): Promise<void> {
    for (const h of this.holds) {
      if (!h.released && matches(h.match, req)) {
        await new Promise<void>((resolve) => {
          h.waiting.push(resolve);
          h.maxWaiting = Math.max(h.maxWaiting, h.waiting.length);
          h.events.emit("change");
        });
      }
    }
  }

  /** The first injected failure matching `req`, used up. */
  takeFailure(req: MatchedRequest): InjectedFailure | undefined {
    const i = this.failures.findIndex((f) => matches(f.match, req));
    return i < 0 ? undefined : this.failures.splice(i, 1)[0]!.failure;
  }

  releaseAll(): void {
    for (const h of this.holds) release(h);
  }
}

function release(h: HoldState): void {
  h.released = true;
  for (const resume of h.waiting.splice(0)) resume();
  h.events.emit("change");
}

function matches(m: RequestMatch, r: MatchedRequest): boolean {
  return (
    (m.laterPage === undefined || m.laterPage === r.laterPage) &&
    (m.method === undefined || m.method === r.method) &&
    (m.kind === undefined || m.kind === r.kind) &&
    (m.namePrefix === undefined || r.name.startsWith(m.namePrefix))
  );
}
