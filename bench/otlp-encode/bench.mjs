// The hand-written OTLP/protobuf metrics encoder (plugins/otlp/protobuf-metrics.ts) against the
// library it replaces (@opentelemetry/otlp-transformer's ProtobufMetricsSerializer), on the same
// ResourceMetrics: what the metrics stage builds for SERIES live processes of the taskstats process
// schema (33 metrics each), one sample per series per round as a live sweep gives. Alternated per
// round, CPU time of this process per encode; prints per-point costs and the ratio (median).
// The hard limit: the hand-written encoder is faster than the library (else it has no reason to be).
// Needs a build first (it imports dist/).
//
// Usage: node bench/otlp-encode/bench.mjs [SERIES=5000, 1000 with BENCH_QUICK=1] [ROUNDS=9]
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { MetricsStage, buildResource } from '../../dist/src/metrics/index.js';
import { PROCESS_SCHEMA } from '../../dist/plugins/taskstats/schema.js';
import { encodeMetricsRequest } from '../../dist/plugins/otlp/protobuf-metrics.js';
import { log, median, result } from '../lib/report.mjs';

const series = Number(process.argv[2] ?? (process.env.BENCH_QUICK === '1' ? 1000 : 5000));
const rounds = Number(process.argv[3] ?? 9);

const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };
const stage = new MetricsStage({ seriesLimit: series + 10, endedSeriesTtlMs: 300_000, resource: buildResource({}), telemetry, logger });
const size = PROCESS_SCHEMA.metrics.length;
const attributes = [];
for (let w = 0; w < series; w++) {
  // Shaped like a node's processes: pid, command, a container's cgroup.
  attributes.push(
    Object.freeze({
      'process.pid': 1000 + w,
      'process.executable.name': `cmd-${w % 300}`,
      'process.linux.cgroup': `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${Math.floor(w / 10)}.slice/cri-containerd-${w % 10}.scope`,
    }),
  );
}
function round(r) {
  const samples = [];
  for (let w = 0; w < series; w++) {
    const values = new Float64Array(size);
    for (let m = 0; m < size; m++) values[m] = ((w + m + r) % 7) * 1000 + m;
    samples.push({ schema: PROCESS_SCHEMA, attributes: attributes[w], values, final: false, timeMs: Date.now() });
  }
  for (let i = 0; i < samples.length; i += 1000) stage.add(samples.slice(i, i + 1000));
  return stage.collect(Date.now()).cumulative();
}
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const timed = (encode, rm) => {
  const t0 = cpuUs();
  const bytes = encode(rm);
  return { us: cpuUs() - t0, bytes: bytes.length };
};
const library = (rm) => ProtobufMetricsSerializer.serializeRequest(rm);

const lib = [];
const ours = [];
let points = 0;
let bytes = { library: 0, ours: 0 };
for (let r = 0; r < rounds + 1; r++) {
  const rm = round(r);
  points = 0;
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) points += m.dataPoints.length;
  // Alternate which goes first; round 0 warms both up (and fills the encoder's attribute cache,
  // as the agent's first export does).
  const [a, b] = r % 2 === 0 ? [timed(library, rm), timed(encodeMetricsRequest, rm)] : [null, null];
  const [d, c] = r % 2 === 1 ? [timed(encodeMetricsRequest, rm), timed(library, rm)] : [b, a];
  if (r === 0) continue;
  lib.push(c.us);
  ours.push(d.us);
  bytes = { library: c.bytes, ours: d.bytes };
}
const perPoint = (us) => ((us * 1000) / points).toFixed(0);
const ratio = median(lib) / median(ours);
log(
  `otlp-encode: ${series} series, ${points} points per request, ${(bytes.ours / 1e6).toFixed(1)} MB (library ${(bytes.library / 1e6).toFixed(1)} MB), ${rounds} rounds alternated`,
);
log(`  library ProtobufMetricsSerializer: median ${(median(lib) / 1000).toFixed(1)} ms per request, ${perPoint(median(lib))} ns per point`);
log(`  hand-written encodeMetricsRequest: median ${(median(ours) / 1000).toFixed(1)} ms per request, ${perPoint(median(ours))} ns per point`);
log(`  ratio library / hand-written: ${ratio.toFixed(2)}x`);
result({
  name: `otlp-encode: library / hand-written CPU per request, ${series} series`,
  value: Number(ratio.toFixed(2)),
  unit: 'x',
  target: '>= 3',
  limit: '> 1',
  pass: ratio > 1,
  detail: `${perPoint(median(lib))} vs ${perPoint(median(ours))} ns per point, ${points} points`,
});
