// The cost of the workload view (issue 11), each feature on against off in the same run: two
// agents, one with the feature and one without, run at the same time on the same workload (per-
// exit costs here depend mostly on the exit rate and the machine's load, which both then share);
// the agent started first alternates from run to run, because the order is not neutral (measured:
// the agent started second costs 10-15% more, either way round). So runs come in pairs, one of
// each order, and a pair's ratio is the geometric mean of its two runs' ratios (an order bias b
// makes them t*b and t/b: the mean is t); the figure is the median over pairs:
//  1. exit storm (two fork loops, ~14,000 exits/s, the repository's config.yaml exporting to a
//     real VictoriaMetrics): the agent's CPU per exit with the exit histograms on / off.
//       target: <= 1.15x
//  2. live cycle with 5,000 sleeping processes spread over 100 cgroups (50 each): the agent's CPU
//     per collection cycle with cgroup reconciliation and pressure on / off.
//       target: <= 1.1x
// Each agent run also checks the feature did its work (histogram points, unaccounted series) so
// that "off" and "on" really differ.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent } from '../../dist/test/support/agent.js';
import { nodeCommandLineFlags } from '../../dist/src/v8-flags.js';
import { compileC, createCgroup, cgroup2Root, sleep, sleepers } from '../../dist/test/support/workload.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { log, median, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const root = new URL('../..', import.meta.url).pathname;
const STORM_SECONDS = Number(process.env.BENCH_STORM_SECONDS ?? 5);
// Pairs of runs (see above): an odd count is rounded up. Three pairs by default: with two, the
// spread between pairs (0.97-1.19x) crossed the live cycle's 1.1 limit in two full runs while the
// same code gave 1.03-1.07x run alone (docs/performance.md).
const RUNS = 2 * Math.ceil(Number(process.env.BENCH_WORKLOAD_RUNS ?? 6) / 2);
const PROCESSES = Number(process.env.BENCH_LIVE_PROCESSES ?? 5000);
const CGROUPS = Number(process.env.BENCH_WORKLOAD_CGROUPS ?? 100);
const INTERVAL_S = 2;
const CYCLES = Number(process.env.BENCH_WORKLOAD_CYCLES ?? 6);
const only = process.argv[2]; // 'storm' | 'live' | undefined (both)

/** Per pair of runs (off first, then on first): the geometric mean of their ratios; and the order bias. */
function pairs(ratios) {
  const out = { ratios: [], bias: [] };
  for (let i = 0; i + 1 < ratios.length; i += 2) {
    out.ratios.push(Math.sqrt(ratios[i] * ratios[i + 1]));
    out.bias.push(Math.sqrt(ratios[i] / ratios[i + 1]));
  }
  return out;
}
const fmtList = (xs) => xs.map((x) => x.toFixed(3)).join(', ');

const loopBin = compileC(readFileSync(join(root, 'bench/receiver/forkloop.c'), 'utf8'), 'forkloop');

function run(cmd, args, procs) {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

/** Both agents listen to the same storm at once: same exits, same rate, same machine load. */
/** Both agents, started in the order `onFirst` says. */
async function startBoth(start, onFirst) {
  if (onFirst) {
    const on = await start(true);
    return { off: await start(false), on };
  }
  const off = await start(false);
  return { off, on: await start(true) };
}

async function stormRun(vm, onFirst) {
  const start = (histograms) =>
    startAgent({
      config: benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: `${INTERVAL_S}s`, taskstats: { histograms: { enabled: histograms } } }),
    });
  const agents = await startBoth(start, onFirst);
  const cg = createCgroup('ts-bench-workload-storm');
  try {
    await sleep(1000);
    const before = {};
    for (const [k, a] of Object.entries(agents)) before[k] = { m: await a.metrics(), cpu: a.cpuUs() };
    const [x, y] = await Promise.all([run(loopBin, [String(STORM_SECONDS)], cg.procsFile), run(loopBin, [String(STORM_SECONDS)], cg.procsFile)]);
    const exits = Number(x) + Number(y) + 2;
    await sleep(1000);
    const r = { exits };
    for (const [k, a] of Object.entries(agents)) {
      const cpuUs = a.cpuUs() - before[k].cpu;
      const m = await a.metrics();
      const received = m.sum('taskstats_agent_receiver_exits_received_total') - before[k].m.sum('taskstats_agent_receiver_exits_received_total');
      r[k] = { cpuUs, received, perExitUs: cpuUs / Math.max(received, exits) };
    }
    await sleep(INTERVAL_S * 1000 + 500); // one more export
    // Both export to the same backend: histogram series exist only when some agent sends them.
    r.histogramSeries = (await vm.sumOfLast(`{__name__=~"process.linux.lifetime.*","process.linux.cgroup"="${cg.path}"}`)).series;
    for (const a of Object.values(agents)) await a.stop();
    return r;
  } finally {
    for (const a of Object.values(agents)) await a.kill();
    await cg.remove().catch(() => {});
  }
}

