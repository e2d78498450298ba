// Instance type selection: chooseInstanceTypes for many containers against 200 configured
// types, as the queue does once per new container.
import { chooseInstanceTypes, sortTypes } from "@dispatch-cloud/container-queue";
import { containerRequests, instanceTypes, selectionDefaults } from "./fixtures.js";
import { emit, percentile, progress, since, stopSignal } from "./lib.js";

const NAME = "selection";
const TYPES = 200;
const CONTAINERS = 20_000;
const BATCH = 1_000;
const ROUNDS = 50;
const TARGET_US = 50;

const signal = stopSignal(NAME);
const types = sortTypes(instanceTypes(TYPES));
const requests = containerRequests(CONTAINERS, 7);
progress(NAME, `${TYPES} types, ${CONTAINERS} containers, ${ROUNDS} rounds`);

// Warm-up, so the JIT has compiled the hot path before we time it.
let satisfiable = 0;
let chosen = 0;
for (const r of requests) {
  const s = chooseInstanceTypes(r, selectionDefaults, types);
  if (s.ok) {
    satisfiable++;
    chosen += s.types.length;
  }
}

const perContainerUs: number[] = [];
let sink = 0;
for (let round = 0; round < ROUNDS && !signal.aborted; round++) {
  for (let b = 0; b < CONTAINERS; b += BATCH) {
    const t0 = process.hrtime.bigint();
    for (let i = b; i < b + BATCH; i++) {
      const s = chooseInstanceTypes(requests[i]!, selectionDefaults, types);
      sink += s.ok ? s.types.length : 0;
    }
    perContainerUs.push((since(t0) * 1000) / BATCH);
  }
  progress(
    NAME,
    `round ${round + 1}: median so far ${percentile(perContainerUs, 50).toFixed(2)} µs`,
  );
}

const p50 = percentile(perContainerUs, 50);
const p95 = percentile(perContainerUs, 95);
progress(NAME, `p50 ${p50.toFixed(2)} µs, p95 ${p95.toFixed(2)} µs per container (sink ${sink})`);
emit({
  name: NAME,
  interrupted: signal.aborted,
  rows: [
    {
      benchmark: `Instance type selection, ${TYPES} types (chooseInstanceTypes)`,
      result: `${p50.toFixed(2)} µs per container (p50 of ${BATCH}-container batches; p95 ${p95.toFixed(2)} µs)`,
      target: `< ${TARGET_US} µs`,
      met: p50 < TARGET_US,
      note: `${CONTAINERS} varied requests (${((satisfiable / CONTAINERS) * 100).toFixed(0)}% satisfiable, ${(chosen / Math.max(1, satisfiable)).toFixed(1)} eligible types on average), resource computation included, types sorted once`,
    },
  ],
  data: {
    types: TYPES,
    containers: CONTAINERS,
    p50Us: p50,
    p95Us: p95,
    satisfiable,
    batches: perContainerUs.length,
  },
});
