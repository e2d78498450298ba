// Cloud-call rate: the daemon's decorated instance set (metrics, rate limit, default tags, tag
// filter) over the stub cloud, hit with a burst of creates, lists, tag updates and destroys.
// The stub records the moment each call reaches the "cloud"; we check that no one-second window
// holds more than MaxCloudOpsPerSecond of them.
import { silentLogger } from "@dispatch-cloud/arvados-types";
import {
  decorateInstanceSet,
  initCommandWithSecret,
  tagKeys,
  type Instance,
} from "@dispatch-cloud/cloud-driver-api";
import { createStubCloud } from "@dispatch-cloud/driver-stub/testing";
import { Registry } from "prom-client";
import { instanceTypes } from "./fixtures.js";
import { emit, maxInWindow, progress, stopSignal } from "./lib.js";

const NAME = "cloud-ops";
const MAX_OPS = 10;
const CREATES = 30;
const LISTS = 20;
const keys = tagKeys();
const SET = "zzzzz-gj3su-benchmark000000";

const signal = stopSignal(NAME);
const cloud = createStubCloud({ serveSsh: false });
const set = decorateInstanceSet(cloud.instanceSet, {
  registry: new Registry(),
  maxCloudOpsPerSecond: MAX_OPS,
  resourceTags: { Owner: "bench" },
  logger: silentLogger,
});
const type = instanceTypes(1)[0]!;
const filter = { [keys.instanceSetId]: SET };

const t0 = Date.now();
progress(
  NAME,
  `burst: ${CREATES} creates and ${LISTS} lists at once, MaxCloudOpsPerSecond=${MAX_OPS}`,
);
const creates = Array.from({ length: CREATES }, (_, i) =>
  set.create(
    {
      instanceType: type,
      imageId: "ami-bench",
      tags: { ...filter, [keys.instanceType]: type.Name, [keys.instanceSecret]: `s${i}` },
      initCommand: initCommandWithSecret(`s${i}`, ""),
      publicKey: null,
    },
    signal,
  ),
);
const lists = Array.from({ length: LISTS }, () => set.instances(filter, signal));
const settled = await Promise.allSettled([...creates, ...lists]);
const created = settled
  .slice(0, CREATES)
  .flatMap((r) => (r.status === "fulfilled" ? [r.value as Instance] : []));
progress(NAME, `${created.length} created; now tagging and destroying them all at once`);
const second = await Promise.allSettled([
  ...created.map((i) => i.setTags({ ...i.tags, [keys.idleBehavior]: "hold" }, signal)),
  ...created.map((i) => i.destroy(signal)),
]);
const elapsed = Date.now() - t0;
const failed = [...settled, ...second].filter((r) => r.status === "rejected").length;

const calls = cloud.calls();
const times = calls.map((c) => c.at);
const peak = maxInWindow(times, 1000);
const sorted = [...times].sort((a, b) => a - b);
const span = sorted.at(-1)! - sorted[0]!;
// The shortest time in which MAX_OPS + 1 calls reached the cloud, and the shortest gap.
let minSpan = Infinity;
for (let i = 0; i + MAX_OPS < sorted.length; i++)
  minSpan = Math.min(minSpan, sorted[i + MAX_OPS]! - sorted[i]!);
let minGap = Infinity;
for (let i = 1; i < sorted.length; i++) minGap = Math.min(minGap, sorted[i]! - sorted[i - 1]!);
// Calls after the first: the first goes at once, then one per 1/rate.
const rate = span > 0 ? ((calls.length - 1) * 1000) / span : Number.NaN;
await cloud.stop();
progress(
  NAME,
  `${calls.length} calls in ${(elapsed / 1000).toFixed(1)} s; busiest second ${peak}; mean ${rate.toFixed(2)}/s`,
);

emit({
  name: NAME,
  interrupted: signal.aborted,
  rows: [
    {
      benchmark: `Cloud-call rate under a burst (decorated stub instance set, MaxCloudOpsPerSecond=${MAX_OPS})`,
      result: `${rate.toFixed(2)} calls/s sustained; busiest 1 s window ${peak} calls (${calls.length} calls in ${(elapsed / 1000).toFixed(1)} s${failed ? `, ${failed} failed` : ""})`,
      target: `never above ${MAX_OPS}/s`,
      met: peak <= MAX_OPS && failed === 0,
      note: `shortest gap between calls ${minGap} ms, shortest time for ${MAX_OPS + 1} calls ${minSpan} ms (≥ 1000 ms keeps every 1 s window at ${MAX_OPS}); ${peak > MAX_OPS ? "the limiter spaces its releases 100 ms apart by its own clock readings, but its timer can fire a millisecond early and each call's trip from the limiter to the cloud varies by a few ms, so gaps of 97–99 ms occur and eleven calls can land inside one second; re-checking the time after the sleep and leaving a few ms of margin would close this. " : ""}${CREATES} creates + ${LISTS} lists at once, then ${CREATES} setTags + ${CREATES} destroys at once; call times as the stub cloud received them`,
    },
  ],
  data: {
    maxOpsPerSecond: MAX_OPS,
    calls: calls.length,
    peakPerSecond: peak,
    minGapMs: minGap,
    minSpanMs: minSpan,
    meanRate: rate,
    elapsedMs: elapsed,
    failed,
  },
});
