#!/usr/bin/env node
// `npm run bench`: runs every benchmark in bench/*/ one after another (they share two cores and
// the kernel's exit stream, so never in parallel) and prints a summary of the ratios each measured
// against its baseline in the same run.
//
// A benchmark is a folder bench/NAME/ with an entry file: bench.mjs (or run.mjs, index.mjs, or
// main.mjs). It prints what it likes, and reports its results as lines
//   BENCH_RESULT {"name":"...","value":1.9,"unit":"x","target":"<= 2.5","limit":"<= 3","pass":true,"detail":"..."}
// "pass" is the hard limit (never above/under); "target" is what it aims for. A benchmark without
// BENCH_RESULT lines is listed with its exit status only.
//
// Usage: node bench/run.mjs [--quick] [NAME ...]   (only those folders)
//   --quick: BENCH_QUICK=1 for the benchmarks (bench/curve: its small points only).
//   BENCH_LOCK=FILE: each benchmark runs holding flock(1) on FILE (bench/curve takes it per point),
//   so that benchmarks of several checkouts on one machine do not count each other's processes.
// Results are also written to .cache/bench/last-run.json (machine, date, commit, every result).
// docs/performance.md's figures all come from one such run at one commit.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { withLock } from './lib/lock.mjs';
import { nodeCommandLineFlags } from '../dist/src/v8-flags.js';

const root = new URL('..', import.meta.url).pathname;
const benchDir = join(root, 'bench');
const ENTRY_NAMES = ['bench.mjs', 'run.mjs', 'index.mjs', 'main.mjs'];
// The curve first (issue 15's figures; the longest, and on a shared machine the lock may hold
// the rest back); then the cheapest and most independent; the exit storms after them (they load
// the machine the most); the others.
const ORDER = ['curve', 'accuracy', 'live', 'receiver', 'exit-storm'];
// Benchmarks that take BENCH_LOCK themselves, per step.
const LOCKS_ITSELF = ['curve'];

const quick = process.argv.includes('--quick');
const wanted = process.argv.slice(2).filter((a) => a !== '--quick');
const benches = readdirSync(benchDir)
  .filter((d) => d !== 'lib' && statSync(join(benchDir, d)).isDirectory())
  .filter((d) => wanted.length === 0 || wanted.includes(d))
  .map((d) => ({ name: d, entry: ENTRY_NAMES.map((e) => join(benchDir, d, e)).find((p) => existsSync(p)) }))
  .filter((b) => b.entry)
  .sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));

function rank(name) {
  const i = ORDER.indexOf(name);
  return i < 0 ? ORDER.length : i;
}

if (process.getuid?.() !== 0) {
  console.error('bench: the benchmarks need root (taskstats needs CAP_NET_ADMIN; workloads create cgroups)');
  process.exit(1);
}
if (benches.length === 0) {
  console.error(`bench: no benchmark found${wanted.length ? ` named ${wanted.join(', ')}` : ''} in ${benchDir}`);
  process.exit(1);
}

