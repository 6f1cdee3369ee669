#!/usr/bin/env node
// Micro-benchmark of the metrics stage's hot path (MetricsStage.add), in ns per sample:
//  - identity: samples of one workload share one attributes object (what sources do), so the
//    series is found through the WeakMap keyed by the object;
//  - canonical key: every sample brings a new attributes object with the same content, so each
//    one pays for the sorted-key string and the Map lookup (what a per-sample-allocating source,
//    or a stage without the identity cache, would cost).
// Both run in the same process, interleaved, over pre-built samples (building them is not timed).
// Prints the ratio. Needs a build first (`npx tsc -p .`): it imports dist/.
//
// Usage: node bench/metrics-stage.mjs [workloads=300] [samplesPerRound=200000] [rounds=5]
import { MetricsStage, buildResource } from '../dist/src/metrics/index.js';
import { PROCESS_SCHEMA } from '../dist/plugins/taskstats/schema.js';

const workloads = Number(process.argv[2] ?? 300);
const perRound = Number(process.argv[3] ?? 200_000);
const rounds = Number(process.argv[4] ?? 5);

const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };
const newStage = () => new MetricsStage({ seriesLimit: 100_000, endedSeriesTtlMs: 60_000, resource: buildResource({}), telemetry, logger });

const size = PROCESS_SCHEMA.metrics.length;
const shared = [];
for (let w = 0; w < workloads; w++) {
  shared.push(
    Object.freeze({
      'process.executable.name': `comm-${w % 50}`,
      'process.linux.cgroup': `/kubepods.slice/kubepods-burstable.slice/pod-${Math.floor(w / 50)}.slice/cri-containerd-${w}.scope`,
      'k8s.pod.uid': `0000-${w}`,
      'k8s.namespace.name': `ns-${w % 7}`,
    }),
  );
}
function values(i) {
  const v = new Float64Array(size);
  v[0] = 0.001 * (i % 13);
  v[1] = 0.0005;
  v[2] = 4096;
  v[8] = 1024;
  return v;
}
const valuePool = Array.from({ length: 64 }, (_, i) => values(i));
function buildSamples(copyAttributes) {
  const batch = new Array(perRound);
  for (let i = 0; i < perRound; i++) {
    const a = shared[i % workloads];
    batch[i] = {
      schema: PROCESS_SCHEMA,
      attributes: copyAttributes ? { ...a } : a,
      values: valuePool[i & 63],
      final: false,
      timeMs: 1_700_000_000_000,
    };
  }
  return batch;
}

// CPU time of this process (not wall time): the machine is shared with other work, and CPU time
// is what the agent costs. Batches of 1000 like a receiver's drain.
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};
function timeAdd(stage, batches) {
  const t0 = cpuNs();
  for (const b of batches) stage.add(b);
  return (cpuNs() - t0) / perRound;
}
const chunk = (batch) => {
  const out = [];
  for (let i = 0; i < batch.length; i += 1000) out.push(batch.slice(i, i + 1000));
  return out;
};

const identityStage = newStage();
const keyStage = newStage();
const identity = [];
const keyed = [];
for (let r = 0; r < rounds + 1; r++) {
  const a = chunk(buildSamples(false));
  const b = chunk(buildSamples(true));
  const ti = timeAdd(identityStage, a);
  const tk = timeAdd(keyStage, b);
  if (r > 0) {
    identity.push(ti);
    keyed.push(tk);
  } // round 0 warms up the JIT
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const ni = median(identity);
const nk = median(keyed);
// both stages hold the same sums: the two paths find the same series
const ci = identityStage.collect(1).cumulative();
const ck = keyStage.collect(1).cumulative();
const total = (rm) => rm.scopeMetrics[0].metrics.find((m) => m.descriptor.name === 'process.disk.io').dataPoints.reduce((s, p) => s + p.value, 0);
if (total(ci) !== total(ck) || identityStage.size !== workloads || keyStage.size !== workloads) {
  console.error('metrics-stage bench: the two paths disagree', total(ci), total(ck), identityStage.size, keyStage.size);
  process.exit(1);
}
const ratio = nk / ni;
console.log(`metrics stage add(): ${workloads} workloads, ${size} values per sample, ${rounds} x ${perRound} samples`);
console.log(`  identity cache (shared attributes objects): ${ni.toFixed(0)} ns/sample (CPU)`);
console.log(`  canonical key (a new object per sample):    ${nk.toFixed(0)} ns/sample (CPU)`);
console.log(`  ratio: ${ratio.toFixed(2)}x`);
console.log(
  'BENCH_RESULT ' +
    JSON.stringify({
      name: 'metrics stage: canonical-key path / identity-cache path (ns per sample)',
      value: Number(ratio.toFixed(2)),
      unit: 'x',
      target: '>= 2',
      limit: '>= 1.2',
      pass: ratio >= 1.2,
      detail: `identity ${ni.toFixed(0)} ns/sample, canonical key ${nk.toFixed(0)} ns/sample`,
    }),
);
