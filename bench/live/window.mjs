// The agent alone over a window: CPU per thread (schedstat) and per cycle, with nothing else
// running (no process-exporter beside it, no scrape of the agent inside the window). The agent
// as shipped, the repository's default pipeline exporting to a real VictoriaMetrics.
//   node bench/live/window.mjs [interval=5s] [window_s=30] [processes=0]
// An interval longer than the window (e.g. 3600s) measures an idle agent between cycles: its
// timers and the exec watcher thread's wake-ups. Not part of `npm run bench` (docs/performance.md
// cites its figures where it does).
// Env: PERF=1 also records the window with Linux perf into /tmp/perf.data (PERF_HZ, 1999;
// add EXTRA=--perf-basic-prof-only-functions to name JIT frames); EXTRA: more node flags.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scrape, startAgent } from '../../dist/test/support/agent.js';
import { compileC, sleep, threadCpuByName, threadCpuUs } from '../../dist/test/support/workload.js';
import { nodeCommandLineFlags } from '../../dist/src/v8-flags.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const root = new URL('../..', import.meta.url).pathname;
const [interval = '5s', windowArg = '30', procsArg = '0'] = process.argv.slice(2);
const WINDOW_S = Number(windowArg);
const PROCS = Number(procsArg);
const intervalS = Number(interval.replace(/s$/, ''));

let crowd;
if (PROCS > 0) {
  const bin = compileC(readFileSync(join(root, 'bench', 'curve', 'crowd.c'), 'utf8'), 'crowd', ['-pthread']);
  crowd = spawn(bin, [String(PROCS), '1', '1', 'wnsleep'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve) => crowd.stdout.on('data', (d) => String(d).includes('ready') && resolve()));
}
const vm = await startVictoriaMetrics();
const config = benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: interval });
const extra = (process.env.EXTRA ?? '').split(' ').filter(Boolean);
const agent = await startAgent({ config, nodeArgs: [...nodeCommandLineFlags(), ...extra], readyTimeoutMs: 120_000 });
const pid = agent.child.pid;

const collections = async () => (await scrape(`${agent.baseUrl}/metrics`)).sum('taskstats_agent_pipeline_collections_total');

try {
  // First sight (every process read from /proc) and the code's warm-up stay out of the window.
  await sleep(Math.min(20, intervalS) * 2000 + 3000);
  const k1 = await collections();
  const before = threadCpuUs(pid);
  const c1 = agent.cpuUs();
  const perf = process.env.PERF
    ? spawn('perf', ['record', '-F', process.env.PERF_HZ ?? '1999', '-g', '-p', String(pid), '-o', '/tmp/perf.data', '--', 'sleep', String(WINDOW_S)], {
        stdio: 'ignore',
      })
    : undefined;
  await sleep(WINDOW_S * 1000);
  if (perf) await new Promise((resolve) => perf.on('exit', resolve));
  const after = threadCpuUs(pid);
  const c2 = agent.cpuUs();
  const cycles = (await collections()) - k1;
  const totalMs = (c2 - c1) / 1000;
  console.log(
    `interval ${interval}, ${WINDOW_S} s window, ${PROCS} extra processes: ${cycles} cycles; agent CPU ${totalMs.toFixed(1)} ms, ` +
      `${(totalMs / WINDOW_S).toFixed(2)} ms per second` +
      (cycles > 0 ? `, ${(totalMs / cycles).toFixed(1)} ms per cycle` : '') +
      `; RSS ${(agent.rssKb('VmRSS') / 1024).toFixed(1)} MB (peak ${(agent.rssKb('VmHWM') / 1024).toFixed(1)})`,
  );
  console.log(
    'per thread: ' +
      [...threadCpuByName(before, after)]
        .filter(([, us]) => us > 0)
        .map(([name, us]) => `${name} ${(us / 1000).toFixed(1)} ms`)
        .join(', '),
  );
} finally {
  await agent.stop();
  await vm.stop();
  crowd?.stdin.end();
}
