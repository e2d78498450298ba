/** How a step ended. */
export type StepStatus = "passed" | "failed" | "interrupted";

export interface StepRecord {
  readonly name: string;
  readonly status: StepStatus;
  /** One line: what was found, or what went wrong. */
  readonly detail: string;
  readonly elapsedMs: number;
}

/** Go-style short durations: `0.31s`, `12.0s`, `10m0s`, `1h2m3s`. */
export function formatElapsed(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${m}m${s}s` : `${m}m${s}s`;
}

/** What became of the test instance, for the summary. */
export interface InstanceOutcome {
  /** null: no instance was created (or found). */
  readonly id: string | null;
  /** Whether the last listing after destroy no longer showed it. */
  readonly gone: boolean;
}

export interface RunReport {
  /** "" for a single run; otherwise e.g. `SubnetID[1] subnet-b`. */
  readonly label: string;
  readonly steps: readonly StepRecord[];
  readonly instance: InstanceOutcome;
  readonly ok: boolean;
}

/** The closing summary: every step of every run, the instance, and the verdict. */
export function formatSummary(runs: readonly RunReport[]): string {
  const lines: string[] = ["", "cloudtest summary:"];
  for (const run of runs) {
    if (run.label !== "") lines.push(` ${run.label}:`);
    const width = Math.max(0, ...run.steps.map((s) => s.name.length));
    for (const s of run.steps) {
      const tag = s.status === "passed" ? "PASS" : s.status === "failed" ? "FAIL" : "INTR";
      lines.push(
        `  ${tag}  ${s.name.padEnd(width)}  ${formatElapsed(s.elapsedMs).padStart(7)}  ${s.detail}`,
      );
    }
    const inst = run.instance;
    if (inst.id === null) lines.push("  instance: none was created");
    else if (inst.gone) lines.push(`  instance: ${inst.id}, destroyed and no longer listed`);
    else
      lines.push(
        `  instance: ${inst.id}, MAY STILL EXIST: check the cloud console and destroy it by hand`,
      );
  }
  const ok = runs.length > 0 && runs.every((r) => r.ok);
  const failed = runs.flatMap((r) => r.steps.filter((s) => s.status !== "passed"));
  lines.push(
    ok
      ? "result: PASSED (every check passed)"
      : `result: FAILED (${failed.map((s) => s.name).join(", ") || "no checks ran"})`,
  );
  return `${lines.join("\n")}\n`;
}
