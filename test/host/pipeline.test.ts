/**
 * Pipelines in-process: the synchronous fast path, batch order behind asynchronous processors,
 * contained processor errors, exporters that fail or hang without holding back the others,
 * fan-out copies, rate-limited component logs, self-telemetry (delta state, Prometheus text).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Exporter, Processor, ResourceMetrics, Sample, SampleBatch, SampleSchema } from '../../src/api/index.js';
import { ComponentLogger, createRootLogger, LogRateLimiter } from '../../src/logging.js';
import { buildResource } from '../../src/metrics/resource.js';
import { MetricsStage } from '../../src/metrics/stage.js';
import { FanOutConsumer, Pipeline } from '../../src/pipeline.js';
import type { PipelineStage } from '../../src/pipeline.js';
import { DeltaState, SelfTelemetry } from '../../src/telemetry.js';
import { parsePrometheus } from './helpers.js';

const schema: SampleSchema = {
  id: 'test.items',
  metrics: [{ name: 'test.items', unit: '{item}', description: 'items', instrument: 'counter', valueType: 'int' }],
};

function batchOf(n: number, tag: number, attributes = { w: 'a' }): SampleBatch {
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) out.push({ schema, attributes, values: new Float64Array([1]), final: false, timeMs: Date.now(), context: { tag } });
  return out;
}

/** Records what reaches the stage, in order (stands in for the metrics stage where order is the point). */
class RecordingStage implements PipelineStage {
  events: string[] = [];
  add(batch: SampleBatch): void {
    this.events.push(`add:${String(batch[0]!.context?.tag)}:${batch.length}`);
  }
  collect(): { cumulative(): ResourceMetrics; delta(): ResourceMetrics } {
    this.events.push('collect');
    const rm = { resource: buildResource({}), scopeMetrics: [] } as unknown as ResourceMetrics;
    return { cumulative: () => rm, delta: () => rm };
  }
}

function quietLogger() {
  const lines: string[] = [];
  const root = createRootLogger({ level: 'debug', encoding: 'json', write: (l) => lines.push(l) });
  return { lines, logger: new ComponentLogger(root, new LogRateLimiter(), 'test') };
}

const noop = { async start() {}, async shutdown() {} };

function processor(fn: (b: SampleBatch) => SampleBatch | Promise<SampleBatch>): Processor {
  return { ...noop, process: fn };
}

