export interface ProbeLoopOptions<W> {
  /** ProbeInterval, ms. */
  readonly intervalMs: number;
  readonly maxProbesPerSecond: number;
  now(): number;
  /** False once the pool is stopped: the loop ends. */
  sleep(ms: number): Promise<boolean>;
  /** Uniform in [0, 1), for the jitter. */
  random(): number;
  /** The workers to probe this tick (taken once per tick). */
  candidates(): readonly W[];
  /** False if the worker went away or was replaced while the loop waited for its turn. */
  current(w: W): boolean;
  /** Start probing one worker (in the background). */
  launch(w: W): void;
}

/**
 * The probe ticker: every ProbeInterval (plus a little jitter) each candidate is probed, with
 * launches paced so no second ever holds more than MaxProbesPerSecond of them.
 */
export async function probeLoop<W>(o: ProbeLoopOptions<W>): Promise<void> {
  const interval = o.intervalMs;
  // Invariant: probe launches are at least `spacing` apart by the clock, so any sliding
  // window of 1 s ([t, t + 1000)) holds at most MaxProbesPerSecond of them: N + 1 launches
  // span at least N * spacing = 1000 ms. `spacing` stays exact (never rounded down).
  const spacing = 1000 / o.maxProbesPerSecond;
  let next = o.now() + interval;
  let lastLaunch = -Infinity;
  for (;;) {
    // Until the tick's time has really come: an early timer would tick twice in a row.
    for (let now = o.now(); now < next; now = o.now()) {
      if (!(await o.sleep(next - now))) return;
    }
    // A ticker: ticks missed while busy are dropped.
    while (next <= o.now()) next += interval;
    // Jitter keeps probes from racing a sync that fires at the same moment every time.
    const jitter = Math.floor(o.random() * (interval / 23));
    if (!(await o.sleep(jitter))) return;
    for (const w of o.candidates()) {
      // Read the clock again after every sleep: a timer may fire up to a millisecond early
      // as the clock sees it, and launching then would put N + 1 probes into one second.
      for (let now = o.now(); now < lastLaunch + spacing; now = o.now()) {
        if (!(await o.sleep(lastLaunch + spacing - now))) return;
      }
      // Gone or replaced while we waited: its slot goes to the next candidate.
      if (!o.current(w)) continue;
      lastLaunch = o.now();
      o.launch(w);
    }
  }
}
