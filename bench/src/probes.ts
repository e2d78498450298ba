// Probe rate and memory: a WorkerPool adopting 1,000 stub VMs and probing them continuously.
// By default every VM is an in-process ssh2 server and the pool reaches it through the real
// SSH executor (one live connection per VM, as in production); BENCH_PROBE_EXECUTOR=inprocess
// uses the stub's in-process executor instead. Probe launches are timed where the pool's
// commands leave it, and checked against MaxProbesPerSecond in every one-second window.
import { instanceSetId, systemClock, type InstanceType } from "@dispatch-cloud/arvados-types";
import {
  createTags,
  generateEd25519KeyPair,
  initCommandWithSecret,
  tagKeys,
} from "@dispatch-cloud/cloud-driver-api";
import { createStubCloud, inProcessExecutorFactory } from "@dispatch-cloud/driver-stub/testing";
import { createSshExecutorFactory } from "@dispatch-cloud/ssh-executor";
import { WorkerPool, type ExecutorFactory } from "@dispatch-cloud/worker-pool";
import { Registry } from "prom-client";
import { instanceTypes } from "./fixtures.js";
import {
  countingLogger,
  emit,
  maxInWindow,
  mib,
  progress,
  sleep,
  stopSignal,
  type Row,
} from "./lib.js";

const NAME = "probes";
const VMS = Number(process.env["BENCH_VMS"] ?? 1000);
const MAX_PROBES = 100;
const RUN_MS = 30_000;
const SET = "zzzzz-gj3su-benchmark000000";
const BOOT_PROBE = "test -d /";
const mode = process.env["BENCH_PROBE_EXECUTOR"] === "inprocess" ? "inprocess" : "ssh";

const signal = stopSignal(NAME);
const keys = tagKeys();
const key = generateEd25519KeyPair("dispatcher");
const types = instanceTypes(10);
const typeMap: Record<string, InstanceType> = Object.fromEntries(types.map((t) => [t.Name, t]));

const rss0 = process.memoryUsage().rss;
const cloud = createStubCloud({
  serveSsh: mode === "ssh",
  // Containers never start here; the VMs only answer probes.
  parameters: { bootDelayMs: 0, sharedHostKey: true },
});

progress(NAME, `creating ${VMS} stub VMs (${mode === "ssh" ? "each an ssh2 server" : "no SSH"})`);
for (let i = 0; i < VMS && !signal.aborted; i += 50) {
  await Promise.all(
    Array.from({ length: Math.min(50, VMS - i) }, (_, j) => {
      const t = types[(i + j) % types.length]!;
      const secret = `secret${i + j}`;
      return cloud.instanceSet.create({
        instanceType: t,
        imageId: "img-bench",
        tags: createTags(keys, SET, t, secret),
        initCommand: initCommandWithSecret(secret, ""),
        publicKey: key.publicKey,
      });
    }),
  );
}
const rssVms = process.memoryUsage().rss;
progress(NAME, `VMs up; RSS ${mib(rssVms)} (was ${mib(rss0)})`);

// Every command the pool sends, with when it left and on which VM.
type Kind = "boot" | "list" | "other";
const launches: number[] = [];
const commandTimes: number[] = [];
let failures = 0;
let stopping = false;
const lastKind = new Map<string, Kind>();
const kindOf = (cmd: string): Kind =>
  cmd.includes(BOOT_PROBE) ? "boot" : cmd.includes("--list") ? "list" : "other";

let inner: ExecutorFactory;
if (mode === "ssh") {
  inner = createSshExecutorFactory({
    privateKey: key.privateKey,
    logger: countingLogger(),
    connectTimeoutMs: 60_000,
  });
} else {
  inner = inProcessExecutorFactory(cloud);
}
const factory: ExecutorFactory = (target) => {
  const ex = inner(target);
  let addr = target.address;
  return {
    async execute(command, options) {
      const now = Date.now();
      const kind = kindOf(command);
      // A probe starts with the boot probe, or with --list when the VM is known booted.
      if (kind === "boot" || (kind === "list" && lastKind.get(addr) !== "boot")) launches.push(now);
      lastKind.set(addr, kind);
      commandTimes.push(now);
      try {
        return await ex.execute(command, options);
      } catch (err) {
        // Commands cut off by pool.stop() at the end are not failures of the run.
        if (!stopping) failures++;
        throw err;
      }
    },
    setTarget(t) {
      addr = t.address;
      ex.setTarget(t);
    },
    close: () => ex.close(),
  };
};

