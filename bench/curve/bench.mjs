// The curve: how the agent's live cycle grows with the processes on a node, and its export with
// the series it holds.
//  1. Live cycle at 1,000, 5,000, 20,000 and 50,000 sleeping processes (crowd.c; one thread each,
//     plus a point of 5,000 processes x 4 threads): the agent as shipped, the repository's default
//     pipeline exporting to a real VictoriaMetrics; agent CPU per cycle and per process, RSS; and
//     prometheus-process-exporter's CPU per scrape of the same host, side by side in the same
//     window (the baseline of issue 15's "at least 60x cheaper").
//  2. Export cost per series at 1,000, 10,000 and 50,000 series (export.mjs: the metrics stage and
//     the otlp exporter, no kernel, sending to a sink).
//  3. A big node meeting the default series limit: 50,000 processes with 50,000 command names,
//     default series_limit (10,000): what VictoriaMetrics holds, what the agent logs and counts,
//     and what a cycle costs against the same processes under one name (point 1).
// Each point runs holding BENCH_LOCK (bench/lib/lock.mjs) and releases it between points.
// Writes .cache/bench/curve.json and a plot (plot.mjs): docs/performance-curve.svg on a full run,
// .cache/bench/curve.svg with --quick (BENCH_QUICK=1: 1,000 and 5,000 processes, 1,000 and 10,000
// series, no big node).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { scrape, startAgent } from '../../dist/test/support/agent.js';
import { compileC, sleep } from '../../dist/test/support/workload.js';
import { nodeCommandLineFlags } from '../../dist/src/v8-flags.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { withLock } from '../lib/lock.mjs';
import { processExporterVersion, startProcessExporter } from '../lib/process-exporter.mjs';
import { log, median, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';
import { renderSvg } from './plot.mjs';

const root = new URL('../..', import.meta.url).pathname;
const here = join(root, 'bench', 'curve');
const QUICK = process.env.BENCH_QUICK === '1' || process.argv.includes('--quick');
const POINTS = QUICK
  ? [
      { procs: 1000, threads: 1 },
      { procs: 5000, threads: 1 },
    ]
  : [
      { procs: 1000, threads: 1 },
      { procs: 5000, threads: 1 },
      { procs: 5000, threads: 4 },
      { procs: 20000, threads: 1 },
      { procs: 50000, threads: 1 },
    ];
const SERIES = QUICK ? [1000, 10000] : [1000, 10000, 50000];
const BIG_NODE = !QUICK;
// BENCH_CURVE_PARTS=live,export,big (default: all): a part alone, e.g. to repeat one.
const PARTS = (process.env.BENCH_CURVE_PARTS ?? 'live,export,big').split(',');
const INTERVAL_S = 5;
const MIN_CYCLES = 5;
const NAME = 'cvsleep';

const crowdBin = compileC(readFileSync(join(here, 'crowd.c'), 'utf8'), 'crowd', ['-pthread']);
// The kernel's own cost of a live cycle (bench/live/get-floor.c): list /proc, one GET by TGID per
// process, batched, nothing parsed. No agent that lists /proc and queries every process spends less.
const floorBin = compileC(readFileSync(join(root, 'bench', 'live', 'get-floor.c'), 'utf8'), 'get-floor');
/** CPU per cycle (ms) of the C floor over the host as it is now; median of 3 runs of 3 sweeps. */
function kernelFloorMs() {
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const [getUs, , , listUs, np] = execFileSync(floorBin, ['3', '64'], { encoding: 'utf8' }).trim().split(' ').map(Number);
    runs.push(((getUs + listUs) * np) / 1000);
  }
  return median(runs);
}

const loadNow = () => Number(loadavg()[0].toFixed(2));
const hostProcesses = () => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length;
/** Threads on the host: the total of /proc/loadavg's "running/total" field (every task). */
const hostThreads = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[3].split('/')[1]);
const memAvailableKb = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]);

