#!/usr/bin/env node
// ProcessAccounting.live() for processes the sweep found idle (LivePoller's `idle`): the shortcut
// (no counters read, no CPU split, no growth loop, the process's zero sample reused: nothing
// allocated) against the full path the same records took before (a new sample each), alternated
// in one process, CPU time (garbage collection included), each sweep's batch added to a metrics
// stage as the pipeline does. No kernel: N synthetic records of sleeping processes in a few
// workloads, each sweep live() of every one, endSweep, MetricsStage.add.
// Also prints the bytes each path allocates per process per sweep (V8's total_allocated_bytes),
// which is what the young generation's collections cost grows with.
// Runs itself again with node's flags as shipped (bin/node-flags: no TurboFan, where a for-of over
// a Map allocates per entry, see endSweep) unless they are already given.
// Usage: node bench/live/accounting-idle.mjs [processes=5000] [sweeps=200] [rounds=7]   (after a build)
import { ProcessAccounting } from '../../dist/plugins/taskstats/accounting.js';
import { newTaskRecord } from '../../dist/plugins/taskstats/record.js';
import { MetricsStage, buildResource } from '../../dist/src/metrics/index.js';
import { rerunUnderShippedFlags } from '../lib/shipped-flags.mjs';
import { getHeapStatistics } from 'node:v8';

rerunUnderShippedFlags();

const N = Number(process.argv[2] ?? 5000);
const SWEEPS = Number(process.argv[3] ?? 200);
const ROUNDS = Number(process.argv[4] ?? 7);
const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };

const recs = [];
const infos = [];
for (let i = 0; i < N; i++) {
  const r = newTaskRecord();
  r.pid = r.tgid = 1000 + i;
  r.comm = `w${i % 20}`;
  r.startTimeSec = 1_700_000_000 + (i % 100);
  r.cpuRunRealNs = 1e6 + i;
  r.cpuDelayCount = 10 + i;
  r.userTimeUs = 500;
  r.systemTimeUs = 500;
  r.voluntaryCtxSwitches = 20;
  r.minorFaults = 100;
  r.hiwaterRssKb = 4000;
  recs.push(r);
  infos.push({ cgroup: `/system.slice/s${i % 5}.service`, cmdline: `w${i % 20} --flag`, exePath: `/usr/bin/w${i % 20}` });
}

function run(perProcess, idle) {
  const acc = new ProcessAccounting({ perProcess, logger, telemetry });
  const stage = new MetricsStage({ seriesLimit: 100_000, endedSeriesTtlMs: 60_000, resource: buildResource({}), telemetry, logger });
  const out = [];
  for (let i = 0; i < N; i++) acc.live(recs[i], infos[i], 0, out, false); // first sight: full path
  acc.endSweep(0, out);
  out.length = 0;
  const a0 = getHeapStatistics().total_allocated_bytes;
  const c0 = process.cpuUsage();
  for (let s = 1; s <= SWEEPS; s++) {
    for (let i = 0; i < N; i++) acc.live(recs[i], infos[i], s, out, idle);
    acc.endSweep(s, out);
    stage.add(out);
    out.length = 0;
  }
  const c = process.cpuUsage(c0);
  const bytes = (getHeapStatistics().total_allocated_bytes - a0) / (SWEEPS * N);
  return { ns: ((c.user + c.system) * 1000) / (SWEEPS * N), bytes }; // per process
}

for (const perProcess of [false, true]) {
  const full = [];
  const fast = [];
  for (let r = 0; r < ROUNDS; r++) {
    full.push(run(perProcess, false));
    fast.push(run(perProcess, true));
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  const ns = (a) => med(a.map((r) => r.ns));
  const bytes = (a) => med(a.map((r) => r.bytes));
  console.log(
    `${perProcess ? 'per-process' : 'aggregate'} mode, ${N} idle processes: full path ${ns(full).toFixed(0)} ns and ${bytes(full).toFixed(0)} bytes ` +
      `per process, idle shortcut ${ns(fast).toFixed(0)} ns and ${bytes(fast).toFixed(0)} bytes = ${(ns(full) / ns(fast)).toFixed(2)}x ` +
      `(medians of ${ROUNDS} alternated rounds; node ${shipped.join(' ')})`,
  );
}
