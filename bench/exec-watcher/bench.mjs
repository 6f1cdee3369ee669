// Exec watcher cost: the CPU the taskstats receiver's exec watcher thread (exec-watcher-thread.ts) uses
// per exec, as a ratio to a minimal C watcher (floor.c: blocking recv() on the proc connector,
// one read of /proc/PID/cgroup per exec, SCHED_FIFO 1) measured with the same exec stream in the
// same run; plus the main thread's CPU per exec (receiving and applying the results), the delay
// from exec to the cgroup read, and the memory the watcher thread adds.
// Two configurations: the default (cgroup only) and with executable path and command line
// ("details", also read by the floor then). Runs alternate (floor, watcher) and the ratios are
// taken from medians, since this 2-core VM has stretches of steal time. Each watcher is warmed up
// (1000 execs) before it is measured: V8 optimizes its loop only after a few hundred execs, and
// an agent runs for days.
// Needs root (SCHED_FIFO, the proc connector) and cc. Env: BENCH_EXEC_COUNT (2000 execs per run),
// BENCH_EXEC_RUNS (3), BENCH_EXEC_BASELINE: the path of another build's module exporting ExecWatcher (an
// older version, compiled) to measure side by side in the same runs (before/after figures).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExecWatcher } from '../../dist/plugins/taskstats/exec-watcher.js';
import { compileC, sleep } from '../../dist/test/support/workload.js';
import { log, median, result } from '../lib/report.mjs';

const root = new URL('../..', import.meta.url).pathname;
const N = Number(process.env.BENCH_EXEC_COUNT ?? 2000);
const RUNS = Number(process.env.BENCH_EXEC_RUNS ?? 3);
const WARMUP = 1000;
const baseline = process.env.BENCH_EXEC_BASELINE ? (await import(process.env.BENCH_EXEC_BASELINE)).ExecWatcher : undefined;

// `bench.mjs --rss MODULE`: a fresh process that only reports the memory one watcher adds (RSS
// after start, and after 3000 execs), so that versions measured in one run do not share an allocator.
if (process.argv[2] === '--rss') {
  const { ExecWatcher: Watcher } = await import(process.argv[3]);
  const loop = process.argv[4];
  const runLoop = (n) => new Promise((resolve) => spawn(loop, [String(n)], { stdio: 'ignore' }).on('exit', resolve));
  await runLoop(10);
  const rss0 = rssKb();
  const w = new Watcher(
    { procRoot: '/proc', selector: { kind: 'v2' }, executablePath: true, commandLine: true, maxCommandLineBytes: 4096 },
    () => {},
    () => {},
  );
  await w.start();
  const rssStarted = rssKb();
  await runLoop(3000);
  await sleep(300);
  w.drain();
  console.log(JSON.stringify({ startedMb: (rssStarted - rss0) / 1024, after3000Mb: (rssKb() - rss0) / 1024 }));
  await w.stop();
  process.exit(0);
}

const floorBin = compileC(readFileSync(join(root, 'bench/exec-watcher/floor.c'), 'utf8'), 'exec-floor');
const loopBin = compileC(readFileSync(join(root, 'bench/exec-watcher/execloop.c'), 'utf8'), 'execloop');

function execLoop(n = N) {
  return new Promise((resolve, reject) => {
    const c = spawn(loopBin, [String(n)], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`execloop exited ${code}`))));
  });
}

function rssKb() {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
}

function threadCpuNs(tid) {
  return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
}

async function floorRun(details) {
  const child = spawn(floorBin, ['120', ...(details ? ['details'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => String(d).includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`floor exited ${code} before ready`)));
  });
  await sleep(200);
  await execLoop();
  await sleep(200);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  const r = JSON.parse(out);
  return { usPerExec: r.cpu_ns / r.events / 1000, events: r.events, gone: r.gone, delayMeanUs: r.delay_mean_ns / 1000, over500us: r.delay_over_500us };
}

async function rssRun(modulePath) {
  const out = await new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [new URL(import.meta.url).pathname, '--rss', modulePath, loopBin], { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    c.stdout.on('data', (d) => (o += d));
    c.on('close', (code) => (code === 0 ? resolve(o) : reject(new Error(`rss run exited ${code}`))));
  });
  return JSON.parse(out);
}

async function watcherRun(details, Watcher = ExecWatcher) {
  const w = new Watcher(
    { procRoot: '/proc', selector: { kind: 'v2' }, executablePath: details, commandLine: details, maxCommandLineBytes: 4096 },
    () => {},
    () => {},
  );
  await w.start();
  // Warm-up: V8 optimizes the thread's loop only after some hundreds of execs; an agent runs for days.
  await execLoop(WARMUP);
  await sleep(300);
  w.drain();
  const s0 = w.stats;
  const cpu0 = w.threadCpuNs();
  const main0 = threadCpuNs(process.pid);
  const apply0 = w.applyNs;
  await execLoop();
  await sleep(200);
  w.drain();
  const s = w.stats;
  const events = s.execEvents - s0.execEvents;
  const r = {
    usPerExec: (w.threadCpuNs() - cpu0) / events / 1000,
    mainUsPerExec: (threadCpuNs(process.pid) - main0) / events / 1000,
    applyUsPerExec: (w.applyNs - apply0) / events / 1000,
    events,
    missed: s.missed - s0.missed,
    priority: w.priority,
  };
  if (s.delayedOver500us !== undefined) {
    r.delayMeanUs = (s.delaySumNs - s0.delaySumNs) / Math.max(1, s.cgroupReads - s0.cgroupReads) / 1000;
    r.over500us = s.delayedOver500us - s0.delayedOver500us;
  }
  await w.stop();
  return r;
}

