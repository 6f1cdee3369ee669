#!/usr/bin/env node
// ProcessAccounting.live() for processes the sweep found idle (LivePoller's `idle`): the shortcut
// (no counters read, no CPU split, no growth loop, the process's zero sample reused: nothing
// allocated) against the full path the same records took before (a new sample each), alternated
// in one process, CPU time (garbage collection included), each sweep's batch added to a metrics
// stage as the pipeline does. No kernel: N synthetic records of sleeping processes in a few
// workloads, each sweep live() of every one, endSweep, MetricsStage.add.
// Usage: node bench/live/accounting-idle.mjs [processes=5000] [sweeps=200] [rounds=7]   (after a build)
import { ProcessAccounting } from '../../dist/plugins/taskstats/accounting.js';
import { newTaskRecord } from '../../dist/plugins/taskstats/record.js';
import { MetricsStage, buildResource } from '../../dist/src/metrics/index.js';

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
  const c0 = process.cpuUsage();
  for (let s = 1; s <= SWEEPS; s++) {
    for (let i = 0; i < N; i++) acc.live(recs[i], infos[i], s, out, idle);
    acc.endSweep(s, out);
    stage.add(out);
    out.length = 0;
  }
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / (SWEEPS * N); // ns per process
}

for (const perProcess of [false, true]) {
  const full = [];
  const fast = [];
  for (let r = 0; r < ROUNDS; r++) {
    full.push(run(perProcess, false));
    fast.push(run(perProcess, true));
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  console.log(
    `${perProcess ? 'per-process' : 'aggregate'} mode, ${N} idle processes: full path ${med(full).toFixed(0)} ns per process, ` +
      `idle shortcut ${med(fast).toFixed(0)} ns = ${(med(full) / med(fast)).toFixed(2)}x (medians of ${ROUNDS} alternated rounds)`,
  );
}
