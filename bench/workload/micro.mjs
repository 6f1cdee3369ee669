#!/usr/bin/env node
// In-process micro-benchmark of what the exit distributions add to the agent's exit path, in the
// same process, interleaved (histograms on / off), CPU time of this process:
//  1. per exit: ProcessAccounting.exit() + MetricsStage.add() of its final sample;
//  2. per collection, as the default pipeline (config.yaml: otlp + debug) does it:
//     MetricsStage.collect(), cumulative() through the OTLP protobuf serializer (the SDK's own),
//     and delta() through the debug exporter's summary, with the series those exits made.
// Exits are spread over `workloads` (comm, cgroup) pairs with lifetimes, CPU and RSS drawn from
// wide ranges, so the histograms have the bucket counts a real host gives them.
// Needs a build first (it imports dist/).
//
// Usage: node bench/workload/micro.mjs [workloads=200] [exitsPerRound=100000] [rounds=5]
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { MetricsStage, buildResource } from '../../dist/src/metrics/index.js';
import { ProcessAccounting } from '../../dist/plugins/taskstats/accounting.js';
import { defaultExitDistributionsConfig } from '../../dist/plugins/taskstats/exit-distributions.js';
import { newTaskRecord } from '../../dist/plugins/taskstats/record.js';
import { newSummaryState, summarize } from '../../dist/plugins/debug/exporter.js';
import { defaultDebugConfig } from '../../dist/plugins/debug/config.js';
import { rerunUnderShippedFlags } from '../lib/shipped-flags.mjs';

rerunUnderShippedFlags();

const workloads = Number(process.argv[2] ?? 200);
const perRound = Number(process.argv[3] ?? 100_000);
const rounds = Number(process.argv[4] ?? 5);

const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };
const newStage = () => new MetricsStage({ seriesLimit: 100_000, endedSeriesTtlMs: 60_000, resource: buildResource({}), telemetry, logger });
const newAccounting = (on) =>
  new ProcessAccounting({ perProcess: false, exitDistributions: { ...defaultExitDistributionsConfig(), enabled: on }, logger, telemetry });

// A deterministic pseudo-random stream (xorshift32).
let seed = 0x9e3779b9;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};
const records = Array.from({ length: 4096 }, (_, i) => {
  const r = newTaskRecord();
  r.kind = 'exit';
  r.version = 16;
  r.flags = 0x20;
  r.comm = `comm-${(i % workloads) % 40}`;
  r.cgroup = `/kubepods.slice/pod-${(i % workloads) % 37}.slice/cri-containerd-${i % workloads}.scope`;
  r.startTimeSec = 1_700_000_000;
  r.elapsedUs = r.groupElapsedUs = Math.round(10 ** (2 + rnd() * 6)); // 100 us .. 100 s
  r.userUs = Math.round(r.elapsedUs * rnd() * 0.3);
  r.systemUs = Math.round(r.elapsedUs * rnd() * 0.1);
  r.cpuRunVirtualNs = (r.userUs + r.systemUs) * 1000 + 1234;
  r.cpuRunRealNs = (r.userUs + r.systemUs) * 1000;
  r.hiwaterRssKb = Math.round(10 ** (2.5 + rnd() * 3));
  r.cpuDelayTotalNs = Math.round(10 ** (3 + rnd() * 5));
  r.cpuDelayCount = 3;
  r.minorFaults = 100;
  return r;
});

const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

const serializer = ProtobufMetricsSerializer;
let pid = 1000;
const now = Date.now();
function exitRound(acc, stage) {
  const out = [];
  const t0 = cpuNs();
  for (let i = 0; i < perRound; i++) {
    const r = records[i & 4095];
    r.pid = r.tgid = pid = pid >= 4_000_000 ? 1000 : pid + 1;
    acc.exit(r, null, { cgroup: r.cgroup, exePath: '', cmdline: '' }, now, out);
    if (out.length >= 1000) {
      stage.add(out);
      out.length = 0;
    }
  }
  stage.add(out);
  return (cpuNs() - t0) / perRound;
}
let bytes = 0;
const debugConfig = defaultDebugConfig();
function exportRound(stage, summary) {
  const t0 = cpuNs();
  const c = stage.collect(now);
  bytes = serializer.serializeRequest(c.cumulative()).length;
  const t1 = cpuNs();
  summarize(c.delta(), debugConfig, summary);
  return [(t1 - t0) / 1e6, (cpuNs() - t1) / 1e6];
}

const state = {
  off: { acc: newAccounting(false), stage: newStage(), summary: newSummaryState() },
  on: { acc: newAccounting(true), stage: newStage(), summary: newSummaryState() },
};
const res = { off: { exit: [], exp: [], debug: [] }, on: { exit: [], exp: [], debug: [] } };
for (let r = 0; r < rounds + 1; r++) {
  for (const k of r % 2 ? ['off', 'on'] : ['on', 'off']) {
    const s = state[k];
    const e = exitRound(s.acc, s.stage);
    const [x, d] = exportRound(s.stage, s.summary);
    if (r > 0) {
      res[k].exit.push(e);
      res[k].exp.push(x);
      res[k].debug.push(d);
      res[k].bytes = bytes;
    }
  }
}
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
for (const k of ['off', 'on']) {
  const r = res[k];
  console.log(
    `${k.padEnd(3)}: ${med(r.exit).toFixed(0)} ns per exit (accounting + stage); per collection ${med(r.exp).toFixed(2)} ms collect + OTLP ` +
      `(${r.bytes} bytes, ${state[k].stage.size} series), ${med(r.debug).toFixed(2)} ms debug summary`,
  );
}
console.log(
  `histograms on / off: per exit ${(med(res.on.exit) / med(res.off.exit)).toFixed(3)}x (+${(med(res.on.exit) - med(res.off.exit)).toFixed(0)} ns); ` +
    `per collection +${(med(res.on.exp) - med(res.off.exp)).toFixed(2)} ms OTLP, +${(med(res.on.debug) - med(res.off.debug)).toFixed(2)} ms debug`,
);
