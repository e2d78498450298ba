import { afterEach } from "vitest";

/**
 * What a test started and must stop: push a function, and after each test they all run, the
 * last pushed first (a pool stopped before the cloud it runs on).
 */
export function cleanupAfterEach(): { push(cleanup: () => Promise<void>): void } {
  let cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    const due = cleanups;
    cleanups = [];
    for (const c of due.toReversed()) await c();
  });
  return { push: (cleanup) => void cleanups.push(cleanup) };
}
