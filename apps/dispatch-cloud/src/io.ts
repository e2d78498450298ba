/** What a command may touch of the process, so commands run the same in tests and for real. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads all of standard input (for `--config -`). */
  readonly readStdin: () => Promise<string>;
  /** Aborted on SIGTERM/SIGINT: `run` stops cleanly. Absent: runs until the process ends. */
  readonly stopSignal?: AbortSignal;
  /**
   * The runner `DeployRunnerBinary: /proc/self/exe` stands for, where this installation keeps
   * it (the Debian package); absent: the checkout's apps/crunch-run build.
   */
  readonly runnerBinaryPath?: string;
  /** Where this installation keeps the dashboard's files; absent: beside the http-api build. */
  readonly dashboardDir?: string;
}

/** Where a command reports its exit status; commands never call process.exit themselves. */
export interface CommandContext {
  readonly io: CliIo;
  setExitCode(code: number): void;
}

/** The default config path, as Arvados chooses it. */
export function defaultConfigPath(env: CliIo["env"]): string {
  const fromEnv = env["ARVADOS_CONFIG"];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : "/etc/arvados/config.yml";
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Resolves when `signal` aborts; never without one (the process then runs until killed). */
export function waitForAbort(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return new Promise(() => undefined);
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}