/** Both agents at once over the same cycles of the same 5,000 processes. */
async function liveRun(vm, onFirst) {
  const start = (reconcile) =>
    startAgent({
      config: benchAgentConfig({
        otlpMetricsUrl: vm.otlpMetricsUrl,
        collectionInterval: `${INTERVAL_S}s`,
        taskstats: { cgroups: { reconcile, pressure: reconcile } },
      }),
      nodeArgs: nodeCommandLineFlags(), // as shipped (bin/node-flags)
    });
  const agents = await startBoth(start, onFirst);
  try {
    const cycles = async (a) => (await a.metrics()).sum('taskstats_agent_pipeline_collections_total');
    await sleep(INTERVAL_S * 1000 * 2 + 200); // first sight of every process
    const before = {};
    for (const [k, a] of Object.entries(agents)) before[k] = { c: await cycles(a), cpu: a.cpuUs() };
    await sleep(INTERVAL_S * 1000 * CYCLES);
    const r = {};
    for (const [k, a] of Object.entries(agents)) {
      const cpuUs = a.cpuUs() - before[k].cpu;
      const n = (await cycles(a)) - before[k].c;
      const m = await a.metrics();
      r[k] = { cycleUs: cpuUs / n, cycles: n, reconciled: m.sum('taskstats_agent_receiver_cgroups_reconciled') };
    }
    for (const a of Object.values(agents)) await a.stop();
    return r;
  } finally {
    for (const a of Object.values(agents)) await a.kill();
  }
}

const vm = await startVictoriaMetrics();
try {
  if (only !== 'live') {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await stormRun(vm, i % 2 === 1);
      runs.push(r);
      log(
        `storm run ${i + 1} (${i % 2 === 1 ? 'on' : 'off'} started first): ${r.exits} exits by the loops; histograms off ${r.off.perExitUs.toFixed(2)} us, on ${r.on.perExitUs.toFixed(2)} us CPU per exit ` +
          `(${(r.on.perExitUs / r.off.perExitUs).toFixed(3)}x; received ${r.off.received} / ${r.on.received}); ${r.histogramSeries} lifetime series in VictoriaMetrics`,
      );
    }
    const p = pairs(runs.map((r) => r.on.perExitUs / r.off.perExitUs));
    const ratio = median(p.ratios);
    log(`storm pairs: ${fmtList(p.ratios)}x; order bias (second started / first): ${fmtList(p.bias)}`);
    result({
      name: 'exit storm: agent CPU per exit, exit histograms on / off (both agents on the same storm)',
      value: ratio,
      unit: 'x',
      target: '<= 1.15',
      limit: '<= 1.15',
      pass: ratio <= 1.15 && runs.every((r) => r.histogramSeries > 0),
      detail: `median of ${p.ratios.length} pairs of runs (${fmtList(p.ratios)}); on ${median(runs.map((r) => r.on.perExitUs)).toFixed(2)} us, off ${median(runs.map((r) => r.off.perExitUs)).toFixed(2)} us per exit`,
    });
  }

  if (only !== 'storm') {
    // 5,000 sleepers, moved 50 at a time into 100 cgroups (kubepods-style leaves).
    const procs = await sleepers(PROCESSES);
    const v2 = cgroup2Root();
    const parent = join(v2, `kubepods-bench-workload${process.pid}.slice`);
    mkdirSync(parent);
    const dirs = [];
    try {
      const pids = procs.pids();
      for (let c = 0; c < CGROUPS; c++) {
        const d = join(parent, `cri-containerd-${String(c).padStart(4, '0')}.scope`);
        mkdirSync(d);
        dirs.push(d);
      }
      pids.forEach((pid, i) => {
        try {
          writeFileSync(join(dirs[i % CGROUPS], 'cgroup.procs'), `${pid}\n`);
        } catch {
          /* exited */
        }
      });
      log(`${pids.length} sleeping processes in ${CGROUPS} cgroups under ${parent}`);
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await liveRun(vm, i % 2 === 1);
        runs.push(r);
        log(
          `live run ${i + 1} (${i % 2 === 1 ? 'on' : 'off'} started first): reconciliation off ${(r.off.cycleUs / 1000).toFixed(1)} ms, on ${(r.on.cycleUs / 1000).toFixed(1)} ms CPU per cycle ` +
            `(${(r.on.cycleUs / r.off.cycleUs).toFixed(3)}x; ${r.on.cycles} cycles; ${r.on.reconciled} cgroups read per cycle)`,
        );
      }
      const p = pairs(runs.map((r) => r.on.cycleUs / r.off.cycleUs));
      const ratio = median(p.ratios);
      log(`live pairs: ${fmtList(p.ratios)}x; order bias (second started / first): ${fmtList(p.bias)}`);
      result({
        name: `live cycle, ${PROCESSES} processes in ${CGROUPS} cgroups: agent CPU per cycle, cgroup reconciliation + pressure on / off (both agents at once)`,
        value: ratio,
        unit: 'x',
        target: '<= 1.1',
        limit: '<= 1.1',
        pass: ratio <= 1.1 && runs.every((r) => r.on.reconciled >= CGROUPS && r.off.reconciled === 0),
        detail: `median of ${p.ratios.length} pairs of runs (${fmtList(p.ratios)}); on ${(median(runs.map((r) => r.on.cycleUs)) / 1000).toFixed(1)} ms, off ${(median(runs.map((r) => r.off.cycleUs)) / 1000).toFixed(1)} ms per cycle`,
      });
    } finally {
      await procs.stop();
      for (const d of dirs) {
        for (let k = 0; k < 100; k++) {
          try {
            rmdirSync(d);
            break;
          } catch {
            await sleep(50);
          }
        }
      }
      try {
        rmdirSync(parent);
      } catch {
        /* busy: left for the next run's cleanup */
      }
    }
  }
} finally {
  await vm.stop();
}