const fmt = (x) => (x === undefined ? '-' : x.toFixed(1));
const rows = { floor: [], watcher: [], baseline: [], floorD: [], watcherD: [], baselineD: [] };
const describe = (w) =>
  `${fmt(w.usPerExec)} us/exec (${w.events} execs, missed ${w.missed}, delay mean ${fmt(w.delayMeanUs)} us, >500us ${w.over500us ?? '-'}; ` +
  `${w.priority}), main thread ${fmt(w.mainUsPerExec)} us/exec (apply ${fmt(w.applyUsPerExec)})`;
for (let i = 0; i < RUNS; i++) {
  for (const details of [false, true]) {
    const f = await floorRun(details);
    const w = await watcherRun(details);
    (details ? rows.floorD : rows.floor).push(f);
    (details ? rows.watcherD : rows.watcher).push(w);
    log(
      `run ${i + 1}${details ? ' (exe+cmdline)' : ''}: floor ${fmt(f.usPerExec)} us/exec (${f.events} execs, gone ${f.gone}, delay mean ${fmt(f.delayMeanUs)} us, >500us ${f.over500us}); ` +
        `watcher thread ${describe(w)}`,
    );
    if (baseline) {
      const b = await watcherRun(details, baseline);
      (details ? rows.baselineD : rows.baseline).push(b);
      log(`run ${i + 1}${details ? ' (exe+cmdline)' : ''}: baseline watcher thread ${describe(b)}`);
    }
  }
}

const med = (xs, k) => median(xs.map((x) => x[k]));
for (const [label, f, w] of [
  ['cgroup only (default)', rows.floor, rows.watcher],
  ['with exe + cmdline', rows.floorD, rows.watcherD],
]) {
  const ratio = med(w, 'usPerExec') / med(f, 'usPerExec');
  result({
    name: `exec watcher, ${label}: thread CPU per exec / C floor`,
    value: Number(ratio.toFixed(2)),
    unit: 'x',
    target: '<= 1.5',
    limit: '<= 3',
    pass: ratio <= 3,
    detail: `watcher ${fmt(med(w, 'usPerExec'))} us, floor ${fmt(med(f, 'usPerExec'))} us per exec (medians of ${RUNS}; ${N} execs of /bin/true per run)`,
  });
  result({
    name: `exec watcher, ${label}: main thread CPU per exec`,
    value: Number(med(w, 'mainUsPerExec').toFixed(1)),
    unit: 'us',
    detail: `of which applying results ${fmt(med(w, 'applyUsPerExec'))} us (the rest: wake-ups to receive them)`,
  });
}
if (baseline) {
  for (const [label, f, w, b] of [
    ['cgroup only (default)', rows.floor, rows.watcher, rows.baseline],
    ['with exe + cmdline', rows.floorD, rows.watcherD, rows.baselineD],
  ]) {
    result({
      name: `exec watcher, ${label}: thread CPU per exec, this build / baseline`,
      value: Number((med(w, 'usPerExec') / med(b, 'usPerExec')).toFixed(2)),
      unit: 'x',
      detail:
        `this ${fmt(med(w, 'usPerExec'))} us, baseline ${fmt(med(b, 'usPerExec'))} us (${(med(b, 'usPerExec') / med(f, 'usPerExec')).toFixed(2)}x the floor), ` +
        `main thread ${fmt(med(w, 'mainUsPerExec'))} vs ${fmt(med(b, 'mainUsPerExec'))} us per exec`,
    });
  }
}
const rssOf = async (modulePath) => {
  const rs = [];
  for (let i = 0; i < 2; i++) rs.push(await rssRun(modulePath));
  return { startedMb: median(rs.map((r) => r.startedMb)), after3000Mb: median(rs.map((r) => r.after3000Mb)) };
};
const rss = await rssOf(join(root, 'dist/plugins/taskstats/exec-watcher.js'));
result({
  name: 'exec watcher: RSS added by the watcher thread (after 3000 execs)',
  value: Number(rss.after3000Mb.toFixed(1)),
  unit: 'MB',
  detail: `${rss.startedMb.toFixed(1)} MB once started (separate processes, medians of 2)`,
});
if (baseline) {
  const b = await rssOf(process.env.BENCH_EXEC_BASELINE);
  result({
    name: 'exec watcher: RSS added by the baseline watcher thread (after 3000 execs)',
    value: Number(b.after3000Mb.toFixed(1)),
    unit: 'MB',
    detail: `${b.startedMb.toFixed(1)} MB once started`,
  });
}
