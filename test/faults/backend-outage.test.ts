// test-requires: root taskstats libnl
/**
 * The backend is down when the agent starts and stays down for a while; processes keep ending.
 * Cumulative counters carry the outage: once the backend is up (on the same port), process.exits
 * for the workload's cgroup equals every process run, those that ended during the outage
 * included. Meanwhile the agent's memory stays bounded (its sending queue is bounded).
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startAgent, type AgentProcess } from '../support/agent.js';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/victoriametrics.js';
import { createCgroup, distinctNamesInCgroup, forkCountInCgroup, sleep, type TestCgroup } from '../support/workload.js';
import { faultConfig, waitForExits } from './configs.js';

const OUTAGE_MS = 25_000;
const HEAP_MB = 80;

describe('backend down at start and for a while', { timeout: 150_000 }, () => {
  let vm: VictoriaMetrics | undefined;
  let agent: AgentProcess | undefined;
  const cgroups: TestCgroup[] = [];
  after(async () => {
    await agent?.kill();
    for (const cg of cgroups) await cg.remove();
    await vm?.stop();
  });

  test('cumulative counters carry the outage; RSS stays bounded', async () => {
    const port = await freePort();
    const cg = createCgroup('ts-fault-outage');
    cgroups.push(cg);
    // A second cgroup with 500 distinct command names: every export then carries ~20,000 points
    // (~40 per series), so batches held without bound would show in the agent's memory.
    const wide = createCgroup('ts-fault-outage-wide');
    cgroups.push(wide);
    agent = await startAgent({
      // A fixed V8 heap: without one, V8 lets garbage pile up on a machine with plenty of memory
      // and RSS drifts upward even when nothing leaks. With it, anything held without bound
      // (an unbounded queue) ends in an out-of-memory crash within the outage.
      env: { NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}` },
      config: faultConfig({
        metricsUrl: `http://127.0.0.1:${port}/opentelemetry/v1/metrics`,
        collectionInterval: '1s',
        otlp: {
          timeout: '10s',
          sending_queue: { queue_size: 5 },
          retry_on_failure: { initial_interval: '250ms', max_interval: '1s', max_elapsed_time: '10m' },
        },
      }),
    });
    let expected = 0;
    let wideExpected = 0;
    const rssMb: number[] = [];
    const t0 = Date.now();
    wideExpected += (await distinctNamesInCgroup(wide, 500, 'outage')) + 1;
    while (Date.now() - t0 < OUTAGE_MS) {
      expected += (await forkCountInCgroup(cg, 200)) + 1;
      rssMb.push(agent.rssKb() / 1024);
      await sleep(500);
    }
    assert.ok(agent.running, `the agent died during the outage (heap ${HEAP_MB} MB):\n${agent.logs.slice(-3000)}`);
    const m = await agent.metrics();
    assert.ok(m.sum('taskstats_agent_exporter_requests_total', { outcome: 'retryable' }) > 0, 'exports failed during the outage (backend down)');
    assert.ok(m.sum('taskstats_agent_exporter_queue_size') <= 5, 'the sending queue stays within its capacity');
    const logs = agent.logs;

    vm = await startVictoriaMetrics({ port });
    const seen = await waitForExits(vm, cg.path, expected, 30_000);
    if (seen !== expected) {
      const after = await agent.metrics();
      const exporter = after
        .select(/exporter|dropped/)
        .map((x) => `${x.name} ${JSON.stringify(x.labels)} ${x.value}`)
        .join('\n');
      assert.fail(`after the outage the backend holds ${seen} of the ${expected} exits (all ran while it was down)\n${exporter}\n${agent.logs.slice(-4000)}`);
    }
    const wideSeen = await waitForExits(vm, wide.path, wideExpected, 10_000);
    assert.equal(wideSeen, wideExpected, 'the wide cgroup too');

    // Memory: after the first few seconds (caches warm, queue full) the RSS must not keep growing.
    const settled = rssMb.slice(Math.floor(rssMb.length / 3));
    const growth = Math.max(...settled) - settled[0]!;
    if (process.env.FAULTS_VERBOSE) console.log('RSS during the outage (MB):', rssMb.map((x) => x.toFixed(0)).join(' '));
    assert.ok(growth < 40, `RSS grew by ${growth.toFixed(0)} MB during the outage (samples ${settled.map((x) => x.toFixed(0)).join(' ')} MB)`);
    assert.ok(Math.max(...rssMb) < 200, `RSS reached ${Math.max(...rssMb).toFixed(0)} MB`);
    // A down backend is retried quietly: warnings are rate-limited, not one per attempt.
    const warnings = logs.split('\n').filter((l) => /retrying|failed/i.test(l)).length;
    assert.ok(warnings < 40, `${warnings} warning lines in a ${OUTAGE_MS / 1000} s outage: not rate-limited`);

    const stop = await agent.stop();
    assert.equal(stop.code, 0);
    agent = undefined;
  });
});