function machine() {
  const cpuModel = cpus()[0]?.model ?? 'unknown';
  let commit = 'unknown';
  let dirty = false;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
  } catch {
    /* not a git checkout */
  }
  return {
    date: new Date().toISOString(),
    commit: dirty ? `${commit}+changes` : commit,
    kernel: release(),
    cpus: `${cpus().length} x ${cpuModel}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    // The benchmarks share the machine: a high load inflates every CPU figure (ratios measured
    // side by side in the same run suffer less).
    loadavg1m: Number(loadavg()[0].toFixed(2)),
  };
}

/** The machine's busy share of CPU time (all CPUs) over the next `ms`, from /proc/stat. */
async function busyShare(ms) {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0); // idle + iowait
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total === a.total ? 0 : 1 - (b.idle - a.idle) / (b.total - a.total);
}

/**
 * Waits until the machine is calm before a benchmark: what the previous one left behind (the
 * curve's 50,000-process teardown, memory reclaim) otherwise lands in the next one's figures
 * (an exit storm at 1.7x its floor right after a calm start, 3.8x after the curve). Calm: under
 * 10% busy for 3 s in a row; at most 120 s.
 */
async function calm() {
  const t0 = Date.now();
  let quiet = 0;
  let busy = 0;
  while (quiet < 3 && Date.now() - t0 < 120_000) {
    busy = await busyShare(1000);
    quiet = busy < 0.1 ? quiet + 1 : 0;
  }
  return { waitS: (Date.now() - t0) / 1000, busy: Number(busy.toFixed(3)) };
}

async function runOne(bench) {
  const settled = await calm();
  return new Promise((resolve) => {
    const t0 = Date.now();
    console.log(`\n=== bench/${bench.name} (${bench.entry.slice(root.length)}) ===`);
    console.log(`(machine calm after ${settled.waitS.toFixed(0)} s: ${(settled.busy * 100).toFixed(0)}% busy; load average ${loadavg()[0].toFixed(2)})`);
    const env = quick ? { ...process.env, BENCH_QUICK: '1' } : process.env;
    // Under node's flags as shipped (bin/node-flags): a benchmark that runs the agent's code in its
    // own process (the encoder, the metrics stage, the processors) measures the JIT the agent runs
    // on (Maglev at most), not TurboFan, whose escape analysis hides allocations such as for-of's.
    const child = spawn(process.execPath, [...nodeCommandLineFlags(), bench.entry], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const results = [];
    let buffered = '';
    let lastLine = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() && !line.startsWith('BENCH_RESULT ')) lastLine = line.trim();
        if (line.startsWith('BENCH_RESULT ')) {
          try {
            results.push({ bench: bench.name, ...JSON.parse(line.slice('BENCH_RESULT '.length)) });
          } catch (e) {
            results.push({ bench: bench.name, name: 'unparseable BENCH_RESULT', pass: false, detail: String(e) });
          }
        }
      }
    });
    // At 'exit' the last BENCH_RESULT lines may still be in the pipe: wait for its end (at most
    // 5 s: a process the benchmark left behind may hold it open).
    const drained = new Promise((r) => {
      child.stdout.once('end', r);
      child.once('exit', () => setTimeout(r, 5000).unref());
    });
    child.on('exit', async (code, signal) => {
      await drained;
      resolve({
        name: bench.name,
        code,
        signal,
        seconds: (Date.now() - t0) / 1000,
        calmWaitS: settled.waitS,
        busyBefore: settled.busy,
        loadavg1m: Number(loadavg()[0].toFixed(2)),
        results,
        lastLine,
      });
    });
  });
}

const info = machine();
console.log(
  `taskstats-agent benchmarks: ${info.date}, commit ${info.commit}, Linux ${info.kernel}, ${info.cpus}, ${info.memory}, Node ${info.node}, load average ${info.loadavg1m}`,
);
const runs = [];
info.quick = quick;
for (const b of benches) runs.push(LOCKS_ITSELF.includes(b.name) ? await runOne(b) : await withLock(`bench/${b.name}`, () => runOne(b)));

const fmt = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) : String(v));
console.log('\n=== summary ===');
const rows = [['benchmark', 'result', 'value', 'target', 'limit', 'ok']];
let failed = 0;
for (const r of runs) {
  if (r.code !== 0) failed++;
  if (r.results.length === 0) {
    // A benchmark that only prints text: its last line is its summary.
    rows.push([r.name, r.lastLine || '(no output)', '', '', '', r.code === 0 ? 'ok' : `FAIL (exit ${r.code ?? r.signal})`]);
  }
  for (const x of r.results) {
    if (x.pass === false) failed++;
    rows.push([r.name, x.name, `${fmt(x.value)}${x.unit ?? ''}`, x.target ?? '', x.limit ?? '', x.pass === false ? 'FAIL' : x.pass === true ? 'ok' : '']);
  }
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
for (const row of rows) console.log(row.map((c, i) => String(c).padEnd(widths[i])).join('  '));
console.log(runs.map((r) => `${r.name} ${r.seconds.toFixed(0)} s (load ${r.loadavg1m})`).join(', '));

const outDir = join(root, '.cache', 'bench');
mkdirSync(outDir, { recursive: true });
info.loadavg1mAtEnd = Number(loadavg()[0].toFixed(2));
info.seconds = runs.reduce((a, r) => a + r.seconds, 0);
console.log(`${(info.seconds / 60).toFixed(1)} min; load average ${info.loadavg1m} at the start, ${info.loadavg1mAtEnd} at the end`);
writeFileSync(join(outDir, 'last-run.json'), JSON.stringify({ machine: info, runs }, null, 2));
console.log(`\nresults: ${join(outDir, 'last-run.json')}; record them in docs/performance.md`);
process.exit(failed ? 1 : 0);
