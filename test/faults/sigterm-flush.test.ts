// test-requires: root taskstats libnl
/**
 * SIGTERM: everything the agent holds is flushed to the backend, and it exits 0 with every
 * shutdown step finished before the shutdown deadline.
 * The collection interval is an hour, so the exits of the workload are held in the agent until
 * the signal: the backend can only have them if shutdown flushed them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startAgent } from '../support/agent.js';
import { startVictoriaMetrics } from '../support/victoriametrics.js';
import { createCgroup, forkCountInCgroup, sleep, waitFor } from '../support/workload.js';
import { exitsInBackend, faultConfig, waitForExits, withVictoriaMetrics } from './configs.js';

describe('SIGTERM flushes and exits 0 before the shutdown deadline', { timeout: 120_000 }, () => {
  const f = withVictoriaMetrics();

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: exits held since the last collection reach the backend`, async () => {
      const cg = createCgroup(`ts-fault-${signal.toLowerCase()}`);
      f.cgroups.push(cg);
      f.agent = await startAgent({ config: faultConfig({ metricsUrl: f.vm.otlpMetricsUrl, collectionInterval: '1h' }) });
      const before = await f.agent.metrics();
      const received0 = before.sum('taskstats_agent_receiver_exits_received_total');
      const expected = (await forkCountInCgroup(cg, 300)) + 1;
      // The listener has seen them (its own counter), but nothing was exported yet.
      await waitFor(
        'the agent to receive the exits',
        async () => (await f.agent!.metrics()).sum('taskstats_agent_receiver_exits_received_total') - received0 >= expected,
        10_000,
      );
      await sleep(500);
      assert.equal(await exitsInBackend(f.vm, cg.path), 0, 'nothing should be exported before the signal (interval 1h)');

      const stop = await f.agent.stop(signal);
      assert.equal(stop.code, 0, `exit code after ${signal}:\n${f.agent.logs.slice(-3000)}`);
      assert.ok(f.agent.shutdownCompleted(), `${signal}: every shutdown step finished before the deadline:\n${f.agent.logs.slice(-3000)}`);
      const seen = await waitForExits(f.vm, cg.path, expected, 10_000);
      assert.equal(seen, expected, `the backend holds ${seen} of the ${expected} exits the agent held at ${signal}`);
      f.agent = undefined;
    });
  }

  test('SIGTERM while the backend is gone: still exits 0, by the shutdown deadline at the latest', async () => {
    const dead = await startVictoriaMetrics();
    const url = dead.otlpMetricsUrl;
    await dead.stop();
    f.agent = await startAgent({
      config: faultConfig({ metricsUrl: url, collectionInterval: '500ms', otlp: { retry_on_failure: { initial_interval: '200ms', max_elapsed_time: '10m' } } }),
    });
    await sleep(3000); // failing exports with retries pending
    const stop = await f.agent.stop('SIGTERM');
    assert.equal(stop.code, 0, f.agent.logs.slice(-3000));
    // The exporter's flush may keep trying the gone backend until the shutdown deadline ends it:
    // then that is the one step left unfinished, and the agent exits by its own deadline.
    const ended = f.agent.logRecords().find((r) => r.msg === 'shutdown complete' || String(r.msg).startsWith('shutdown deadline reached'));
    assert.ok(ended, `the agent ended its shutdown itself:\n${f.agent.logs.slice(-3000)}`);
    if (ended.msg !== 'shutdown complete') assert.deepEqual(ended.unfinished, ['exporter "otlp": flush and shutdown'], f.agent.logs.slice(-3000));
    f.agent = undefined;
  });
});