/** Raise kernel.pid_max for the big points (32,768 by default here); restored at the end. */
const PID_MAX = '/proc/sys/kernel/pid_max';
const pidMax0 = readFileSync(PID_MAX, 'utf8').trim();
function ensurePids(n) {
  const need = hostProcesses() + n * 2 + 20_000;
  if (Number(readFileSync(PID_MAX, 'utf8')) < need) {
    writeFileSync(PID_MAX, String(Math.min(4_194_304, Math.max(need, 131_072))));
    log(`kernel.pid_max raised to ${readFileSync(PID_MAX, 'utf8').trim()} (was ${pidMax0})`);
  }
  const threadsMax = Number(readFileSync('/proc/sys/kernel/threads-max', 'utf8'));
  if (threadsMax < hostThreads() + n * 2) throw new Error(`kernel.threads-max ${threadsMax} is too small for ${n} more threads`);
}
function restorePids() {
  if (readFileSync(PID_MAX, 'utf8').trim() !== pidMax0) writeFileSync(PID_MAX, pidMax0);
}

/** PROCS children of THREADS threads each, named NAME (or NAME0..NAME(names-1)). */
async function crowd(procs, threads, names = 1, prefix = NAME) {
  ensurePids(procs * threads);
  const child = spawn(crowdBin, [String(procs), String(threads), String(names), prefix], { stdio: ['pipe', 'pipe', 'inherit'] });
  const t0 = Date.now();
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`crowd exited early (${code})`)));
  });
  return {
    startS: (Date.now() - t0) / 1000,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin.end();
        setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
      }),
  };
}

// The agent's own endpoint answers late on a big node (50,000 workloads: the default 5 s of
// agent.metrics() timed out), so scrape it with a longer timeout.
const agentMetrics = (agent) => scrape(`${agent.baseUrl}/metrics`, 120_000);
const selfMetric = async (agent, name) => (await agentMetrics(agent)).sum(name);
const collections = (agent) => selfMetric(agent, 'taskstats_agent_pipeline_collections_total');

/**
 * Start the agent as shipped on the current host, wait for first sight, then measure a window of
 * at least MIN_CYCLES cycles, with process-exporter scraped `scrapes` times in the same window.
 */
