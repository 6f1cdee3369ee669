// Accuracy: how much of a short-lived workload's CPU (its cgroup's own cpu.stat usage_usec, what
// the kernel accounted) each tool reports.
//  - the agent: process.cpu.time for the cgroup (process.linux.cgroup), as stored in a real
//    VictoriaMetrics after the full default pipeline; and process.exits for the cgroup against
//    the number of processes run;
//  - prometheus-process-exporter: namedprocess_namegroup_cpu_seconds_total growth of the
//    workload's command names, scraped every second (more often than anyone scrapes it).
// Two workloads: forked children (a launcher moves itself into the cgroup and forks), and
// processes that move themselves into the cgroup right before exec (kubectl exec, exec probes).
import { startAgent } from '../../dist/test/support/agent.js';
import { createCgroup, execMovedIntoCgroup, forkedInCgroup, sleep, waitFor } from '../../dist/test/support/workload.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { processExporterVersion, startProcessExporter } from '../lib/process-exporter.mjs';
import { log, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const N = Number(process.env.BENCH_ACCURACY_PROCESSES ?? 600);
const BURN_US = Number(process.env.BENCH_ACCURACY_BURN_US ?? 3000);
const INTERVAL_S = 1;

const peCpu = (snap, groups) =>
  groups.reduce((t, g) => t + snap.sum('namedprocess_namegroup_cpu_seconds_total', { groupname: g }), 0);

let vm, agent, pe, cg;
try {
  vm = await startVictoriaMetrics();
  agent = await startAgent({ config: benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: `${INTERVAL_S}s` }) });
  pe = await startProcessExporter();
  log(`process-exporter ${processExporterVersion()} scraped every second; agent collection_interval ${INTERVAL_S}s; ${N} processes x ${BURN_US / 1000} ms CPU each`);

  for (const mode of (process.env.BENCH_ACCURACY_MODES ?? 'forked,exec-moved').split(',')) {
    cg = createCgroup(`ts-bench-accuracy-${mode}`);
    // Command names of this run only: process-exporter groups by name, and other programs on the
    // host (tests) may run tsload too. In "forked" mode the launcher is in the cgroup as well.
    const tag = `${process.pid % 100000}${mode[0]}`;
    const launcher = `acl${tag}`;
    const burner = `acb${tag}`;
    const groups = mode === 'forked' ? [launcher, burner] : [burner];
    const peBefore = peCpu(await pe.scrape(), groups);
    let scraping = true;
    let lastSnap;
    const scraper = (async () => {
      while (scraping) {
        const t = Date.now();
        try { lastSnap = await pe.scrape(); } catch { /* a slow scrape: keep going */ }
        await sleep(Math.max(0, 1000 - (Date.now() - t)));
      }
    })();
    const ran = mode === 'forked' ? (await forkedInCgroup(cg, N, BURN_US, burner, launcher)) + 1 : await execMovedIntoCgroup(cg, N, BURN_US, burner);
    await sleep(1500);
    scraping = false;
    await scraper;
    lastSnap = await pe.scrape();
    const usageUs = cg.usageUsec();
    const peShare = (peCpu(lastSnap, groups) - peBefore) * 1e6 / usageUs;
    const peGroups = groups.map((g) => `${g} ${(peCpu(lastSnap, [g]) * 1000).toFixed(0)} ms`).join(', ');

    // The agent: wait until its process.exits for the cgroup stops growing (two exports).
    const sel = (name) => `{__name__="${name}","process.linux.cgroup"="${cg.path}"}`;
    let exits = 0;
    let stableSince = Date.now();
    await waitFor('the agent\'s counts for the cgroup to settle', async () => {
      const e = (await vm.sumOfLast(sel('process.exits'))).total;
      if (e !== exits) { exits = e; stableSince = Date.now(); }
      return e >= ran ? Date.now() - stableSince > INTERVAL_S * 2000 : Date.now() - stableSince > 10_000;
    }, 60_000, 250);
    const cpuS = (await vm.sumOfLast(sel('process.cpu.time'))).total;
    const agentShare = cpuS * 1e6 / usageUs;
    log(`${mode}: cgroup cpu.stat ${(usageUs / 1000).toFixed(0)} ms; agent ${(cpuS * 1000).toFixed(0)} ms (${(agentShare * 100).toFixed(1)}%), exits ${exits}/${ran}; process-exporter ${(peShare * 100).toFixed(1)}% (${peGroups}; before ${(peBefore * 1000).toFixed(0)} ms)`);
    result({ name: `${mode}: agent share of cgroup CPU`, value: agentShare * 100, unit: '%', target: '97..103', limit: '95..105', pass: agentShare >= 0.95 && agentShare <= 1.05,
      detail: `exits ${exits} of ${ran}` });
    result({ name: `${mode}: agent exits counted for the cgroup`, value: exits, unit: ` of ${ran}`, target: `${ran}`, limit: `${ran}`, pass: exits === ran });
    result({ name: `${mode}: process-exporter share of cgroup CPU (1 s scrapes)`, value: peShare * 100, unit: '%', detail: 'baseline' });
    await cg.remove();
    cg = undefined;
  }
} finally {
  await cg?.remove().catch(() => {});
  await agent?.kill();
  await pe?.stop();
  await vm?.stop();
}
