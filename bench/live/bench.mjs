// Live collection with 5,000 processes: the agent's CPU per collection cycle (full default
// pipeline, exporting to a real VictoriaMetrics) next to the CPU prometheus-process-exporter (the
// Debian package, default flags, every process grouped by name) spends on one scrape of the same
// host; and the agent's memory.
//   target: at least 30x cheaper (never under 20x); RSS at most 100 MB (never above 150 MB).
import { startAgent } from '../../dist/test/support/agent.js';
import { sleep, sleepers } from '../../dist/test/support/workload.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { cpuPerScrape, processExporterVersion, startProcessExporter } from '../lib/process-exporter.mjs';
import { log, median, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const PROCESSES = Number(process.env.BENCH_LIVE_PROCESSES ?? 5000);
const INTERVAL_S = 2;
const CYCLES = Number(process.env.BENCH_LIVE_CYCLES ?? 10);
const CAPPED_HEAP_MB = 64;

const procs = await sleepers(PROCESSES);
const total = Number((await import('node:fs')).readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length);
log(`${PROCESSES} sleeping processes started (${total} processes on the host)`);
let vm, agent, pe;
try {
  // Baseline: process-exporter, default flags (it also reads smaps), then without smaps.
  pe = await startProcessExporter();
  const peDefault = await cpuPerScrape(pe, 3);
  await pe.stop();
  pe = await startProcessExporter(['-gather-smaps=false']);
  const peNoSmaps = await cpuPerScrape(pe, 3);
  await pe.stop();
  pe = undefined;
  log(`process-exporter ${processExporterVersion()}: ${(peDefault.meanUs / 1000).toFixed(0)} ms CPU per scrape (default), ${(peNoSmaps.meanUs / 1000).toFixed(0)} ms with -gather-smaps=false`);

  vm = await startVictoriaMetrics();
  const shipped = await measureAgent({});
  // The same with a capped V8 heap: V8 lets garbage pile up when the machine has memory to spare,
  // so RSS as shipped says more about V8's laziness than about what the agent holds.
  const capped = await measureAgent({ NODE_OPTIONS: `--max-old-space-size=${CAPPED_HEAP_MB}` });
  log(`with --max-old-space-size=${CAPPED_HEAP_MB}: ${(capped.cycleUs / 1000).toFixed(1)} ms CPU per cycle, RSS peak ${capped.hwmMb.toFixed(0)} MB`);

  const cycleUs = shipped.cycleUs;
  const hwmMb = shipped.hwmMb;
  const ratio = peDefault.meanUs / cycleUs;
  const ratioNoSmaps = peNoSmaps.meanUs / cycleUs;
  result({ name: `live ${PROCESSES} procs: process-exporter scrape CPU / agent cycle CPU`, value: ratio, unit: 'x', target: '>= 30', limit: '>= 20', pass: ratio >= 20,
    detail: `process-exporter ${(peDefault.meanUs / 1000).toFixed(0)} ms per scrape, agent ${(cycleUs / 1000).toFixed(1)} ms per cycle` });
  result({ name: 'same, process-exporter with -gather-smaps=false', value: ratioNoSmaps, unit: 'x', target: '>= 30', limit: '>= 20', pass: ratioNoSmaps >= 20,
    detail: `process-exporter ${(peNoSmaps.meanUs / 1000).toFixed(0)} ms per scrape` });
  result({ name: `agent RSS with ${PROCESSES} processes (peak)`, value: hwmMb, unit: ' MB', target: '<= 100', limit: '<= 150', pass: hwmMb <= 150,
    detail: `current ${shipped.rssMb.toFixed(0)} MB` });
  result({ name: `agent RSS peak, heap capped at ${CAPPED_HEAP_MB} MB`, value: capped.hwmMb, unit: ' MB', target: '<= 100', limit: '<= 150', pass: capped.hwmMb <= 150,
    detail: `${(capped.cycleUs / 1000).toFixed(1)} ms CPU per cycle` });
  result({ name: 'agent first-sight cost (two cycles)', value: shipped.warmupUs / 1000, unit: ' ms', detail: 'informational' });
} finally {
  await agent?.kill();
  await pe?.stop();
  await vm?.stop();
  await procs.stop();
}

async function measureAgent(env) {
  agent = await startAgent({ env, config: benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: `${INTERVAL_S}s` }) });
  // The first cycles read /proc once per new process (identity, cgroup): a one-time cost.
  const t0 = performance.now();
  const cpu0 = agent.cpuUs();
  await sleep(INTERVAL_S * 1000 * 2 + 200);
  const warmupUs = agent.cpuUs() - cpu0;
  const warmupS = (performance.now() - t0) / 1000;
  // Steady state: CPU over whole cycles.
  const perCycle = [];
  let cpuPrev = agent.cpuUs();
  for (let i = 0; i < CYCLES; i++) {
    await sleep(INTERVAL_S * 1000);
    const c = agent.cpuUs();
    perCycle.push(c - cpuPrev);
    cpuPrev = c;
  }
  const cycleUs = median(perCycle);
  const rssMb = agent.rssKb('VmRSS') / 1024;
  const hwmMb = agent.rssKb('VmHWM') / 1024;
  const self = await agent.metrics();
  const collections = self.sum('taskstats_agent_pipeline_collections_total');
  const seen = await vm.sumOfLast('{__name__=~"process.cpu.time.*"}');
  await agent.stop();
  agent = undefined;
  log(`agent: first ${warmupS.toFixed(1)} s (two cycles, first sight of every process) ${(warmupUs / 1000).toFixed(0)} ms CPU;` +
    ` steady ${(cycleUs / 1000).toFixed(1)} ms CPU per ${INTERVAL_S} s cycle (median of ${CYCLES}: ${perCycle.map((u) => (u / 1000).toFixed(1)).join(' ')} ms),` +
    ` ${(cycleUs / PROCESSES).toFixed(2)} us per process; RSS ${rssMb.toFixed(0)} MB (peak ${hwmMb.toFixed(0)} MB);` +
    ` ${collections} collections counted; ${seen.series} process.cpu.time series in VictoriaMetrics`);
  return { cycleUs, rssMb, hwmMb, warmupUs };
}
