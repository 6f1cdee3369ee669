import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Attributes, LogRecord, MetricDescriptor, Sample, SampleSchema } from '../../src/api/index.js';
import { AggregationTemporality, DataPointType, ValueType } from '../../src/api/index.js';
import { SeverityNumber } from '../../src/api/index.js';
import { MetricsStage, buildResource } from '../../src/metrics/index.js';
import { RecordingLogger, RecordingTelemetry } from '../../src/metrics/testing.js';
import { recordingContext, sdkMetrics } from '../otlp/testing.js';
import { debugExporterFactory } from './factory.js';
import { DebugExporter, formatLogs, newSummaryState, summarize } from './exporter.js';
import type { DebugExporterConfig } from './config.js';

// The names and attributes of the metric catalogue (docs/metrics.md), as the taskstats receiver
// describes them: the debug exporter reads the metrics stage's real output.
const c = (name: string, unit: string, pointAttributes?: Attributes): MetricDescriptor => ({
  name,
  unit,
  description: name,
  instrument: 'counter',
  valueType: unit === 's' ? 'double' : 'int',
  ...(pointAttributes ? { pointAttributes } : {}),
});
const SCHEMA: SampleSchema = {
  id: 'debug-test.process',
  metrics: [
    c('process.cpu.time', 's', { 'cpu.mode': 'user' }),
    c('process.cpu.time', 's', { 'cpu.mode': 'system' }),
    c('process.linux.delay.time', 's', { 'process.linux.delay.type': 'cpu' }),
    c('process.linux.delay.time', 's', { 'process.linux.delay.type': 'blkio' }),
    c('process.disk.io', 'By', { 'disk.io.direction': 'read' }),
    { ...c('process.exits', '{process}'), samplePointAttributes: ['process.exit.code'] },
    c('process.linux.io.syscalls', '{syscall}'),
  ],
};

let sampleTimeMs = 0;
function sample(attributes: Attributes, values: number[], final = false, exitCode?: number): Sample {
  return {
    schema: SCHEMA,
    attributes,
    values: Float64Array.from(values),
    final,
    timeMs: sampleTimeMs,
    ...(exitCode !== undefined ? { pointAttributes: { 'process.exit.code': exitCode } } : {}),
  };
}

function stage() {
  return new MetricsStage({
    seriesLimit: 1000,
    endedSeriesTtlMs: 60_000,
    resource: buildResource({}),
    telemetry: new RecordingTelemetry(),
    logger: new RecordingLogger(),
  });
}

const MAKE = Object.freeze({ 'process.executable.name': 'make', 'process.linux.cgroup': '/build' });
const CC1 = Object.freeze({ 'process.executable.name': 'cc1', 'process.linux.cgroup': '/build' });
const SSHD = Object.freeze({ 'process.executable.name': 'sshd', 'process.linux.cgroup': '/system.slice/ssh.service' });