describe('pipeline', () => {
  test('the pipeline owns the cadence: one collection per round of its receivers, the fastest sets the pace', () => {
    const stage = new RecordingStage();
    const p = new Pipeline('metrics', [], stage, [], new SelfTelemetry('test'), quietLogger().logger);
    const collects = () => stage.events.filter((e) => e === 'collect').length;
    // Two receivers of one interval, out of phase: one collection per interval, not two.
    p.collectionDone('a');
    assert.equal(collects(), 1, 'the first receiver known completes the first round');
    p.collectionDone('b');
    assert.equal(collects(), 1, 'b is new: the round now waits for a too');
    for (let i = 0; i < 5; i++) {
      p.collectionDone('a');
      assert.equal(collects(), 2 + i, 'a completes the round b started');
      p.collectionDone('b');
      assert.equal(collects(), 2 + i, 'b alone does not complete a round');
    }
    // b stops: a's second cycle within a round completes it, so exports go on at a's pace.
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) {
      p.collectionDone('a');
      counts.push(collects());
    }
    assert.deepEqual(counts, [7, 7, 8, 9, 10]);
  });

  test('synchronous processors: the batch reaches the stage before consume() returns', () => {
    const stage = new RecordingStage();
    const t = new SelfTelemetry('test');
    const p = new Pipeline('metrics', [{ id: 'keep_two', processor: processor((b) => b.slice(0, 2)) }], stage, [], t, quietLogger().logger);
    p.consume(batchOf(5, 1));
    assert.deepEqual(stage.events, ['add:1:2']);
    p.collectionDone();
    assert.deepEqual(stage.events, ['add:1:2', 'collect']);
    const m = parsePrometheus(t.toPrometheus());
    assert.equal(m.get('taskstats_agent_processor_incoming_samples_total{component_id="keep_two",pipeline_id="metrics"}'), 5);
    assert.equal(
      m.get('taskstats_agent_component_dropped_items_total{component_id="keep_two",pipeline_id="metrics",component_kind="processor",reason="filtered"}'),
      3,
    );
  });

  test('asynchronous processors keep batch and collection order', async () => {
    const stage = new RecordingStage();
    let k = 0;
    // Delays that would reorder batches if they were not queued: 30, 1, 20, 1, ...
    const slow = processor((b) => new Promise((r) => setTimeout(() => r(b), [30, 1, 20, 1, 10][k++ % 5])));
    const sometimesAsync = processor((b) => (Number(b[0]!.context?.tag) % 2 === 0 ? Promise.resolve(b) : b));
    const p = new Pipeline(
      'metrics',
      [
        { id: 'slow', processor: slow },
        { id: 'mixed', processor: sometimesAsync },
      ],
      stage,
      [],
      new SelfTelemetry('t'),
      quietLogger().logger,
    );
    const expected: string[] = [];
    for (let i = 0; i < 10; i++) {
      p.consume(batchOf(1, i));
      expected.push(`add:${i}:1`);
      if (i % 3 === 2) {
        p.collectionDone();
        expected.push('collect');
      }
    }
    assert.deepEqual(stage.events, [], 'nothing passes the slow processor synchronously');
    await p.whenIdle();
    assert.deepEqual(stage.events, expected);
  });

  test('a throwing processor drops only its batch, counted with processor_error; later batches pass', async () => {
    const stage = new RecordingStage();
    const t = new SelfTelemetry('t');
    const { lines, logger } = quietLogger();
    const p = new Pipeline(
      'metrics/x',
      [
        {
          id: 'thrower',
          processor: processor((b) => {
            if (b[0]!.context?.tag === 2) throw new Error('bad batch');
            return b;
          }),
        },
        { id: 'rejecter', processor: processor((b) => (b[0]!.context?.tag === 3 ? Promise.reject(new Error('async bad')) : b)) },
        { id: 'undefined_returner', processor: processor((b) => (b[0]!.context?.tag === 4 ? (undefined as unknown as SampleBatch) : b)) },
      ],
      stage,
      [],
      t,
      logger,
    );
    for (let i = 1; i <= 5; i++) p.consume(batchOf(4, i));
    await p.whenIdle();
    assert.deepEqual(stage.events, ['add:1:4', 'add:5:4']);
    const m = parsePrometheus(t.toPrometheus());
    for (const id of ['thrower', 'rejecter', 'undefined_returner']) {
      assert.equal(
        m.get(
          `taskstats_agent_component_dropped_items_total{component_id="${id}",pipeline_id="metrics/x",component_kind="processor",reason="processor_error"}`,
        ),
        4,
        id,
      );
    }
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(logged.some((l) => l.component === 'thrower' && l.error === 'Error: bad batch'));
    assert.ok(logged.some((l) => l.component === 'undefined_returner' && String(l.error).includes('returned undefined')));
  });

  test('exporters run concurrently: one hanging and one failing do not hold back the third', async () => {
    const t = new SelfTelemetry('t');
    const stage = new MetricsStage({
      seriesLimit: 100,
      endedSeriesTtlMs: 60_000,
      resource: buildResource({}),
      telemetry: t.forComponent('pipeline', { 'component.id': 'metrics_stage' }),
      logger: quietLogger().logger,
    });
    const received: ResourceMetrics[] = [];
    const exporter = (exp: (rm: ResourceMetrics) => Promise<void>): Exporter => ({
      ...noop,
      temporality: 'cumulative',
      export: exp,
      forceFlush: async () => {},
    });
    let releaseHang: () => void = () => undefined;
    const p = new Pipeline(
      'metrics',
      [],
      stage,
      [
        { id: 'hang', exporter: exporter(() => new Promise<void>((r) => (releaseHang = r))), temporality: 'cumulative', withSelfTelemetry: false },
        {
          id: 'fail',
          exporter: exporter(() => Promise.reject(new Error('backend down'))),
          temporality: 'cumulative',
          withSelfTelemetry: false,
        },
        {
          id: 'good',
          exporter: exporter((rm) => {
            received.push(rm);
            return Promise.resolve();
          }),
          temporality: 'cumulative',
          withSelfTelemetry: true,
        },
      ],
      t,
      quietLogger().logger,
    );
    p.consume(batchOf(3, 1));
    p.collectionDone();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(received.length, 1, 'the good exporter got its export while the other hangs');
    const scopes = received[0]!.scopeMetrics.map((s) => s.scope.name);
    assert.deepEqual(scopes, ['taskstats-agent', 'taskstats-agent.self']);
    const items = received[0]!.scopeMetrics[0]!.metrics.find((m) => m.descriptor.name === 'test.items')!;
    assert.equal(items.dataPoints[0]!.value, 3);
    let m = parsePrometheus(t.toPrometheus());
    assert.ok(m.get('taskstats_agent_exporter_failed_points_total{component_id="fail"}')! >= 1);
    assert.equal(m.get('taskstats_agent_exporter_failed_exports_total{component_id="fail"}'), 1);
    assert.equal(m.get('taskstats_agent_exporter_sent_points_total{component_id="hang"}'), 0);
    releaseHang();
    await p.exportsSettled();
    m = parsePrometheus(t.toPrometheus());
    assert.equal(m.get('taskstats_agent_exporter_sent_points_total{component_id="hang"}'), 1);
  });

  test('an exporter that never settles is skipped after 8 unfinished exports (counted), the others still export', async () => {
    const t = new SelfTelemetry('t');
    const stage = new MetricsStage({
      seriesLimit: 100,
      endedSeriesTtlMs: 60_000,
      resource: buildResource({}),
      telemetry: t.forComponent('pipeline', { 'component.id': 'metrics_stage' }),
      logger: quietLogger().logger,
    });
    let hangingCalls = 0;
    let goodCalls = 0;
    const exporter = (exp: (rm: ResourceMetrics) => Promise<void>): Exporter => ({
      ...noop,
      temporality: 'cumulative',
      export: exp,
      forceFlush: async () => {},
    });
    const { lines, logger } = quietLogger();
    const p = new Pipeline(
      'metrics',
      [],
      stage,
      [
        { id: 'stuck', exporter: exporter(() => (hangingCalls++, new Promise<void>(() => undefined))), temporality: 'cumulative', withSelfTelemetry: false },
        { id: 'good', exporter: exporter(() => (goodCalls++, Promise.resolve())), temporality: 'cumulative', withSelfTelemetry: false },
      ],
      t,
      logger,
    );
    for (let i = 0; i < 12; i++) {
      p.consume(batchOf(1, i));
      p.collectionDone();
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(hangingCalls, 8);
    assert.equal(goodCalls, 12);
    const m = parsePrometheus(t.toPrometheus());
    assert.equal(
      m.get('taskstats_agent_component_dropped_items_total{component_id="stuck",component_kind="exporter",pipeline_id="metrics",reason="export_backlog"}'),
      4,
    );
    assert.equal(lines.filter((l) => l.includes('too many unfinished exports')).length, 1, 'logged once (rate-limited)');
  });

  test('fan-out gives every pipeline its own samples: one pipeline rewriting does not touch the other', () => {
    const a = new RecordingStage();
    const b = new RecordingStage();
    const seenByB: Sample[] = [];
    const t = new SelfTelemetry('t');
    const { logger } = quietLogger();
    const rewrite = processor((batch) => {
      for (const s of batch) {
        s.attributes = { ...s.attributes, rewritten: true };
        s.values[0] = 100;
      }
      return batch;
    });
    const pa = new Pipeline('metrics/a', [{ id: 'rewrite', processor: rewrite }], a, [], t, logger);
    const pb = new Pipeline('metrics/b', [{ id: 'look', processor: processor((batch) => (seenByB.push(...batch), batch)) }], b, [], t, logger);
    const c = t.counter('x', 'x', '1', {});
    const fan = new FanOutConsumer('src', [pa, pb], t.counter('accepted', 'a', '1', {}), c, c, logger);
    fan.consume(batchOf(2, 7));
    assert.deepEqual(a.events, ['add:7:2']);
    assert.deepEqual(b.events, ['add:7:2']);
    assert.deepEqual(
      seenByB.map((s) => [s.attributes, s.values[0]]),
      [
        [{ w: 'a' }, 1],
        [{ w: 'a' }, 1],
      ],
    );
    fan.close();
    fan.consume(batchOf(5, 8));
    assert.equal(c.value, 5, 'batches after close are counted as dropped');
    assert.deepEqual(a.events, ['add:7:2']);
  });
});

