// test-requires: root taskstats libnl
/**
 * The agent paused (SIGSTOP) while thousands of processes exit: its receive buffer overflows and
 * the kernel drops exit events. After SIGCONT it must survive, count the loss in its
 * self-telemetry, say so in its log, and keep receiving: a known batch run afterwards is counted
 * exactly. Repeated, because a listener that ignores the poll error goes deaf only in some runs.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startAgent } from '../support/agent.js';
import { createCgroup, forkCount, forkCountInCgroup, waitFor } from '../support/workload.js';
import { faultConfig, waitForExits, withVictoriaMetrics } from './configs.js';

const ROUNDS = 3;
const STORM = 20_000;

describe('SIGSTOP during an exit storm', { timeout: 180_000 }, () => {
  const f = withVictoriaMetrics();

  test(`${ROUNDS} rounds of pause, ${STORM} exits, resume: drops counted and logged, later exits all counted`, async () => {
    f.agent = await startAgent({
      // 1 MiB holds far fewer than 20,000 exit messages (~1.3 KB each).
      config: faultConfig({ metricsUrl: f.vm.otlpMetricsUrl, collectionInterval: '1s', taskstats: { receive_buffer: '1MiB' } }),
    });
    const drops = async () => (await f.agent!.metrics()).sum('taskstats_agent_receiver_kernel_drops_total');
    for (let round = 1; round <= ROUNDS; round++) {
      const dropsBefore = await drops();
      f.agent.signal('SIGSTOP');
      try {
        await forkCount(STORM);
      } finally {
        f.agent.signal('SIGCONT');
      }
      await waitFor(`round ${round}: kernel drops counted in self-telemetry`, async () => (await drops()) > dropsBefore, 15_000, 200);
      assert.ok(f.agent.running, 'the agent survived');

      // It still hears exits: a known batch in a fresh cgroup is counted exactly.
      const cg = createCgroup(`ts-fault-sigstop-${round}`);
      f.cgroups.push(cg);
      const expected = (await forkCountInCgroup(cg, 500)) + 1;
      const seen = await waitForExits(f.vm, cg.path, expected, 20_000);
      assert.equal(seen, expected, `round ${round}: the backend holds ${seen} of ${expected} exits run after SIGCONT`);
    }
    const logged = f.agent.logRecords().filter((r) => /dropped exit events/i.test(String(r.msg)));
    assert.ok(logged.length >= 1, `the loss should be logged:\n${f.agent.logs.slice(-3000)}`);
    assert.match(String(logged[0]!.msg), /receive_buffer/, 'the warning says how to avoid the loss');
    assert.ok((await f.agent.get('/healthz')).ok, '/healthz answers after the storms');
    const stop = await f.agent.stop();
    assert.equal(stop.code, 0);
    f.agent = undefined;
  });
});