describe('debug exporter', () => {
  test('basic: top workloads by CPU with cores, exits per second, largest delays, from the metrics stage', () => {
    const s = stage();
    const t0 = 1_700_000_000_000;
    const state = newSummaryState(t0);
    // The first collection (here empty) holds totals since the processes started: no rates.
    summarize(s.collect(t0).delta(), { verbosity: 'basic', top: 0 }, state);
    sampleTimeMs = t0 + 5000;
    // 10 s interval: cc1 burns 15 s of CPU (1.5 cores) over 30 exits, make 1 s, sshd 0.1 s.
    for (let i = 0; i < 30; i++) s.add([sample(CC1, [0.4, 0.1, 0.02, 0, 4096, 1, 100], true, i < 3 ? 1 : 0)]);
    s.add([sample(MAKE, [0.75, 0.25, 0.5, 1.25, 0, 0, 20])]);
    s.add([sample(SSHD, [0.05, 0.05, 0, 0, 0, 0, 3])]);
    const exporter = new DebugExporter(recordingContext('debug'), { verbosity: 'basic', top: 0 }, () => {});
    assert.equal(exporter.temporality, 'delta');
    const text = summarize(s.collect(t0 + 10_000).delta(), { verbosity: 'basic', top: 0 }, state);
    const lines = text.split('\n');
    assert.match(lines[0]!, /interval 10\.0 s/);
    assert.match(text, /CPU: 1\.61 cores in total \(16\.100 s\)/);
    const cpuRows = lines.filter((l) => / cores {2}user /.test(l));
    assert.equal(cpuRows.length, 3);
    assert.match(cpuRows[0]!, /^\s+1\.50 cores\s+user\s+12\.000 s\s+sys\s+3\.000 s\s+cc1 \/build$/);
    assert.match(cpuRows[1]!, /0\.10 cores .* make \/build$/);
    assert.match(cpuRows[2]!, /0\.010 cores .* sshd \/system\.slice\/ssh\.service$/);
    assert.match(text, /Exits: 30 \(3\.0\/s\), 3 non-zero or by signal/);
    const delayRows = lines.slice(lines.findIndex((l) => l.startsWith('Largest delays')) + 1).filter((l) => /\/s /.test(l));
    assert.match(delayRows[0]!, /1\.250 s\s+0\.1\d\/s\s+blkio\s+make \/build/);
    assert.match(delayRows[1]!, /0\.600 s\s+0\.06\/s\s+cpu\s+cc1 \/build/);
    assert.match(delayRows[2]!, /0\.500 s\s+0\.05\/s\s+cpu\s+make \/build/);
    assert.match(text, /Other metrics: process\.linux\.io\.syscalls \(3\)/);
    assert.ok(!/Data points:/.test(text));
  });

  test('normal adds exits per workload and disk I/O; detailed dumps every data point; top limits rows', () => {
    const s = stage();
    const first = s.collect(1000).delta();
    sampleTimeMs = 1500;
    s.add([sample(CC1, [1, 0, 0, 0, 8192, 1, 5], true, 0), sample(MAKE, [2, 0, 0, 0, 0, 0, 1])]);
    const rm = s.collect(2000).delta();
    const normalState = newSummaryState(1000);
    summarize(first, { verbosity: 'normal', top: 1 }, normalState);
    const normal = summarize(rm, { verbosity: 'normal', top: 1 }, normalState);
    assert.match(normal, /\n\s+1 \(\s+1\.0\/s\)\s+failed\s+0\s+cc1 \/build\n/);
    assert.match(normal, /Disk I\/O \(bytes\):\n\s+read\s+8192\s+write\s+0\s+cc1 \/build\n/);
    assert.equal(normal.split('\n').filter((l) => / cores {2}user /.test(l)).length, 1, 'top: 1');
    assert.match(normal, /process\.linux\.io\.syscalls\s+6 \{syscall\}\s+2 points/);
    const detailed = summarize(rm, { verbosity: 'detailed', top: 0 }, newSummaryState(1000));
    assert.match(detailed, /Data points:/);
    assert.match(detailed, /process\.cpu\.time\{.*"cpu\.mode"="user".*\} \+2 s|process\.cpu\.time\{.*cpu\.mode="user".*\} \+2 s/);
    assert.match(detailed, /process\.exits\{.*process\.exit\.code=0.*\} \+1 \{process\}/);
    const pointCount = rm.scopeMetrics.reduce((n, sm) => n + sm.metrics.reduce((m, x) => m + x.dataPoints.length, 0), 0);
    assert.ok(pointCount >= 6);
    assert.equal((detailed.split('Data points:')[1]!.match(/^ {2}process\./gm) ?? []).length, pointCount, 'every data point, once');
  });

  test('the first collection shows totals since the processes started, without rates', () => {
    const s = stage();
    sampleTimeMs = 500;
    s.add([sample(CC1, [30, 10, 2, 0, 0, 0, 0]), sample(MAKE, [1, 0, 0, 0, 0, 1, 0], true, 0)]);
    const text = summarize(s.collect(1000).delta(), { verbosity: 'normal', top: 0 }, newSummaryState(900));
    assert.match(text, /first collection: totals since each process started/);
    assert.match(text, /CPU: 41\.000 s in total; top workloads:\n\s+user\s+30\.000 s\s+sys\s+10\.000 s\s+cc1 \/build\n/);
    assert.match(text, /Exits: 1, 0 non-zero/);
    assert.ok(!/cores|\/s/.test(text), 'no rates in the first summary');
  });

  test("the agent's own telemetry scope is kept out of the tables; basic shows only loss", () => {
    const s = stage();
    const state = newSummaryState(0);
    summarize(s.collect(0).delta(), { verbosity: 'basic', top: 0 }, state);
    sampleTimeMs = 10;
    s.add([sample(MAKE, [1, 0, 0, 0, 0, 0, 0])]);
    const rm = s.collect(1000).delta();
    const point = {
      startTime: [0, 0] as [number, number],
      endTime: [1, 0] as [number, number],
      attributes: { 'component.id': 'otlp', reason: 'queue_full' },
      value: 3,
    };
    const withSelf = {
      resource: rm.resource,
      scopeMetrics: [
        ...rm.scopeMetrics,
        {
          scope: { name: 'taskstats-agent.self' },
          metrics: [
            {
              descriptor: { name: 'taskstats_agent.component.dropped_items', description: '', unit: '{item}', valueType: ValueType.DOUBLE },
              aggregationTemporality: AggregationTemporality.DELTA,
              dataPointType: DataPointType.SUM,
              isMonotonic: true,
              dataPoints: [point, { ...point, attributes: { 'component.id': 'otlp', reason: 'no_endpoint' }, value: 50 }],
            },
            {
              descriptor: { name: 'taskstats_agent.exporter.sent_points', description: '', unit: '{point}', valueType: ValueType.DOUBLE },
              aggregationTemporality: AggregationTemporality.DELTA,
              dataPointType: DataPointType.SUM,
              isMonotonic: true,
              dataPoints: [{ ...point, value: 40 }],
            },
          ],
        },
      ],
    };
    const text = summarize(withSelf, { verbosity: 'basic', top: 0 }, state);
    assert.match(text, /^Agent: component\.dropped_items 3 \(otlp: queue_full\)$/m, 'no_endpoint (an idle otlp exporter) is not repeated');
    assert.ok(!/sent_points/.test(text));
    assert.match(text, /1 workloads/);
  });

  test('cumulative input is turned into deltas; other metrics and histograms degrade gracefully', async () => {
    const sdk = sdkMetrics({ 'service.name': 'x' }, 'cumulative');
    const cpu = sdk.meter.createCounter('process.cpu.time', { unit: 's' });
    const requests = sdk.meter.createCounter('http.server.requests');
    const latency = sdk.meter.createHistogram('http.server.duration', { unit: 'ms' });
    cpu.add(2, { 'cpu.mode': 'user', 'process.executable.name': 'java' });
    requests.add(5);
    latency.record(12);
    const state = newSummaryState();
    const cfg: DebugExporterConfig = { verbosity: 'normal', top: 0 };
    summarize(await sdk.collect(), cfg, state);
    cpu.add(1, { 'cpu.mode': 'user', 'process.executable.name': 'java' });
    requests.add(7);
    latency.record(30);
    const second = summarize(await sdk.collect(), cfg, state);
    await sdk.shutdown();
    assert.match(second, /user\s+1\.000 s\s+sys\s+0\.000 s\s+java/);
    assert.match(second, /http\.server\.requests\s+7 /);
    // Histograms: what was observed since the previous summary (one observation, 30 ms).
    assert.match(second, /http\.server\.duration: 1 observed, mean 30(\.0+)? ms/);
    assert.ok(!/Exits:/.test(second), 'no exits section without process.exits');
  });

  test('distributions: p50 and p99 are the bounds of the buckets holding the true quantiles, merged over workloads at different scales', () => {
    const schema: SampleSchema = {
      id: 'debug-test.lifetime',
      metrics: [{ name: 'process.linux.lifetime', unit: 's', description: '', instrument: 'histogram', valueType: 'double' }],
    };
    const s = stage();
    let seed = 7;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    // Two narrow ranges (the same fine scale, different offsets), a wide one (coarse scale), and
    // two single observations (scale 20: about 7 million buckets apart).
    const workloads: Array<[string, () => number, number]> = [
      ['a', () => 2 + rnd(), 150],
      ['b', () => 2.4 + rnd(), 60],
      ['c', () => 100 * 1000 ** rnd(), 90],
      ['d', () => 0.5, 1],
      ['e', () => 50, 1],
    ];
    const all: number[] = [];
    for (const [name, draw, n] of workloads) {
      const attributes = { 'process.executable.name': name };
      for (let i = 0; i < n; i++) {
        const v = draw();
        all.push(v);
        s.add([{ schema, attributes, values: Float64Array.of(v), final: false, timeMs: 1000 }]);
      }
    }
    const text = summarize(s.collect(2000).delta(), { verbosity: 'basic', top: 0 }, newSummaryState(0));
    const m = /process\.linux\.lifetime: 302 observed, mean [\d.]+ s, p50 <= ([\d.]+) s, p99 <= ([\d.]+) s, max ([\d.]+) s/.exec(text);
    assert.ok(m, text);
    all.sort((x, y) => x - y);
    // The coarsest scale here is that of 'c' (10 octaves in at most 160 buckets: scale 3 or 4).
    const widest = 2 ** (1 / 8);
    for (const [q, shown] of [
      [0.5, Number(m[1])],
      [0.99, Number(m[2])],
    ] as const) {
      const truth = all[Math.ceil(q * all.length) - 1]!;
      assert.ok(shown >= truth - 1e-4 && shown <= truth * widest + 1e-4, `p${q * 100}: ${shown} for the true ${truth}`);
    }
    assert.ok(Math.abs(Number(m[3]) - all[all.length - 1]!) < 1e-4);
  });

  test('the factory writes one summary per export; nothing after shutdown', async () => {
    const written: string[] = [];
    const exporter = new DebugExporter(recordingContext('debug/x'), debugExporterFactory.defaultConfig(), (t) => written.push(t));
    assert.deepEqual(debugExporterFactory.defaultConfig(), { verbosity: 'basic', top: 0 });
    const s = stage();
    s.collect(0);
    sampleTimeMs = 100;
    s.add([sample(MAKE, [1, 1, 0, 0, 0, 0, 0])]);
    await exporter.start();
    await exporter.export(s.collect(5000).delta());
    await exporter.export(s.collect(10_000).delta());
    await exporter.shutdown();
    await exporter.export(s.collect(15_000).delta());
    assert.equal(written.length, 2);
    assert.match(written[0]!, /^--- debug\/x /);
    assert.match(written[1]!, /no data points/);
  });

  test('events: one line each (basic), attributes on the line (normal), every attribute below it (detailed)', async () => {
    const records: LogRecord[] = [
      {
        timeMs: Date.UTC(2026, 11, 2, 8, 0, 1, 250),
        severityNumber: SeverityNumber.WARN,
        eventName: 'process.exit',
        body: 'sh exited with 3',
        attributes: { 'process.pid': 42, 'process.exit.code': 3 },
      },
      {
        timeMs: Date.UTC(2026, 11, 2, 8, 0, 2),
        severityNumber: SeverityNumber.ERROR,
        severityText: 'ERROR',
        eventName: 'process.exit',
        body: 'cc1 killed by SIGKILL',
        attributes: { 'process.pid': 7, 'process.linux.exit.signal': 'SIGKILL' },
      },
    ];
    const config = (verbosity: DebugExporterConfig['verbosity']): DebugExporterConfig => ({ verbosity, top: 0 });
    assert.equal(
      formatLogs(records, config('basic')),
      '2026-12-02T08:00:01.250Z WARN  process.exit: sh exited with 3\n2026-12-02T08:00:02.000Z ERROR process.exit: cc1 killed by SIGKILL\n',
    );
    assert.equal(
      formatLogs(records.slice(0, 1), config('normal')),
      '2026-12-02T08:00:01.250Z WARN  process.exit: sh exited with 3 {process.pid=42, process.exit.code=3}\n',
    );
    assert.equal(
      formatLogs(records.slice(1), config('detailed')),
      '2026-12-02T08:00:02.000Z ERROR process.exit: cc1 killed by SIGKILL\n    process.linux.exit.signal: "SIGKILL"\n    process.pid: 7\n',
    );
    // The factory declares both signals; exportLogs writes one block per batch.
    assert.deepEqual(debugExporterFactory.signals, ['metrics', 'logs']);
    const written: string[] = [];
    const exporter = new DebugExporter(recordingContext('debug'), config('basic'), (t) => written.push(t));
    await exporter.start();
    await exporter.exportLogs(records);
    await exporter.exportLogs([]);
    await exporter.shutdown();
    await exporter.exportLogs(records);
    assert.equal(written.length, 1);
  });
});