describe('logging and self-telemetry', () => {
  test('identical warnings are rate-limited per key and report how many were suppressed', () => {
    const limiter = new LogRateLimiter(10_000);
    assert.equal(limiter.admit('k', 0), 0);
    assert.equal(limiter.admit('k', 1000), -1);
    assert.equal(limiter.admit('k', 2000), -1);
    assert.equal(limiter.admit('other', 2000), 0);
    assert.equal(limiter.admit('k', 10_001), 2);
    assert.equal(limiter.admit('k', 10_002), -1);
    assert.deepEqual(limiter.drainSuppressed(), [{ key: 'k', suppressed: 1 }]);

    const { lines, logger } = quietLogger();
    for (let i = 0; i < 1000; i++) logger.warn('disk full', { attempt: i });
    logger.error('disk full');
    logger.info('not limited');
    logger.info('not limited');
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      parsed.map((l) => [l.level, l.msg]),
      [
        ['warn', 'disk full'],
        ['error', 'disk full'],
        ['info', 'not limited'],
        ['info', 'not limited'],
      ],
    );
  });

  test('component counters and gauges, Prometheus text, delta state', () => {
    const t = new SelfTelemetry('1.2.3');
    const ct = t.forComponent('receiver', { 'component.id': 'src/a' });
    const lost = ct.counter('exits_lost', 'Exit records the kernel dropped.');
    lost.add(3);
    lost.add(2, { cpu: 1 });
    ct.gauge('queue_size', 'Queued records.', () => 7);
    ct.gauge('broken', 'Throws.', () => {
      throw new Error('x');
    });
    ct.dropped(4, 'too_old');
    assert.throws(() => ct.counter('Bad-Name', 'x'), /snake_case/);
    const text = t.toPrometheus();
    assert.match(text, /^# TYPE taskstats_agent_receiver_exits_lost_total counter$/m);
    const m = parsePrometheus(text);
    assert.equal(m.get('taskstats_agent_receiver_exits_lost_total{component_id="src/a"}'), 3);
    assert.equal(m.get('taskstats_agent_receiver_exits_lost_total{cpu="1",component_id="src/a"}'), 2);
    assert.equal(m.get('taskstats_agent_receiver_queue_size{component_id="src/a"}'), 7);
    assert.equal(m.get('taskstats_agent_component_dropped_items_total{component_id="src/a",component_kind="receiver",reason="too_old"}'), 4);
    assert.ok(![...m.keys()].some((k) => k.includes('broken')));

    const delta = new DeltaState(t.startTimeMs);
    const first = t.toScopeMetrics(Date.now(), delta);
    assert.equal(first.scope.name, 'taskstats-agent.self');
    assert.equal(first.scope.version, '1.2.3');
    const v = (sm: typeof first) =>
      sm.metrics.find((x) => x.descriptor.name === 'taskstats_agent.receiver.exits_lost')!.dataPoints.find((p) => !('cpu' in p.attributes))!.value;
    assert.equal(v(first), 3);
    lost.add(10);
    assert.equal(v(t.toScopeMetrics(Date.now(), delta)), 10, 'delta: growth since the previous call');
    assert.equal(v(t.toScopeMetrics(Date.now())), 13, 'cumulative');
  });
});