const logger = countingLogger();
const pool = new WorkerPool({
  instanceSet: cloud.instanceSet,
  executorFactory: factory,
  clock: systemClock,
  logger,
  registry: new Registry(),
  config: {
    instanceSetId: instanceSetId(SET),
    clusterId: "zzzzz",
    instanceTypes: typeMap,
    imageId: "img-bench",
    bootProbeCommand: BOOT_PROBE,
    deployRunnerBinary: "",
    publicKey: key.publicKey,
    maxProbesPerSecond: MAX_PROBES,
    probeIntervalMs: 1_000,
    maxInstances: 0,
    apiHost: "127.0.0.1:1",
    apiInsecure: true,
    systemRootToken: "bench-token",
    localKeepBlobBuffersPerVcpu: 0,
    driver: "stub",
  },
});

const t0 = Date.now();
pool.start();
progress(
  NAME,
  `pool started: MaxProbesPerSecond=${MAX_PROBES}, ProbeInterval=1s, for ${RUN_MS / 1000} s`,
);
let peakRss = 0;
const samples: { at: number; rss: number; idle: number; launches: number }[] = [];
while (Date.now() - t0 < RUN_MS && !signal.aborted) {
  await sleep(2_000, signal);
  const rss = process.memoryUsage().rss;
  peakRss = Math.max(peakRss, rss);
  const idle = pool.instances().filter((v) => v.worker_state === "idle").length;
  samples.push({ at: Date.now() - t0, rss, idle, launches: launches.length });
  progress(
    NAME,
    `${launches.length} probes launched, ${idle}/${VMS} idle, RSS ${mib(rss)}, ${logger.warnings} warnings`,
  );
}
const elapsed = Date.now() - t0;
const warnings = logger.warnings;
const errors = logger.errors;
stopping = true;
await pool.stop();
await cloud.stop();

const peak = maxInWindow(launches, 1000);
// The shortest time in which MAX_PROBES + 1 probes started (≥ 1000 ms keeps every window at the limit).
const sortedLaunches = [...launches].sort((a, b) => a - b);
let minSpan = Infinity;
for (let i = 0; i + MAX_PROBES < sortedLaunches.length; i++) {
  minSpan = Math.min(minSpan, sortedLaunches[i + MAX_PROBES]! - sortedLaunches[i]!);
}
// The steady rate: launches after the first second, over the rest of the run.
const steady = launches.filter((t) => t - t0 >= 1000).length / ((elapsed - 1000) / 1000);
const idleAtEnd = samples.at(-1)?.idle ?? 0;
const how =
  mode === "ssh"
    ? "real SSH executor over one live ssh2 connection per VM (both ends in this process, one shared host key)"
    : "the stub's in-process executor (no SSH)";
progress(NAME, `done: peak ${peak}/s, steady ${steady.toFixed(1)}/s, peak RSS ${mib(peakRss)}`);

const rows: Row[] = [
  {
    benchmark: `Probe rate, WorkerPool over ${VMS} stub VMs (MaxProbesPerSecond=${MAX_PROBES})`,
    result: `busiest 1 s window ${peak} probe launches; ${steady.toFixed(1)}/s sustained over ${(elapsed / 1000).toFixed(0)} s; ${idleAtEnd}/${VMS} workers in service at the end`,
    target: `never above ${MAX_PROBES}/s`,
    met: peak <= MAX_PROBES,
    note: `${how}; shortest time for ${MAX_PROBES + 1} probe starts ${minSpan} ms${peak > MAX_PROBES ? ` — the pool spaces launches ${1000 / MAX_PROBES} ms apart by its own clock readings (whole milliseconds, timers that may fire early) and each probe's first command leaves it after a variable number of async steps, so a few gaps come out short and one more probe than the limit fits in a second` : ""}; ${commandTimes.length} commands sent, ${failures} failed, ${warnings} warnings and ${errors} errors logged before the pool was stopped`,
  },
  {
    benchmark: `Resident memory, WorkerPool with ${VMS} adopted VMs`,
    result: `peak RSS ${mib(peakRss)} (process ${mib(rss0)} at start, ${mib(rssVms)} with the ${VMS} stub VMs before the pool)`,
    target: "daemon < 400 MB",
    met: peakRss < 400 * 2 ** 20,
    note: "pool, executors and the stub's VMs share one process, so this over-counts the pool; no queue or scheduler (the daemon target also includes 5,000 queued containers)",
  },
];
emit({
  name: NAME,
  interrupted: signal.aborted,
  rows,
  data: {
    mode,
    vms: VMS,
    maxProbesPerSecond: MAX_PROBES,
    peakPerSecond: peak,
    minSpanMs: minSpan,
    steady,
    rss0,
    rssVms,
    peakRss,
    samples,
    failures,
    warnings,
    errors,
    lastLogs: logger.last,
  },
});
