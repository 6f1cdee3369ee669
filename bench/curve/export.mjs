// Export cost per series, no kernel: the host's metrics stage and the real otlp exporter (the
// agent's own code, in this process) sending to a real VictoriaMetrics, for SERIES workloads of the
// taskstats process schema (33 metrics each, what the live sweep produces per workload).
// Per round: one sample per series (as a live sweep gives), collect, build the cumulative
// ResourceMetrics, encode and send; CPU of this process (process.cpuUsage) per step, per series.
// Prints one JSON line: {"series":N,"rounds":[...],"heapPerSeriesB":...}.
//
// The exporter's defaults otherwise: a collection goes as requests of sending_queue.batch.max_size
// points (BATCH_MAX_SIZE=N sets it, 0 for one request per collection, to compare).
// Usage: node bench/curve/export.mjs SERIES [ROUNDS=4] OTLP_METRICS_URL
import { MetricsStage, buildResource } from '../../dist/src/metrics/index.js';
import { PROCESS_SCHEMA } from '../../dist/plugins/taskstats/schema.js';
import { otlpExporterFactory } from '../../dist/plugins/otlp/factory.js';
import { recordingContext } from '../../dist/plugins/otlp/testing.js';

const series = Number(process.argv[2]);
const rounds = Number(process.argv[3] ?? 4);
const url = process.argv[4];

const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };
const stage = new MetricsStage({ seriesLimit: series + 10, endedSeriesTtlMs: 300_000, resource: buildResource({}), telemetry, logger });
const ctx = recordingContext('otlp');
// A send of 50,000 series takes longer than the default 10 s timeout on this VM: the cost is
// what is measured here, so the timeout is out of the way (the live curve shows the default).
const exporter = await otlpExporterFactory.create(ctx, {
  metrics_endpoint: url,
  timeout: 300_000,
  retry_on_failure: { enabled: false },
  sending_queue: { enabled: false, ...(process.env.BATCH_MAX_SIZE ? { batch: { max_size: Number(process.env.BATCH_MAX_SIZE) } } : {}) },
});
await exporter.start();

const size = PROCESS_SCHEMA.metrics.length;
const attributes = [];
for (let w = 0; w < series; w++) {
  // Shaped like a node's workloads: a command name within a container's cgroup.
  attributes.push(
    Object.freeze({
      'process.executable.name': `cmd-${w}`,
      'process.linux.cgroup': `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${Math.floor(w / 10)}.slice/cri-containerd-${w % 10}.scope`,
    }),
  );
}
function batch(round) {
  const out = [];
  for (let w = 0; w < series; w++) {
    const values = new Float64Array(size);
    for (let m = 0; m < size; m++) values[m] = (w + m + round) % 7;
    out.push({ schema: PROCESS_SCHEMA, attributes: attributes[w], values, final: false, timeMs: Date.now() });
  }
  return out;
}
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

globalThis.gc?.(); // run with --expose-gc: heap per series after collections
const heap0 = process.memoryUsage().heapUsed;
const out = [];
for (let r = 0; r < rounds; r++) {
  const samples = batch(r);
  const t0 = cpuUs();
  for (let i = 0; i < samples.length; i += 1000) stage.add(samples.slice(i, i + 1000));
  const t1 = cpuUs();
  const rm = stage.collect(Date.now()).cumulative();
  const t2 = cpuUs();
  const w0 = Date.now();
  await exporter.export(rm);
  const wallMs = Date.now() - w0;
  const t3 = cpuUs();
  out.push({ addUs: t1 - t0, collectUs: t2 - t1, exportUs: t3 - t2, exportWallMs: wallMs });
}
globalThis.gc?.();
const heapPerSeriesB = (process.memoryUsage().heapUsed - heap0) / series;
const stats = exporter.stats;
await exporter.shutdown();
console.log(JSON.stringify({ series, points: series * size, rounds: out, heapPerSeriesB, stats }));
