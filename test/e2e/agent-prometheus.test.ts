// test-requires: root taskstats libnl
/**
 * The whole agent with the prometheus pull exporter: the taskstats receiver's cumulative sums for
 * a workload in a fresh cgroup are served at /metrics with the exact exit count and the CPU the
 * kernel accounted for the group.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, scrape, startAgent, type AgentProcess } from '../support/agent.js';
import { createCgroup, forkedInCgroup, repoRoot, waitFor, type TestCgroup } from '../support/workload.js';

const PROCESSES = 40;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (taskstats needs CAP_NET_ADMIN; the test creates cgroups)';
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) return 'the agent is not built (dist/src/cli.js)';
  return undefined;
}

describe('agent -> prometheus exporter', { timeout: 120_000, skip: skipReason() }, () => {
  let agent: AgentProcess | undefined;
  let cg: TestCgroup | undefined;
  after(async () => {
    await cg?.remove().catch(() => undefined);
    await agent?.kill();
  });

  test('/metrics serves the exact exits and the CPU of a cgroup workload', async () => {
    const port = await freePort();
    agent = await startAgent({
      config: {
        receivers: { taskstats: { collection_interval: '1s' } },
        exporters: { prometheus: { endpoint: `127.0.0.1:${port}` } },
        service: { pipelines: { metrics: { receivers: ['taskstats'], exporters: ['prometheus'] } } },
      },
    });
    cg = createCgroup('ts-e2e-prom');
    await forkedInCgroup(cg, PROCESSES, 20_000, 'prombur');
    const kernelCpuS = cg.usageUsec() / 1e6;
    const url = `http://127.0.0.1:${port}/metrics`;
    const m = await waitFor(
      'the exits of the workload at /metrics',
      async () => {
        const s = await scrape(url);
        return s.sum('process_exits_total', { process_linux_cgroup: cg!.path }) >= PROCESSES + 1 ? s : undefined;
      },
      30_000,
      250,
    );
    const exits = m.sum('process_exits_total', { process_linux_cgroup: cg.path });
    const cpu = m.sum('process_cpu_time_seconds_total', { process_linux_cgroup: cg.path });
    console.log(`prometheus e2e: exits ${exits}/${PROCESSES + 1}; CPU ${cpu.toFixed(4)} s vs cpu.stat ${kernelCpuS.toFixed(4)} s`);
    assert.equal(exits, PROCESSES + 1);
    assert.equal(m.sum('process_exits_total', { process_linux_cgroup: cg.path, process_executable_name: 'prombur' }), PROCESSES);
    assert.ok(Math.abs(cpu / kernelCpuS - 1) <= 0.03, `CPU ${cpu} s vs cpu.stat ${kernelCpuS} s`);
    assert.match(m.text, /# TYPE process_cpu_time_seconds_total counter/);
    assert.ok(m.select('target_info').length === 1, 'resource attributes in target_info');
  });
});
