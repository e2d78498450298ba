import path from "node:path";

/**
 * The checkout this app runs from: this file is `<root>/apps/dispatch-cloud/{src,dist}/demo/`,
 * so the answer is the same for the built CLI and for tests run from source.
 */
export function repoRoot(): string {
  return path.resolve(import.meta.dirname, "../../../..");
}

/** `.demo/` at the top of the checkout (gitignored). */
export function defaultDataDir(): string {
  return path.join(repoRoot(), ".demo");
}

/** The bundled runner that `apps/crunch-run`'s build writes, deployed to the loopback "VM". */
export function runnerBundlePath(): string {
  return path.join(repoRoot(), "apps/crunch-run/dist/crunch-run.cjs");
}

/** The files the demo keeps in its data directory. */
export interface DemoFiles {
  readonly dataDir: string;
  readonly config: string;
  readonly dispatchKey: string;
  readonly database: string;
  /** The dispatcher's JSON log lines. */
  readonly log: string;
  /** crunch-run's lock files (CRUNCH_RUN_LOCK_DIR), so demos in other directories never mix. */
  readonly lockDir: string;
}

export function demoFiles(dataDir: string): DemoFiles {
  const dir = path.resolve(dataDir);
  return {
    dataDir: dir,
    config: path.join(dir, "config.yml"),
    dispatchKey: path.join(dir, "dispatch-key"),
    database: path.join(dir, "container-api.sqlite"),
    log: path.join(dir, "dispatcher.log"),
    lockDir: path.join(dir, "lock"),
  };
}
