import type { Logger } from "@dispatch-cloud/arvados-types";
import { errorMessage } from "@dispatch-cloud/cloud-driver-api";

/**
 * What a start-up has built so far, to undo in reverse when a later step fails. Each step is
 * undone even when an earlier undo fails; failures are logged, not thrown, because the caller
 * is already reporting the error that made it give up.
 */
export class Teardown {
  readonly #steps: { readonly what: string; readonly undo: () => Promise<void> }[] = [];
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  add(what: string, undo: () => Promise<void>): void {
    this.#steps.push({ what, undo });
  }

  /** Undoes every step added so far, the last first, and forgets them. */
  async undoAll(): Promise<void> {
    for (const { what, undo } of this.#steps.splice(0).toReversed()) {
      await runLogged(this.#logger, what, undo);
    }
  }
}

/** Runs one stop step; a failure is logged as `error stopping <what>` and swallowed. */
export async function runLogged(
  logger: Logger,
  what: string,
  f: () => Promise<void>,
): Promise<void> {
  try {
    await f();
  } catch (err) {
    logger.warn({ error: errorMessage(err) }, `error stopping ${what}`);
  }
}
