// Memory probe: the agent's resident memory with many sleeping processes, variants alternated in
// the same run (docs/deploy.md "Memory", docs/performance.md). For each round and variant: start
// the agent, let it run CYCLES collection cycles, read VmHWM / VmRSS and the per-mapping Rss of
// /proc/PID/smaps (node binary, other files, anonymous), the agent's CPU per cycle (all threads,
// schedstat) over the cycles after the first two, stop it.
//   flock /work/coord/probe.lock node bench/memory/probe.mjs [name=FLAGS ...]
// A variant `name` runs bin/taskstats-agent itself (its shell part picks node and its flags);
// `name=--flag --other` runs node_modules/.bin/node with exactly those flags before the script;
// `name@/other/checkout[=...]` does either with another (built) checkout, e.g. the base of a change.
// Env: PROBE_PROCESSES (5000), PROBE_CYCLES (12), PROBE_ROUNDS (3), PROBE_INTERVAL (2s),
// PROBE_EXIT_SECONDS (3: a fork loop that long after the memory figures, for the agent's CPU per exit),
// PROBE_OTLP (1: export to a real VictoriaMetrics; 0: the otlp exporter stays idle),
// PROBE_CONFIG (a YAML file instead of config.yaml; its otlp exporter is pointed at the backend),
// PROBE_HEAPSNAPSHOT (a folder: SIGUSR2 at the end, for a variant with --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=...),
// PROBE_PAGES (1: print which parts of the node binary are resident, bench/memory/node-pages.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { freePort, scrape, writeConfig, withTelemetryAddress } from '../../dist/test/support/agent.js';
import { compileC, processCpuUsPrecise, sleep, sleepers } from '../../dist/test/support/workload.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { log, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const root = new URL('../..', import.meta.url).pathname;
const PROCESSES = Number(process.env.PROBE_PROCESSES ?? 5000);
const CYCLES = Number(process.env.PROBE_CYCLES ?? 12);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const INTERVAL = process.env.PROBE_INTERVAL ?? '2s';
const OTLP = process.env.PROBE_OTLP !== '0';
const EXIT_SECONDS = Number(process.env.PROBE_EXIT_SECONDS ?? 3);
const forkloop = EXIT_SECONDS > 0 ? compileC(readFileSync(join(root, 'bench/receiver/forkloop.c'), 'utf8'), 'forkloop') : '';

/** One fork loop for EXIT_SECONDS; resolves with the exits it caused. */
function forkLoop() {
  return new Promise((resolve, reject) => {
    const child = spawn(forkloop, [String(EXIT_SECONDS)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(Number(out.trim()) + 1));
    child.stdin.end('g');
  });
}

const variants = (process.argv.slice(2).length ? process.argv.slice(2) : ['shipped']).map((a) => {
  // name[@ROOT][=FLAGS]: ROOT another checkout of the agent (built), e.g. the base of a change.
  const m = /^([^@=]+)(?:@([^=]+))?(?:=(.*))?$/.exec(a);
  if (!m) throw new Error(`variant ${a}: name[@root][=flags]`);
  return { name: m[1], root: m[2] ?? root, flags: m[3] === undefined ? undefined : m[3].split(/\s+/).filter(Boolean) };
});

/** Rss (KiB) of /proc/PID/smaps by kind: the node binary, other files, anonymous. */
function smapsBreakdown(pid) {
  const out = { nodeBinary: 0, files: 0, anon: 0, heap: 0 };
  let kind = 'anon';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1];
      kind = path.startsWith('/') ? (/\/node$/.test(path) ? 'nodeBinary' : 'files') : path === '[heap]' ? 'heap' : 'anon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]);
  }
  return out;
}

