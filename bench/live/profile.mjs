// Where a live cycle's CPU goes: the agent as shipped (default pipeline to a real
// VictoriaMetrics, flags of bin/node-flags) under node's --cpu-prof with N sleeping processes;
// only the samples of a steady window of cycles (after first sight) are counted.
//   node bench/live/profile.mjs [processes=5000] [cycles=10] [interval_s=2]
// Prints CPU per cycle, then self time per function and per file (top entries), as % of the window.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../../dist/test/support/agent.js';
import { compileC, sleep, threadCpuByName, threadCpuUs } from '../../dist/test/support/workload.js';
import { nodeCommandLineFlags } from '../../dist/src/v8-flags.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const root = new URL('../..', import.meta.url).pathname;
const PROCS = Number(process.argv[2] ?? 5000);
const CYCLES = Number(process.argv[3] ?? 10);
const INTERVAL_S = Number(process.argv[4] ?? 2);
const TOP = Number(process.env.PROFILE_TOP ?? 40);
// PROFILE=0: no --cpu-prof (the profiler's own cost is several times the cycle's); CPU per thread only.
// PROFILE=perf: Linux perf samples every thread of the window instead (JIT frames named through
// --perf-basic-prof-only-functions; kernel, libc and GC included; a fraction of --cpu-prof's cost).
const PERF = process.env.PROFILE === 'perf';
const PROFILE = process.env.PROFILE !== '0' && !PERF;

const crowdBin = compileC(readFileSync(join(root, 'bench', 'curve', 'crowd.c'), 'utf8'), 'crowd', ['-pthread']);
const crowd = spawn(crowdBin, [String(PROCS), '1', '1', 'pfsleep'], { stdio: ['pipe', 'pipe', 'inherit'] });
await new Promise((resolve) => {
  let out = '';
  crowd.stdout.on('data', (d) => (out += d).includes('ready') && resolve());
});
const monoUs = () => Number(process.hrtime.bigint() / 1000n);
const dir = mkdtempSync(join(tmpdir(), 'agent-prof-'));
let vm, agent;
try {
  vm = await startVictoriaMetrics();
  const config = benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: `${INTERVAL_S}s` });
  agent = await startAgent({
    config,
    nodeArgs: [
      ...nodeCommandLineFlags(),
      ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=500'] : []),
      ...(PERF ? ['--perf-basic-prof-only-functions'] : []),
    ],
  });
  // Each scrape of the agent's own endpoint costs it CPU: scraped only at the window's ends.
  const collections = async () => (await agent.metrics()).sum('taskstats_agent_pipeline_collections_total');
  await sleep(INTERVAL_S * 3000);
  const k1 = await collections();
  const t1 = monoUs();
  const c1 = agent.cpuUs();
  const th1 = threadCpuUs(agent.pid);
  const perfData = join(dir, 'perf.data');
  const perf = PERF
    ? spawn('perf', ['record', '-q', '-F', '4000', ...(process.env.PERF_CALLERS ? ['-g'] : []), '-p', String(agent.pid), '-o', perfData], { stdio: 'inherit' })
    : null;
  await sleep(INTERVAL_S * 1000 * CYCLES);
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((resolve) => perf.on('close', resolve));
  }
  const c2 = agent.cpuUs();
  const th2 = threadCpuUs(agent.pid);
  const k2 = await collections();
  const t2 = monoUs();
  const cycles = k2 - k1;
  const cycleUs = (c2 - c1) / cycles;
  const hostProcs = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length;
  console.log(
    `${PROCS} sleeping processes (${hostProcs} on the host): ${(cycleUs / 1000).toFixed(1)} ms CPU per cycle, ${(cycleUs / hostProcs).toFixed(1)} us per process (${cycles} cycles)`,
  );
  console.log(
    `per thread (ms CPU per cycle): ${[...threadCpuByName(th1, th2)]
      .filter(([, us]) => us > 0)
      .map(([n, us]) => `${n} ${(us / 1000 / cycles).toFixed(1)}`)
      .join(', ')}`,
  );
  await agent.stop();
  agent = undefined;
  if (PERF) {
    if (process.env.PERF_CALLERS) console.log(`perf data kept: ${perfData}`);
    for (const sort of ['dso', 'dso,sym']) {
      const r = spawn('perf', ['report', '-i', perfData, '--no-children', '--sort', sort, '-g', 'none', '--percent-limit', '0.4'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      r.stdout.on('data', (d) => (text += d));
      await new Promise((resolve) => r.on('close', resolve));
      console.log(
        text
          .split('\n')
          .filter((l) => l.trim() && !l.startsWith('#'))
          .slice(0, TOP)
          .join('\n'),
      );
    }
  }
  if (PROFILE) {
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')), t1, t2, cycles);
  }
} finally {
  await agent?.kill();
  await vm?.stop();
  crowd.stdin.end();
}

function summarize(prof, fromUs, toUs, cycles) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  let t = prof.startTime;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    if (t < fromUs || t > toUs) continue;
    const dt = prof.timeDeltas[i + 1] ?? 0;
    const n = byId.get(prof.samples[i]);
    if (n.callFrame.functionName === '(idle)') continue;
    selfUs.set(n.id, (selfUs.get(n.id) ?? 0) + dt);
    total += dt;
  }
  const fn = new Map();
  const files = new Map();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id).callFrame;
    const f = cf.url.replace(/^file:\/\//, '').replace(root, '');
    const key = `${cf.functionName || '(anonymous)'} ${f.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const fk = f || cf.functionName;
    files.set(fk, (files.get(fk) ?? 0) + us);
  }
  const show = (title, m) => {
    console.log(`\n${title} (self time, % of ${(total / 1000 / cycles).toFixed(1)} ms sampled per cycle):`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / cycles / 1000).toFixed(2).padStart(6)} ms  ${k}`);
    }
  };
  show('functions', fn);
  show('files', files);
}