async function measureAgent(vm, { scrapes, seriesLimit } = {}) {
  const config = benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: `${INTERVAL_S}s`, seriesLimit });
  // As shipped: bin/taskstats-agent and the image's ENTRYPOINT run node with the flags of bin/node-flags
  // (BENCH_AGENT_NODE_ARGS: more flags after them, e.g. --cpu-prof to profile a point).
  const extra = (process.env.BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const agent = await startAgent({ config, nodeArgs: [...nodeCommandLineFlags(), ...extra], readyTimeoutMs: 120_000 });
  let pe;
  try {
    // First sight (identity and cgroup of every process from /proc): two completed cycles.
    const cpu0 = agent.cpuUs();
    const k0 = await collections(agent);
    while ((await collections(agent)) < k0 + 2) await sleep(500);
    const firstSightUs = agent.cpuUs() - cpu0;
    if (scrapes > 0) {
      pe = await startProcessExporter([], { listenTimeoutMs: 300_000 });
      await pe.scrape(600_000); // its first scrape builds its tables
    }
    const c1 = agent.cpuUs();
    const k1 = await collections(agent);
    const sent1 = await selfMetric(agent, 'taskstats_agent_exporter_sent_points_total');
    const peUs = [];
    for (let i = 0; i < scrapes; i++) {
      const before = pe.cpuUs();
      await pe.scrape(600_000);
      await sleep(300); // work after the response (GC) belongs to this scrape
      peUs.push(pe.cpuUs() - before);
    }
    if (pe) await pe.stop();
    pe = undefined;
    // A scrape of the agent's own endpoint costs it CPU (its self-telemetry rendered as text):
    // polling it every 500 ms added ten scrapes to each measured cycle. Sleep through the window,
    // scrape at its end.
    const k2 = await collections(agent);
    if (k2 < k1 + MIN_CYCLES) await sleep((k1 + MIN_CYCLES - k2) * INTERVAL_S * 1000 - 1000);
    while ((await collections(agent)) < k1 + MIN_CYCLES) await sleep(1000);
    const c2 = agent.cpuUs();
    const snap = await agentMetrics(agent);
    const cycles = snap.sum('taskstats_agent_pipeline_collections_total') - k1;
    const cycleUs = (c2 - c1) / cycles;
    const out = {
      firstSightMs: firstSightUs / 1000,
      cycles,
      cycleMs: cycleUs / 1000,
      peScrapeMs: peUs.length ? median(peUs) / 1000 : undefined,
      rssMb: agent.rssKb('VmRSS') / 1024,
      hwmMb: agent.rssKb('VmHWM') / 1024,
      sentPointsPerCycle: (snap.sum('taskstats_agent_exporter_sent_points_total') - sent1) / cycles,
      failedPoints: snap.sum('taskstats_agent_exporter_failed_points_total'),
      droppedItems: snap.sum('taskstats_agent_component_dropped_items_total'),
      droppedQueueFull: snap.sum('taskstats_agent_component_dropped_items_total', { reason: 'queue_full' }),
      droppedSendFailed: snap.sum('taskstats_agent_component_dropped_items_total', { reason: 'send_failed' }),
      deliveredPoints: snap.sum('taskstats_agent_exporter_delivered_items_total', { signal: 'metrics' }),
      seriesOverflow: snap.sum(/series_overflow/),
      seriesHeld: snap.sum(/_series$/),
      agent,
    };
    return out;
  } catch (e) {
    await pe?.stop();
    await agent.kill();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
const started = Date.now();
const curve = [];
const failures = [];
log(`curve: ${QUICK ? 'quick' : 'full'} run; process-exporter ${processExporterVersion()}; collection interval ${INTERVAL_S} s`);
try {
  for (const p of PARTS.includes('live') ? POINTS : []) {
    const tasks = p.procs * p.threads;
    const needKb = p.procs * 100 + tasks * 40 + 2 * 2 ** 20;
    if (memAvailableKb() < needKb) {
      log(`skipped ${p.procs} x ${p.threads}: ${Math.round(memAvailableKb() / 1024)} MiB available, ~${Math.round(needKb / 1024)} needed`);
      continue;
    }
    // A point that fails (a backend that times out at 50,000 processes, say) is reported and the
    // others still run: one `npm run bench` gives every figure it can.
    const point = await withLock(`curve ${p.procs} x ${p.threads}`, async () => {
      const load0 = loadNow();
      const c = await crowd(p.procs, p.threads);
      let vm, m;
      try {
        const host = { processes: hostProcesses(), threads: hostThreads() };
        vm = await startVictoriaMetrics();
        // process-exporter's scrape at 50,000 processes costs tens of seconds: one is enough there.
        m = await measureAgent(vm, { scrapes: tasks >= 20_000 ? 1 : 2 });
        await m.agent.stop();
        const { agent: _agent, ...fig } = m;
        return { ...p, host, crowdStartS: c.startS, ...fig, floorMs: kernelFloorMs(), load: [load0, loadNow()] };
      } catch (e) {
        failures.push(`${p.procs} x ${p.threads}: ${e.message}`);
        log(`curve point ${p.procs} x ${p.threads} failed: ${e.stack}`);
        return undefined;
      } finally {
        await m?.agent.kill();
        await vm?.stop();
        await c.stop();
      }
    });
    if (!point) continue;
    curve.push(point);
    log(
      `${p.procs} processes x ${p.threads} thread(s) (host: ${point.host.processes} processes, ${point.host.threads} threads): agent ${point.cycleMs.toFixed(1)} ms CPU per cycle` +
        ` (${((point.cycleMs * 1000) / point.host.processes).toFixed(1)} us per process, ${point.cycles} cycles), RSS ${point.rssMb.toFixed(0)} MB (peak ${point.hwmMb.toFixed(0)});` +
        ` first sight ${point.firstSightMs.toFixed(0)} ms; process-exporter ${point.peScrapeMs?.toFixed(0)} ms per scrape = ${(point.peScrapeMs / point.cycleMs).toFixed(1)}x;` +
        ` kernel floor ${point.floorMs.toFixed(1)} ms per cycle (agent ${(point.cycleMs / point.floorMs).toFixed(2)}x it, process-exporter ${(point.peScrapeMs / point.floorMs).toFixed(0)}x);` +
        ` ${point.sentPointsPerCycle.toFixed(0)} points sent per cycle, ${point.failedPoints} failed; load ${point.load.join(' -> ')}`,
    );
  }
} finally {
  restorePids();
}

// 2. Export cost per series (no kernel, no lock needed). A small collection is fast enough for
// the code to still be warming up after a few rounds, and one run of a few seconds on a shared
// 2-vCPU VM can be 1.5x or 3x another: so each size runs enough rounds to reach about
// EXPORT_POINTS_PER_RUN points (at least 4) and its steady state is the median of the later half
// (rounds 2-4 for 4 rounds); the sizes are run EXPORT_PASSES times, alternated, and each size's
// figure is the pass with the median total.
const EXPORT_POINTS_PER_RUN = 2_000_000;
const EXPORT_PASSES = QUICK ? 1 : 3;
const exportRuns = [];
{
  const sink = spawn(process.execPath, [join(here, 'sink.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => sink.stdout.once('data', (d) => resolve(Number(/port (\d+)/.exec(String(d))[1]))));
  const passes = new Map();
  try {
    for (let pass = 0; pass < EXPORT_PASSES; pass++) {
      for (const n of PARTS.includes('export') ? SERIES : []) {
        const load0 = loadNow();
        const rounds = Math.max(4, Math.ceil(EXPORT_POINTS_PER_RUN / (n * 33)));
        let raw;
        try {
          // Under the agent's node flags (bin/node-flags): the same JIT as the agent's export path.
          raw = execFileSync(
            process.execPath,
            [...nodeCommandLineFlags(), '--expose-gc', join(here, 'export.mjs'), String(n), String(rounds), `http://127.0.0.1:${port}/v1/metrics`],
            { encoding: 'utf8', maxBuffer: 1 << 24 },
          );
        } catch (e) {
          failures.push(`export ${n} series: ${e.message}`);
          log(`export of ${n} series failed: ${e.message}`);
          continue;
        }
        const r = JSON.parse(raw.trim().split('\n').pop());
        // The first round creates every series (and warms the code).
        const steady = r.rounds.slice(rounds >= 8 ? Math.floor(rounds / 2) : 1);
        const perSeries = (k) => median(steady.map((x) => x[k])) / n;
        const fig = {
          series: n,
          points: r.points,
          rounds,
          addUsPerSeries: perSeries('addUs'),
          collectUsPerSeries: perSeries('collectUs'),
          exportUsPerSeries: perSeries('exportUs'),
          exportWallMs: median(steady.map((x) => x.exportWallMs)),
          firstRoundUsPerSeries: (r.rounds[0].addUs + r.rounds[0].collectUs + r.rounds[0].exportUs) / n,
          heapPerSeriesB: r.heapPerSeriesB,
          requestsPerExport: r.stats.requests.success / rounds,
          failed: r.stats.requests.failed + r.stats.requests.retryable,
          load: [load0, loadNow()],
        };
        fig.totalUsPerSeries = fig.addUsPerSeries + fig.collectUsPerSeries + fig.exportUsPerSeries;
        if (!passes.has(n)) passes.set(n, []);
        passes.get(n).push(fig);
        log(
          `pass ${pass + 1}: ${n} series (${r.points} points, ${rounds} rounds): ${fig.totalUsPerSeries.toFixed(1)} us CPU per series per cycle (stage add ${fig.addUsPerSeries.toFixed(1)},` +
            ` collect ${fig.collectUsPerSeries.toFixed(1)}, encode + send ${fig.exportUsPerSeries.toFixed(1)}); one export ${((fig.totalUsPerSeries * n) / 1000) | 0} ms CPU,` +
            ` ${fig.exportWallMs} ms wall in ${fig.requestsPerExport} requests; first round ${fig.firstRoundUsPerSeries.toFixed(1)} us per series; heap ${(fig.heapPerSeriesB / 1024).toFixed(1)} KiB per series;` +
            ` ${fig.failed} requests failed; load ${fig.load.join(' -> ')}`,
        );
      }
    }
  } finally {
    sink.kill('SIGTERM');
  }
  for (const [n, figs] of passes) {
    const sorted = [...figs].sort((a, b) => a.totalUsPerSeries - b.totalUsPerSeries);
    const fig = { ...sorted[(sorted.length - 1) >> 1], passesUsPerSeries: figs.map((f) => f.totalUsPerSeries) };
    exportRuns.push(fig);
    log(`${n} series: ${fig.totalUsPerSeries.toFixed(1)} us per series (passes ${fig.passesUsPerSeries.map((x) => x.toFixed(1)).join(', ')})`);
  }
}

// 3. A big node meeting the default series limit.
let bigNode;
if (BIG_NODE && PARTS.includes('big')) {
  const procs = 50_000;
  try {
    bigNode = await withLock('curve big node', async () => {
      const load0 = loadNow();
      // Names cv0..cv49999: each its own workload (series) in the process's cgroup.
      const c = await crowd(procs, 1, procs, 'cv');
      let vm, m;
      try {
        vm = await startVictoriaMetrics();
        m = await measureAgent(vm, { scrapes: 0 });
        // MetricsQL takes dotted label names unquoted in `by (...)` (quoted there is a 422).
        await vm.vm.flush();
        const inVm = await vm.vm.query('count(count by (process.executable.name) ({__name__="process.cpu.time"}))');
        const overflowInVm = await vm.vm.query('count({__name__="process.cpu.time", "otel.metric.overflow"="true"})');
        const warnings = m.agent
          .logRecords()
          .filter((r) => r.level === 'warn' || r.level === 40 || /overflow|limit/i.test(r.msg ?? ''))
          .map((r) => String(r.msg))
          .slice(0, 5);
        await m.agent.stop();
        const { agent: _agent, ...fig } = m;
        return {
          procs,
          names: procs,
          seriesLimit: 10_000,
          ...fig,
          namesInVm: inVm[0]?.value ?? 0,
          overflowSeriesInVm: overflowInVm[0]?.value ?? 0,
          warnings,
          load: [load0, loadNow()],
        };
      } catch (e) {
        failures.push(`big node: ${e.message}`);
        log(`big node failed: ${e.stack}`);
        return undefined;
      } finally {
        await m?.agent.kill();
        await vm?.stop();
        await c.stop();
      }
    });
  } finally {
    restorePids();
  }
}
if (bigNode) {
  log(
    `big node: ${bigNode.procs} processes with ${bigNode.names} names, default series_limit: agent ${bigNode.cycleMs.toFixed(0)} ms CPU per cycle, RSS ${bigNode.rssMb.toFixed(0)} MB` +
      ` (peak ${bigNode.hwmMb.toFixed(0)}); ${bigNode.sentPointsPerCycle.toFixed(0)} points sent per cycle, ${bigNode.failedPoints} failed;` +
      ` ${bigNode.deliveredPoints} points delivered since start, dropped ${bigNode.droppedQueueFull} queue_full and ${bigNode.droppedSendFailed} send_failed;` +
      ` series held ${bigNode.seriesHeld}, samples to overflow ${bigNode.seriesOverflow}; VictoriaMetrics holds ${bigNode.namesInVm} command names` +
      ` (overflow series: ${bigNode.overflowSeriesInVm}); agent logged: ${JSON.stringify(bigNode.warnings)}; load ${bigNode.load.join(' -> ')}`,
  );
}

// Results, plot.
const outDir = join(root, '.cache', 'bench');
mkdirSync(outDir, { recursive: true });
const data = {
  date: new Date().toISOString(),
  quick: QUICK,
  intervalS: INTERVAL_S,
  curve,
  exportRuns,
  bigNode,
  failures,
  seconds: (Date.now() - started) / 1000,
};
// A partial run (--quick, BENCH_CURVE_PARTS) leaves the full run's files alone.
const partial = QUICK || PARTS.length < 3;
const suffix = PARTS.length < 3 ? `-${PARTS.join('-')}` : QUICK ? '-quick' : '';
writeFileSync(join(outDir, `curve${suffix}.json`), JSON.stringify(data, null, 2));
const svgFile = partial ? join(outDir, `curve${suffix}.svg`) : join(root, 'docs', 'performance-curve.svg');
writeFileSync(svgFile, renderSvg(data));
log(`curve: ${join(outDir, `curve${suffix}.json`)}, plot ${svgFile}; ${data.seconds.toFixed(0)} s`);

for (const p of curve) {
  const perProcUs = (p.cycleMs * 1000) / p.host.processes;
  result({
    name: `live ${p.procs} procs x ${p.threads} thr: agent CPU per process per cycle, all-in`,
    value: perProcUs,
    unit: ' us',
    target: '<= 10',
    detail: `${p.cycleMs.toFixed(1)} ms per cycle over ${p.host.processes} host processes, ${p.host.threads} threads; RSS ${p.rssMb.toFixed(0)} MB`,
  });
  if (p.peScrapeMs !== undefined) {
    result({
      name: `live ${p.procs} procs x ${p.threads} thr: process-exporter scrape / agent cycle`,
      value: p.peScrapeMs / p.cycleMs,
      unit: 'x',
      target: '>= 60',
      detail: `process-exporter ${p.peScrapeMs.toFixed(0)} ms per scrape, agent ${p.cycleMs.toFixed(1)} ms per cycle`,
    });
  }
  if (p.floorMs !== undefined) {
    result({
      name: `live ${p.procs} procs x ${p.threads} thr: agent cycle / kernel floor (C: list /proc, GET each process)`,
      value: p.cycleMs / p.floorMs,
      unit: 'x',
      detail:
        `floor ${p.floorMs.toFixed(1)} ms per cycle; process-exporter / floor ${p.peScrapeMs !== undefined ? (p.peScrapeMs / p.floorMs).toFixed(0) : '-'}x: ` +
        'the most any agent that queries every process can be cheaper than it',
    });
  }
}
if (exportRuns.length >= 2) {
  const first = exportRuns[0];
  const last = exportRuns[exportRuns.length - 1];
  const growth = last.totalUsPerSeries / first.totalUsPerSeries;
  result({
    name: `export: CPU per series at ${last.series} / at ${first.series} series`,
    value: growth,
    unit: 'x',
    target: '<= 1 (linear or better)',
    limit: '<= 1.5',
    pass: growth <= 1.5,
    detail: exportRuns
      .map((r) => `${r.series}: ${r.totalUsPerSeries.toFixed(1)} us (passes ${r.passesUsPerSeries.map((x) => x.toFixed(1)).join(', ')})`)
      .join('; '),
  });
}
if (failures.length) {
  result({ name: 'curve: points that failed', value: failures.length, pass: false, detail: failures.join('; ') });
}