const status = (pid, key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
const collections = async (url) => (await scrape(`${url}/metrics`)).sum('taskstats_agent_pipeline_collections_total');

async function runVariant(v, configDoc) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cfg = writeConfig(withTelemetryAddress(configDoc, `127.0.0.1:${port}`));
  const bin = join(v.root, 'bin', 'taskstats-agent');
  const args = ['run', '--config', cfg.file];
  const child =
    v.flags === undefined
      ? spawn(bin, args, { cwd: v.root, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(join(v.root, 'node_modules', '.bin', 'node'), [...v.flags, bin, ...args], { cwd: v.root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const t0 = Date.now();
    // VmRSS sampled every 100 ms: when the peak happens (start-up and first sight of every
    // process, or the steady cycles).
    let startMax = 0;
    let steadyMax = 0;
    let steady = false;
    const sampler = setInterval(() => {
      try {
        const v = status(child.pid, 'VmRSS') / 1024;
        if (steady) steadyMax = Math.max(steadyMax, v);
        else startMax = Math.max(startMax, v);
      } catch {
        /* gone */
      }
    }, 100);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${v.name}: the agent exited: ${stderr.slice(-2000)}`);
      try {
        if ((await collections(url)) >= 2) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() - t0 > 60_000) throw new Error(`${v.name}: no collection cycle within 60 s: ${stderr.slice(-2000)}`);
      await sleep(200);
    }
    steady = true;
    const c0 = await collections(url);
    const cpu0 = processCpuUsPrecise(child.pid);
    let c = c0;
    while (c < c0 + CYCLES - 2) {
      await sleep(250);
      // A scrape can time out on a loaded machine: try again.
      c = await collections(url).catch(() => c);
    }
    const cpuPerCycleMs = (processCpuUsPrecise(child.pid) - cpu0) / (c - c0) / 1000;
    clearInterval(sampler);
    const s = smapsBreakdown(child.pid);
    const hwm = status(child.pid, 'VmHWM') / 1024;
    const rss = status(child.pid, 'VmRSS') / 1024;
    if (process.env.PROBE_PAGES === '1') {
      const pages = spawnSync(process.execPath, [join(root, 'bench', 'memory', 'node-pages.mjs'), String(child.pid)], { encoding: 'utf8' });
      log(pages.stdout + pages.stderr);
    }
    // CPU per exit: a fork loop while the agent runs (after the memory figures, which it would change).
    let cpuPerExitUs = NaN;
    if (EXIT_SECONDS > 0) {
      const e0 = processCpuUsPrecise(child.pid);
      const exits = await forkLoop();
      await sleep(500);
      cpuPerExitUs = (processCpuUsPrecise(child.pid) - e0) / exits;
    }
    const r = {
      cpuPerExitUs,
      hwm,
      rss,
      nodeBinary: s.nodeBinary / 1024,
      files: s.files / 1024,
      anon: (s.anon + s.heap) / 1024,
      brk: s.heap / 1024,
      cpuPerCycleMs,
      startMax,
      steadyMax,
    };
    if (process.env.PROBE_HEAPSNAPSHOT) {
      // The variant runs node with --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=$PROBE_HEAPSNAPSHOT.
      const before = new Set(readdirSync(process.env.PROBE_HEAPSNAPSHOT));
      child.kill('SIGUSR2');
      for (let i = 0; i < 120; i++) {
        await sleep(1000);
        const made = readdirSync(process.env.PROBE_HEAPSNAPSHOT).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
        if (made.length && /Wrote snapshot|heapsnapshot/.test(stderr)) break;
        if (made.length && i > 20) break;
      }
    }
    return r;
  } finally {
    child.kill('SIGTERM');
    await new Promise((res) => (child.exitCode !== null ? res() : child.once('exit', res)));
    cfg.cleanup();
  }
}

const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const procs = PROCESSES > 0 ? await sleepers(PROCESSES) : undefined;
let vm;
try {
  log(`${PROCESSES} sleeping processes (${readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length} on the host), load ${load()}`);
  vm = OTLP ? await startVictoriaMetrics() : undefined;
  let config;
  if (process.env.PROBE_CONFIG) {
    config = parse(readFileSync(process.env.PROBE_CONFIG, 'utf8'));
    if (vm) {
      for (const e of Object.keys(config.exporters ?? {}).filter((k) => k === 'otlp' || k.startsWith('otlp/'))) {
        config.exporters[e] = { ...config.exporters[e], metrics_endpoint: vm.otlpMetricsUrl };
        delete config.exporters[e].endpoint;
      }
    }
    config.receivers.taskstats = { ...(config.receivers.taskstats ?? {}), collection_interval: INTERVAL };
  } else {
    config = benchAgentConfig({ otlpMetricsUrl: vm?.otlpMetricsUrl, collectionInterval: INTERVAL });
  }
  const all = Object.fromEntries(variants.map((v) => [v.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of round % 2 ? [...variants].reverse() : variants) {
      const r = await runVariant(v, config);
      all[v.name].push(r);
      log(
        `round ${round + 1} ${v.name.padEnd(14)} VmHWM ${r.hwm.toFixed(1)} RSS ${r.rss.toFixed(1)} MiB ` +
          `(node binary ${r.nodeBinary.toFixed(1)}, other files ${r.files.toFixed(1)}, anon ${r.anon.toFixed(1)} of which brk ${r.brk.toFixed(1)}); ` +
          `max RSS in the first 2 cycles ${r.startMax.toFixed(1)}, after ${r.steadyMax.toFixed(1)}; CPU ${r.cpuPerCycleMs.toFixed(1)} ms/cycle, ${r.cpuPerExitUs.toFixed(1)} us/exit; load ${load()}`,
      );
    }
  }
  const base = all[variants[0].name];
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const v of variants) {
    const rs = all[v.name];
    const hwm = rs.map((r) => r.hwm);
    const cpuRatio = mean(rs.map((r) => r.cpuPerCycleMs)) / mean(base.map((r) => r.cpuPerCycleMs));
    result({
      name: `memory probe ${v.name}: VmHWM with ${PROCESSES} processes`,
      value: Number(mean(hwm).toFixed(1)),
      unit: 'MiB',
      detail: `CPU/exit ${mean(rs.map((r) => r.cpuPerExitUs)).toFixed(1)} us; min ${Math.min(...hwm).toFixed(1)} max ${Math.max(...hwm).toFixed(1)}; node binary ${mean(rs.map((r) => r.nodeBinary)).toFixed(1)}, anon ${mean(rs.map((r) => r.anon)).toFixed(1)}; CPU/cycle ${mean(rs.map((r) => r.cpuPerCycleMs)).toFixed(1)} ms (${cpuRatio.toFixed(2)}x ${variants[0].name})`,
    });
  }
} finally {
  await vm?.stop();
  await procs?.stop();
}
