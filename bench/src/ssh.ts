// The SSH executor against a real OpenSSH sshd on 127.0.0.1 (started by ssh-executor's test
// harness): commands per second over one connection, sequential and concurrent, and the time
// to set up a connection.
import {
  type ExecutorTarget,
  type HostKeyVerdict,
  silentLogger,
} from "@dispatch-cloud/arvados-types";
import { createSshExecutorFactory, type SshExecutor } from "@dispatch-cloud/ssh-executor";
import { startSshd, type Sshd } from "@dispatch-cloud/ssh-executor/testing";
import { emit, ms, percentile, progress, since, stopSignal, type Row } from "./lib.js";

const NAME = "ssh";
const PHASE_MS = 5_000;
const CONCURRENCY = [10, 50] as const;
const CONNECTS = 20;
const SECRET = "bench-instance-secret";

const signal = stopSignal(NAME);

function target(sshd: Sshd, verdict: HostKeyVerdict["kind"]): ExecutorTarget {
  return {
    address: `${sshd.host}:${sshd.port}`,
    remoteUser: sshd.user,
    instanceSecret: SECRET,
    verifyHostKey: () =>
      Promise.resolve(verdict === "verified" ? { kind: "verified" } : { kind: "not-implemented" }),
  };
}

/** Runs `true` with `inFlight` commands outstanding for PHASE_MS; returns commands/s and latencies. */
async function throughput(ex: SshExecutor, inFlight: number) {
  const latencies: number[] = [];
  const end = Date.now() + PHASE_MS;
  const t0 = process.hrtime.bigint();
  let failures = 0;
  const worker = async () => {
    while (Date.now() < end && !signal.aborted) {
      const c0 = process.hrtime.bigint();
      const r = await ex.execute("true", { timeoutMs: 30_000 });
      if (r.exitCode !== 0) failures++;
      latencies.push(since(c0));
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = since(t0);
  return {
    inFlight,
    commands: latencies.length,
    perSecond: (latencies.length * 1000) / elapsed,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    failures,
  };
}

/** Time from a fresh executor's first execute to its result, minus nothing: dial + one command. */
async function connects(sshd: Sshd, verdict: HostKeyVerdict["kind"]) {
  const factory = createSshExecutorFactory({ privateKey: sshd.privateKey, logger: silentLogger });
  const firsts: number[] = [];
  const seconds: number[] = [];
  // One extra connection first, not counted: it warms up the JIT and sshd's caches.
  for (let i = -1; i < CONNECTS && !signal.aborted; i++) {
    const ex = factory(target(sshd, verdict));
    try {
      let t0 = process.hrtime.bigint();
      await ex.execute("true", { timeoutMs: 30_000 });
      const first = since(t0);
      t0 = process.hrtime.bigint();
      await ex.execute("true", { timeoutMs: 30_000 });
      if (i >= 0) {
        firsts.push(first);
        seconds.push(since(t0));
      }
    } finally {
      await ex.close();
    }
  }
  const first = percentile(firsts, 50);
  const cmd = percentile(seconds, 50);
  return {
    verdict,
    samples: firsts.length,
    firstP50: first,
    firstP95: percentile(firsts, 95),
    cmdP50: cmd,
    setupP50: first - cmd,
  };
}

progress(NAME, "starting sshd");
const sshd = await startSshd({ instanceSecret: SECRET });
const rows: Row[] = [];
const data: Record<string, unknown> = {};
try {
  const ex = createSshExecutorFactory({ privateKey: sshd.privateKey, logger: silentLogger })(
    target(sshd, "verified"),
  );
  try {
    await ex.execute("true"); // connect outside the timed phases
    const seq = await throughput(ex, 1);
    progress(NAME, `sequential: ${seq.perSecond.toFixed(0)} commands/s, p50 ${ms(seq.p50)}`);
    data["sequential"] = seq;
    rows.push({
      benchmark: "SSH executor: sequential commands, one connection (OpenSSH sshd)",
      result: `${seq.perSecond.toFixed(0)} commands/s (p50 ${ms(seq.p50)}, p95 ${ms(seq.p95)})`,
      target: "",
      met: null,
      note: `\`true\` for ${PHASE_MS / 1000} s; each command is a new session channel and a shell forked by sshd`,
    });
    for (const c of CONCURRENCY) {
      if (signal.aborted) break;
      const r = await throughput(ex, c);
      progress(NAME, `${c} in flight: ${r.perSecond.toFixed(0)} commands/s, p50 ${ms(r.p50)}`);
      data[`concurrent${c}`] = r;
      rows.push({
        benchmark: `SSH executor: ${c} concurrent commands, one connection`,
        result: `${r.perSecond.toFixed(0)} commands/s (latency p50 ${ms(r.p50)}, p95 ${ms(r.p95)})${r.failures ? `, ${r.failures} failed` : ""}`,
        target: "",
        met: null,
      });
    }
  } finally {
    await ex.close();
  }
  for (const verdict of ["verified", "not-implemented"] as const) {
    if (signal.aborted) break;
    const c = await connects(sshd, verdict);
    progress(NAME, `connect (${verdict}): first command ${ms(c.firstP50)}, later ${ms(c.cmdP50)}`);
    data[`connect-${verdict}`] = c;
    rows.push({
      benchmark:
        verdict === "verified"
          ? "SSH executor: connection set-up (driver verifies the host key)"
          : "SSH executor: connection set-up (host key checked via the instance secret)",
      result: `${ms(c.setupP50)} (first command ${ms(c.firstP50)} p50, ${ms(c.firstP95)} p95, minus a later command's ${ms(c.cmdP50)})`,
      target: "",
      met: null,
      ...(verdict === "verified"
        ? {
            note: `${CONNECTS} fresh executors in turn: TCP connect, ed25519 key exchange and public-key auth`,
          }
        : { note: "adds the `cat` of /var/run/arvados-instance-secret on the new connection" }),
    });
  }
} finally {
  await sshd.stop();
}
emit({ name: NAME, interrupted: signal.aborted, rows, data });
