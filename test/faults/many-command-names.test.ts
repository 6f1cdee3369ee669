// test-requires: root taskstats libnl cgroup2
/**
 * Distinct command names without end (a build farm, a fuzzer, a shell loop over generated
 * binaries): the series stay at the configured limit, the rest is summed into the overflow series
 * and counted, nothing is lost, and memory stays bounded instead of growing with every new name.
 *
 * Two parts:
 *  - 100,000 names through the receiver's accounting and the metrics stage in this process, where
 *    the heap can be measured exactly after a forced GC (100,000 real processes would take
 *    minutes on two cores);
 *  - 12,000 real processes, each renaming itself with prctl before it exits, through the running
 *    agent to a real VictoriaMetrics, with the agent's V8 heap capped.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { DataPoint } from '@opentelemetry/sdk-metrics';
import { ProcessAccounting } from '../../plugins/taskstats/accounting.js';
import { NO_PROCESS_INFO, newTaskRecord } from '../../plugins/taskstats/record.js';
import type { SampleBatch } from '../../src/api/index.js';
import { MetricsStage, OVERFLOW_ATTRIBUTE } from '../../src/metrics/stage.js';
import { RecordingLogger, RecordingTelemetry } from '../../src/metrics/testing.js';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { createCgroup, distinctNamesInCgroup, waitFor } from '../support/workload.js';
import { faultConfig, latestSum, withVictoriaMetrics } from './configs.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
function heapUsedMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const LIMIT = 1000;
const NAMES = 100_000;

describe('many distinct command names', { timeout: 240_000 }, () => {
  test('100,000 names through accounting and the metrics stage: bounded series and heap, overflow counted, totals kept', () => {
    const telemetry = new RecordingTelemetry();
    const logger = new RecordingLogger();
    const accounting = new ProcessAccounting({ perProcess: false, logger, telemetry });
    const stage = new MetricsStage({
      seriesLimit: LIMIT,
      endedSeriesTtlMs: 5 * 60_000,
      resource: resourceFromAttributes({ 'service.name': 'faults' }),
      telemetry,
      logger,
    });
    const rec = newTaskRecord();
    const info = { ...NO_PROCESS_INFO, cgroup: '/faults/names' };
    let pid = 1000;
    /** `n` processes, each with its own name, exit after burning 2 ms of user time. */
    const exits = (first: number, n: number) => {
      for (let i = first; i < first + n; i++) {
        rec.kind = 'exit';
        rec.aggregate = 'pid';
        rec.version = 16;
        rec.pid = rec.tgid = ++pid;
        rec.ppid = 1;
        rec.comm = `c${i}`;
        rec.flags = 0x20; // AGROUP on the leader: the process ended
        rec.startTimeSec = 1_700_000_000;
        rec.exitStatus = 0;
        rec.exitCode = 0;
        rec.userUs = 2000;
        rec.cpuRunRealNs = 2_000_000;
        const out: SampleBatch = [];
        accounting.exit(rec, null, info, Date.now(), out);
        stage.add(out);
      }
    };
    // Warm up past every bounded cache (the receiver's attributes cache holds 20,000), then
    // 100,000 new names.
    const WARM = 40_000;
    exits(0, WARM);
    stage.collect().cumulative();
    const heapWarm = heapUsedMb();
    exits(WARM, NAMES);
    const rm = stage.collect().cumulative();
    const heapAfter = heapUsedMb();
    const run = WARM + NAMES;

    assert.ok(stage.size <= LIMIT + 1, `${stage.size} series held (limit ${LIMIT} + overflow)`);
    const exitPoints = rm.scopeMetrics
      .flatMap((s) => s.metrics)
      .filter((m) => m.descriptor.name === 'process.exits')
      .flatMap((m) => m.dataPoints as DataPoint<number>[]);
    const total = exitPoints.reduce((t, p) => t + p.value, 0);
    assert.equal(total, run, 'every exit is counted, in its own series or in the overflow series');
    const overflowPoints = exitPoints.filter((p) => p.attributes[OVERFLOW_ATTRIBUTE] === true);
    assert.equal(
      overflowPoints.reduce((t, p) => t + p.value, 0),
      run - LIMIT,
      'the overflow series holds the rest',
    );
    assert.equal(telemetry.counters.get('series_overflow'), run - LIMIT, 'overflow counted in self-telemetry');
    const cpu = rm.scopeMetrics
      .flatMap((s) => s.metrics)
      .filter((m) => m.descriptor.name === 'process.cpu.time')
      .flatMap((m) => m.dataPoints as DataPoint<number>[])
      .reduce((t, p) => t + p.value, 0);
    assert.ok(Math.abs(cpu - run * 0.002) < 1e-6, `CPU time is kept across the overflow (${cpu} s, expected ${run * 0.002} s)`);
    // 100,000 more names must not cost memory per name (a cache per name would: ~110 bytes each,
    // 11 MB; bounded caches cycling through their limit stay within a few MB).
    const growth = heapAfter - heapWarm;
    assert.ok(growth < 6, `heap grew by ${growth.toFixed(1)} MB with ${NAMES} more names (${heapWarm.toFixed(1)} -> ${heapAfter.toFixed(1)} MB)`);
  });

  describe('real processes through the agent', () => {
    const REAL_NAMES = 12_000;
    const REAL_LIMIT = 500;
    const STEP = 4_000;
    const HEAP_MB = 96;
    const f = withVictoriaMetrics();

    test(`${REAL_NAMES} names: series bounded by series_limit ${REAL_LIMIT}, overflow counted and logged, nothing lost`, async () => {
      const cg = createCgroup('ts-fault-names');
      f.cgroups.push(cg);
      // Only the workload's cgroup reaches the series limit (a filter before it), so the overflow
      // series holds our processes and nothing else of the host: the sum below is exact.
      const config = faultConfig({
        metricsUrl: f.vm.otlpMetricsUrl,
        collectionInterval: '2s',
        seriesLimit: REAL_LIMIT,
        taskstats: { receive_buffer: '64MiB' },
      });
      config.processors = { filter: { include: { cgroups: [cg.path] } } };
      config.service.pipelines.metrics.processors = ['filter'];
      f.agent = await startAgent({
        env: { NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}` },
        // ~40 points per series and ~6 us of CPU per exported point: 2 s keeps the agent far
        // from saturation on a loaded two-core machine.
        config,
      });
      const received0 = (await f.agent.metrics()).sum('taskstats_agent_receiver_exits_received_total');
      let expected = 0;
      for (let first = 0; first < REAL_NAMES; first += STEP) expected += (await distinctNamesInCgroup(cg, STEP, 'n', first)) + 1;
      // Received by the receiver, then counted by the metrics stage when the batch reaches it:
      // wait for both (the stage's overflow counter trails the receiver's by up to one batch).
      const settled = (s: Awaited<ReturnType<AgentProcess['metrics']>>) =>
        s.sum('taskstats_agent_receiver_exits_received_total') - received0 >= expected && s.sum(/series_overflow_total$/) >= REAL_NAMES - REAL_LIMIT;
      await waitFor('the agent to receive and count every exit', async () => settled(await f.agent!.metrics()), 30_000).catch(() => undefined);
      const m = await f.agent.metrics();
      assert.ok(m.sum('taskstats_agent_receiver_exits_received_total') - received0 >= expected, 'every exit received');
      assert.ok(f.agent.running, `the agent died (heap ${HEAP_MB} MB)`);
      assert.equal(m.sum(/kernel_drops_total$/), 0, 'no kernel drops (else the exact count below is meaningless)');
      const overflow = m.sum(/series_overflow_total$/);
      assert.ok(overflow >= REAL_NAMES - REAL_LIMIT, `overflow counted in self-telemetry: ${overflow} (expected >= ${REAL_NAMES - REAL_LIMIT})`);
      assert.match(f.agent.logs, /series limit/i, 'the overflow is logged');

      // The backend: the workload's exits are all there, in the cgroup's series or in the
      // overflow series, and nothing else (the filter lets no other process through).
      let inCgroup = { total: 0, series: 0 };
      let inOverflow = { total: 0, series: 0 };
      await waitFor(
        'the backend to hold every exit',
        async () => {
          inCgroup = await latestSum(f.vm, 'process.exits', { 'process.linux.cgroup': cg.path });
          inOverflow = await latestSum(f.vm, 'process.exits', { [OVERFLOW_ATTRIBUTE]: 'true' });
          return inCgroup.total + inOverflow.total === expected;
        },
        60_000,
        1000,
      ).catch(() => undefined);
      assert.equal(
        inCgroup.total + inOverflow.total,
        expected,
        `exits: ${inCgroup.total} in the cgroup's series + ${inOverflow.total} in overflow, ${expected} run`,
      );
      assert.ok(inOverflow.total > 0, `the overflow series holds exits (${inOverflow.total})`);
      const sets = new Set(
        (await f.vm.exportSeries('{__name__="process.exits"}')).map((s) => `${s.metric['process.executable.name']}\0${s.metric['process.linux.cgroup']}`),
      );
      assert.ok(sets.size <= REAL_LIMIT + 1, `${sets.size} attribute sets of process.exits in the backend (limit ${REAL_LIMIT} + overflow)`);
      const stop = await f.agent.stop();
      assert.equal(stop.code, 0);
      f.agent = undefined;
    });
  });
});
