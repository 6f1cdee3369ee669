// Live collection with 5,000 processes: the agent's CPU per collection cycle (the repository's
// default pipeline, exporting to a real VictoriaMetrics) next to the CPU
// prometheus-process-exporter (the Debian package, every process grouped by name) spends on one
// scrape of the same host; and the agent's memory.
//   target: at least 30x cheaper (never under 20x); RSS at most 100 MB (never above 150 MB).
// The machine is shared (tests, other benchmarks), so both run at the same time and are measured
// over the same window: each one's own CPU from /proc, the agent's cycles from its own
// self-telemetry (pipeline collections), process-exporter's scrapes by the benchmark.
import { readdirSync } from 'node:fs';
import { startAgent } from '../../dist/test/support/agent.js';
import { nodeCommandLineFlags } from '../../dist/src/v8-flags.js';
import { sleep, sleepers } from '../../dist/test/support/workload.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { processExporterVersion, startProcessExporter } from '../lib/process-exporter.mjs';
import { log, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const PROCESSES = Number(process.env.BENCH_LIVE_PROCESSES ?? 5000);
const INTERVAL_S = 2;
const SCRAPES = Number(process.env.BENCH_LIVE_SCRAPES ?? 4);
const CAPPED_HEAP_MB = 64;

const collections = async (agent) => (await agent.metrics()).sum('taskstats_agent_pipeline_collections_total');

/** Agent CPU per cycle and process-exporter CPU per scrape, over the same window. */
async function sideBySide(agent, pe) {
  await pe.scrape(); // process-exporter's first scrape builds its tables
  const agentCpu0 = agent.cpuUs();
  const cycles0 = await collections(agent);
  let peUs = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const before = pe.cpuUs();
    await pe.scrape();
    await sleep(300); // work after the response (GC) belongs to this scrape
    peUs += pe.cpuUs() - before;
    await sleep(INTERVAL_S * 1000);
  }
  const cycles = (await collections(agent)) - cycles0;
  const agentUs = agent.cpuUs() - agentCpu0;
  return { peScrapeUs: peUs / SCRAPES, agentCycleUs: agentUs / cycles, cycles };
}

const procs = await sleepers(PROCESSES);
log(`${PROCESSES} sleeping processes started (${readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length} processes on the host)`);
let vm, agent, pe;
try {
  vm = await startVictoriaMetrics();
  const config = benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: `${INTERVAL_S}s` });
  // As shipped: bin/taskstats-agent and the image's ENTRYPOINT run node with the flags of bin/node-flags.
  agent = await startAgent({ config, nodeArgs: nodeCommandLineFlags() });
  // The first cycles see every process for the first time (identity and cgroup from /proc).
  const cpu0 = agent.cpuUs();
  await sleep(INTERVAL_S * 1000 * 2 + 200);
  const firstSightUs = agent.cpuUs() - cpu0;

  pe = await startProcessExporter();
  const byDefault = await sideBySide(agent, pe);
  await pe.stop();
  pe = await startProcessExporter(['-gather-smaps=false']);
  const noSmaps = await sideBySide(agent, pe);
  await pe.stop();
  pe = undefined;
  const rssMb = agent.rssKb('VmRSS') / 1024;
  const hwmMb = agent.rssKb('VmHWM') / 1024;
  await agent.stop();
  agent = undefined;
  log(
    `process-exporter ${processExporterVersion()} (default flags): ${(byDefault.peScrapeUs / 1000).toFixed(0)} ms CPU per scrape;` +
      ` agent meanwhile ${(byDefault.agentCycleUs / 1000).toFixed(1)} ms per ${INTERVAL_S} s cycle (${byDefault.cycles} cycles),` +
      ` ${(byDefault.agentCycleUs / PROCESSES).toFixed(1)} us per process`,
  );
  log(
    `process-exporter -gather-smaps=false: ${(noSmaps.peScrapeUs / 1000).toFixed(0)} ms CPU per scrape; agent meanwhile ${(noSmaps.agentCycleUs / 1000).toFixed(1)} ms per cycle`,
  );
  log(
    `agent first sight of ${PROCESSES} processes (two cycles): ${(firstSightUs / 1000).toFixed(0)} ms CPU; RSS ${rssMb.toFixed(0)} MB (peak ${hwmMb.toFixed(0)} MB)`,
  );

  // Memory with a capped V8 heap: V8 lets garbage pile up when the machine has memory to spare,
  // so RSS as shipped says more about V8's laziness than about what the agent holds.
  agent = await startAgent({ config, env: { NODE_OPTIONS: `--max-old-space-size=${CAPPED_HEAP_MB}` } });
  await sleep(INTERVAL_S * 1000 * 2 + 200); // first sight, as above
  const c1 = agent.cpuUs();
  const k1 = await collections(agent);
  await sleep(INTERVAL_S * 1000 * 8);
  const cappedCycleUs = (agent.cpuUs() - c1) / ((await collections(agent)) - k1);
  const cappedHwmMb = agent.rssKb('VmHWM') / 1024;
  await agent.stop();
  agent = undefined;
  log(`with --max-old-space-size=${CAPPED_HEAP_MB}: RSS peak ${cappedHwmMb.toFixed(0)} MB, ${(cappedCycleUs / 1000).toFixed(1)} ms CPU per cycle (alone)`);

  const ratio = byDefault.peScrapeUs / byDefault.agentCycleUs;
  const ratioNoSmaps = noSmaps.peScrapeUs / noSmaps.agentCycleUs;
  result({
    name: `live ${PROCESSES} procs: process-exporter scrape CPU / agent cycle CPU`,
    value: ratio,
    unit: 'x',
    target: '>= 30',
    limit: '>= 20',
    pass: ratio >= 20,
    detail: `process-exporter ${(byDefault.peScrapeUs / 1000).toFixed(0)} ms per scrape, agent ${(byDefault.agentCycleUs / 1000).toFixed(1)} ms per cycle`,
  });
  result({
    name: 'same, process-exporter with -gather-smaps=false',
    value: ratioNoSmaps,
    unit: 'x',
    target: '>= 30',
    limit: '>= 20',
    pass: ratioNoSmaps >= 20,
    detail: `process-exporter ${(noSmaps.peScrapeUs / 1000).toFixed(0)} ms per scrape, agent ${(noSmaps.agentCycleUs / 1000).toFixed(1)} ms per cycle`,
  });
  result({
    name: `agent RSS with ${PROCESSES} processes (peak)`,
    value: hwmMb,
    unit: ' MB',
    target: '<= 100',
    limit: '<= 150',
    pass: hwmMb <= 150,
    detail: `current ${rssMb.toFixed(0)} MB`,
  });
  result({
    name: `agent RSS peak, heap capped at ${CAPPED_HEAP_MB} MB`,
    value: cappedHwmMb,
    unit: ' MB',
    target: '<= 100',
    limit: '<= 150',
    pass: cappedHwmMb <= 150,
    detail: `${(cappedCycleUs / 1000).toFixed(1)} ms CPU per cycle`,
  });
  result({ name: 'agent first sight of every process (two cycles)', value: firstSightUs / 1000, unit: ' ms', detail: 'informational' });
} finally {
  await agent?.kill();
  await pe?.stop();
  await vm?.stop();
  await procs.stop();
}
