import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import type { Attributes, Sample, SampleSchema } from '../api/index.js';
import { MetricsStage, OVERFLOW_ATTRIBUTE, buildResource } from './index.js';
import { RecordingLogger, RecordingTelemetry, pointsOf, valueOf } from './testing.js';

const SCHEMA: SampleSchema = {
  id: 'test.process',
  metrics: [
    { name: 'process.cpu.time', unit: 's', description: 'CPU time', instrument: 'counter', valueType: 'double', pointAttributes: { 'cpu.mode': 'user' } },
    { name: 'process.cpu.time', unit: 's', description: 'CPU time', instrument: 'counter', valueType: 'double', pointAttributes: { 'cpu.mode': 'system' } },
    { name: 'process.disk.io', unit: 'By', description: 'Disk I/O', instrument: 'counter', valueType: 'int', pointAttributes: { 'disk.io.direction': 'read' } },
    {
      name: 'process.exits',
      unit: '{process}',
      description: 'Ended processes',
      instrument: 'counter',
      valueType: 'int',
      samplePointAttributes: ['process.exit.code'],
    },
    { name: 'process.linux.memory.peak_rss', unit: 'By', description: 'Peak RSS', instrument: 'gauge', valueType: 'int' },
  ],
};
const PEAK = 4; // index of the peak_rss gauge in schema.metrics
const T0 = 1_700_000_000_000;

function stage(o: { seriesLimit?: number; endedSeriesTtlMs?: number; idleSeriesTtlMs?: number } = {}) {
  const telemetry = new RecordingTelemetry();
  const logger = new RecordingLogger();
  const s = new MetricsStage({
    seriesLimit: o.seriesLimit ?? 100,
    endedSeriesTtlMs: o.endedSeriesTtlMs ?? 60_000,
    idleSeriesTtlMs: o.idleSeriesTtlMs,
    resource: buildResource({ OTEL_SERVICE_NAME: 'stage-test' }),
    telemetry,
    logger,
  });
  return { s, telemetry, logger };
}

function sample(attributes: Attributes, values: number[], extra: Partial<Sample> = {}): Sample {
  const v = new Float64Array(SCHEMA.metrics.length);
  v.set(values);
  if (values.length <= PEAK) v[PEAK] = NaN; // gauge unknown unless given
  return { schema: SCHEMA, attributes, values: v, final: false, timeMs: T0, ...extra };
}

describe('metrics stage', () => {
  test('sums counters per attribute set, whether samples share the object or only its content', () => {
    const { s } = stage();
    const bash = { 'process.executable.name': 'bash', 'process.linux.cgroup': '/a' };
    s.add([sample(bash, [1.5, 0.25, 4096]), sample(bash, [0.5, 0.25, 1024])]);
    // A new object with the same content (keys in another order) is the same series.
    s.add([sample({ 'process.linux.cgroup': '/a', 'process.executable.name': 'bash' }, [1, 0, 0])]);
    s.add([sample({ 'process.executable.name': 'bash', 'process.linux.cgroup': '/b' }, [7, 0, 0])]);
    const rm = s.collect(T0 + 1000).cumulative();
    assert.equal(valueOf(rm, 'process.cpu.time', { 'process.linux.cgroup': '/a', 'cpu.mode': 'user' }), 3);
    assert.equal(valueOf(rm, 'process.cpu.time', { 'process.linux.cgroup': '/a', 'cpu.mode': 'system' }), 0.5);
    assert.equal(valueOf(rm, 'process.disk.io', { 'process.linux.cgroup': '/a' }), 5120);
    assert.equal(valueOf(rm, 'process.cpu.time', { 'process.linux.cgroup': '/b', 'cpu.mode': 'user' }), 7);
    assert.equal(s.size, 2);
  });

  test('descriptors sharing a name become one metric whose points differ by pointAttributes', () => {
    const { s } = stage();
    s.add([sample({ 'process.executable.name': 'x' }, [2, 3, 0])]);
    const rm = s.collect(T0 + 1).cumulative();
    const cpu = rm.scopeMetrics[0]!.metrics.filter((m) => m.descriptor.name === 'process.cpu.time');
    assert.equal(cpu.length, 1);
    assert.equal(cpu[0]!.dataPointType, DataPointType.SUM);
    assert.equal(cpu[0]!.isMonotonic, true);
    assert.equal(cpu[0]!.descriptor.valueType, ValueType.DOUBLE);
    const modes = cpu[0]!.dataPoints.map((p) => `${String(p.attributes['cpu.mode'])}=${p.value}`).sort();
    assert.deepEqual(modes, ['system=3', 'user=2']);
    assert.equal(rm.scopeMetrics[0]!.scope.name, 'taskstats-agent');
    // the exits metric has no point: nobody exited
    assert.equal(pointsOf(rm, 'process.exits').length, 0);
  });

  test('gauges keep the last value; NaN means unknown and keeps the previous one', () => {
    const { s } = stage();
    const a = { 'process.executable.name': 'g' };
    s.add([sample(a, [0, 0, 0, 0, 100]), sample(a, [0, 0, 0, 0, 300]), sample(a, [0, 0, 0, 0, 200])]);
    assert.equal(valueOf(s.collect(T0 + 1).cumulative(), 'process.linux.memory.peak_rss'), 200);
    s.add([sample(a, [0, 0, 0, 0, NaN])]);
    const rm = s.collect(T0 + 2).cumulative();
    assert.equal(valueOf(rm, 'process.linux.memory.peak_rss'), 200);
    assert.equal(pointsOf(rm, 'process.linux.memory.peak_rss').length, 1);
    const gauge = rm.scopeMetrics[0]!.metrics.find((m) => m.descriptor.name === 'process.linux.memory.peak_rss')!;
    assert.equal(gauge.dataPointType, DataPointType.GAUGE);
  });

  test('samplePointAttributes split only their metric; a sample without them and value 0 adds nothing', () => {
    const { s } = stage();
    const a = { 'process.executable.name': 'sh' };
    s.add([
      sample(a, [1, 0, 0, 0]), // a live sample: no exit
      sample(a, [0, 0, 0, 1], { pointAttributes: { 'process.exit.code': 0 }, final: true }),
      sample(a, [0, 0, 0, 1], { pointAttributes: { 'process.exit.code': 0 }, final: true }),
      sample(a, [0, 0, 0, 1], { pointAttributes: { 'process.exit.code': 2 }, final: true }),
      sample(a, [0, 0, 0, 1]), // counted, but without a code
    ]);
    const rm = s.collect(T0 + 1).cumulative();
    const exits = pointsOf(rm, 'process.exits');
    assert.deepEqual(exits.map((p) => `${String(p.attributes['process.exit.code'])}:${p.value}:${String(p.attributes['process.executable.name'])}`).sort(), [
      '0:2:sh',
      '2:1:sh',
      'undefined:1:sh',
    ]);
    // the exit code is not an attribute of the other metrics of the same samples
    for (const p of pointsOf(rm, 'process.cpu.time')) assert.equal('process.exit.code' in p.attributes, false);
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user' }), 1);
  });

  test('series limit: further attribute sets go to one overflow series, counted and logged once', () => {
    const { s, telemetry, logger } = stage({ seriesLimit: 2 });
    for (let i = 0; i < 5; i++) s.add([sample({ 'process.executable.name': `p${i}` }, [1, 0, 10])]);
    s.add([sample({ 'process.executable.name': 'p4' }, [1, 0, 10])]); // a new object of an overflowed set
    s.add([sample({ 'process.executable.name': 'p0' }, [1, 0, 10])]); // still its own series
    const rm = s.collect(T0 + 1).cumulative();
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user', [OVERFLOW_ATTRIBUTE]: true }), 4);
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user', 'process.executable.name': 'p0' }), 2);
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user', 'process.executable.name': 'p1' }), 1);
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.executable.name': 'p2' }).length, 0);
    // nothing is lost: the total is every sample's growth
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user' }), 7);
    assert.equal(valueOf(rm, 'process.disk.io'), 70);
    assert.equal(telemetry.counters.get('series_overflow'), 4);
    assert.equal(logger.count('warn', 'series limit'), 1);
    assert.equal(telemetry.gauges.get('series')!(), 3);
  });

  test('expiry: an ended series lives endedSeriesTtlMs after its final sample; live ones stay', () => {
    const { s, telemetry } = stage({ endedSeriesTtlMs: 5_000, idleSeriesTtlMs: 60_000 });
    const ended = { 'process.pid': 10 };
    const live = { 'process.pid': 11 };
    s.add([sample(ended, [1, 0, 0]), sample(live, [1, 0, 0])]);
    s.add([sample(ended, [2, 0, 0, 1], { final: true, timeMs: T0 + 1000, pointAttributes: { 'process.exit.code': 0 } })]);
    // Right after the final sample the series is still exported with its final value.
    let rm = s.collect(T0 + 2000).cumulative();
    assert.equal(valueOf(rm, 'process.cpu.time', { 'process.pid': 10, 'cpu.mode': 'user' }), 3);
    rm = s.collect(T0 + 5999).cumulative();
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.pid': 10 }).length, 2);
    // At the collection 5 s after its last sample it is exported a last time, then dropped.
    rm = s.collect(T0 + 6000).cumulative();
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.pid': 10 }).length, 2);
    rm = s.collect(T0 + 7000).cumulative();
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.pid': 10 }).length, 0);
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.pid': 11 }).length, 2);
    assert.equal(telemetry.counters.get('series_expired'), 1);
    // A later sample with the same attributes starts a new series (new start time, sums from 0).
    s.add([sample(ended, [0.5, 0, 0], { timeMs: T0 + 8000 })]);
    rm = s.collect(T0 + 9000).cumulative();
    const p = pointsOf(rm, 'process.cpu.time', { 'process.pid': 10, 'cpu.mode': 'user' });
    assert.equal(p.length, 1);
    assert.equal(p[0]!.value, 0.5);
    assert.deepEqual(p[0]!.startTime, [Math.floor((T0 + 8000) / 1000), 0]);
    // The idle safety net: the live series, never final, goes after idleSeriesTtlMs without samples.
    rm = s.collect(T0 + 61_000).cumulative();
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.pid': 11 }).length, 2);
    rm = s.collect(T0 + 62_000).cumulative();
    assert.equal(pointsOf(rm, 'process.cpu.time', { 'process.pid': 11 }).length, 0);
  });

  test('a series fed by a final sample and then a live one does not expire', () => {
    const { s } = stage({ endedSeriesTtlMs: 0 });
    const a = { 'process.executable.name': 'shared' };
    s.add([sample(a, [1, 0, 0], { final: true }), sample(a, [1, 0, 0])]);
    s.collect(T0 + 10_000);
    assert.equal(valueOf(s.collect(T0 + 20_000).cumulative(), 'process.cpu.time', { 'cpu.mode': 'user' }), 2);
  });

  test('delta gives the growth since the previous collect, cumulative the sums', () => {
    const { s } = stage();
    const a = { 'process.executable.name': 'd' };
    const b = { 'process.executable.name': 'e' };
    s.add([sample(a, [1, 0, 100]), sample(b, [2, 0, 0])]);
    const c1 = s.collect(T0 + 10_000);
    s.add([sample(a, [0.5, 0, 50], { timeMs: T0 + 12_000 }), sample(a, [0, 0, 0, 1], { pointAttributes: { 'process.exit.code': 1 } })]);
    const c2 = s.collect(T0 + 20_000);
    const c3 = s.collect(T0 + 30_000);
    // Built lazily, but from the snapshot of their own collect(): order of calls does not matter.
    const d2 = c2.delta();
    const d1 = c1.delta();
    const cum2 = c2.cumulative();
    assert.equal(valueOf(d1, 'process.cpu.time', { 'process.executable.name': 'd', 'cpu.mode': 'user' }), 1);
    assert.equal(valueOf(d2, 'process.cpu.time', { 'process.executable.name': 'd', 'cpu.mode': 'user' }), 0.5);
    assert.equal(valueOf(d2, 'process.disk.io', { 'process.executable.name': 'd' }), 50);
    assert.equal(valueOf(d2, 'process.exits', { 'process.exit.code': 1 }), 1);
    // no growth: omitted from the delta, still in the cumulative
    assert.equal(pointsOf(d2, 'process.cpu.time', { 'process.executable.name': 'e' }).length, 0);
    assert.equal(pointsOf(d2, 'process.cpu.time', { 'process.executable.name': 'd', 'cpu.mode': 'system' }).length, 0);
    assert.equal(valueOf(cum2, 'process.cpu.time', { 'process.executable.name': 'd', 'cpu.mode': 'user' }), 1.5);
    assert.equal(valueOf(cum2, 'process.cpu.time', { 'process.executable.name': 'e', 'cpu.mode': 'user' }), 2);
    assert.equal(pointsOf(c3.delta(), 'process.cpu.time').length, 0);
    assert.equal(valueOf(c3.cumulative(), 'process.exits'), 1);
    // temporality and start times
    const m = d2.scopeMetrics[0]!.metrics.find((x) => x.descriptor.name === 'process.cpu.time')!;
    assert.equal(m.aggregationTemporality, AggregationTemporality.DELTA);
    const dp = pointsOf(d2, 'process.cpu.time', { 'process.executable.name': 'd', 'cpu.mode': 'user' })[0]!;
    assert.deepEqual(dp.startTime, [(T0 + 10_000) / 1000, 0]);
    assert.deepEqual(dp.endTime, [(T0 + 20_000) / 1000, 0]);
    const cp = pointsOf(cum2, 'process.cpu.time', { 'process.executable.name': 'd', 'cpu.mode': 'user' })[0]!;
    assert.deepEqual(cp.startTime, [T0 / 1000, 0]);
    assert.equal(cum2.scopeMetrics[0]!.metrics[0]!.aggregationTemporality, AggregationTemporality.CUMULATIVE);
    // the same object is returned on a second call
    assert.equal(c2.delta(), d2);
  });

  test('bad samples are counted and dropped, never thrown, and change nothing', () => {
    const { s, telemetry, logger } = stage();
    const a = { 'process.executable.name': 'ok' };
    const good = sample(a, [1, 0, 0]);
    const bad: unknown[] = [
      { ...good, values: new Float64Array(2) },
      { ...good, values: [1, 0, 0, 0, 0] },
      sample(a, [-1, 0, 0]),
      sample(a, [NaN, 0, 0]),
      sample(a, [Infinity, 0, 0]),
      sample({ nested: { x: 1 } } as unknown as Attributes, [1, 0, 0]),
      { ...good, attributes: null },
      { ...good, schema: undefined },
      null,
    ];
    assert.doesNotThrow(() => s.add([good, ...(bad as Sample[])]));
    const conflicting: SampleSchema = {
      id: 'conflict',
      metrics: [{ name: 'process.cpu.time', unit: 'ms', description: '', instrument: 'counter', valueType: 'double' }],
    };
    s.add([{ schema: conflicting, attributes: a, values: new Float64Array([5]), final: false, timeMs: T0 }]);
    const rm = s.collect(T0 + 1).cumulative();
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user' }), 1);
    assert.equal(valueOf(rm, 'process.cpu.time'), 1);
    assert.equal(telemetry.droppedByReason.get('invalid_sample'), bad.length + 1);
    assert.ok(logger.count('error', 'schema rejected') >= 1);
    const rejected = logger.lines.find((l) => l.fields?.schema === 'conflict')!;
    assert.match(String(rejected.fields!.error), /process\.cpu\.time is declared as counter double "ms" here and as counter double "s" elsewhere/);
  });

  test('a copy of a schema (same id, same metrics) feeds the same series; a different one under the same id is rejected', () => {
    const { s, telemetry, logger } = stage();
    const a = { 'process.executable.name': 'copy' };
    const copy: SampleSchema = { id: SCHEMA.id, metrics: SCHEMA.metrics.map((m) => ({ ...m })) };
    const impostor: SampleSchema = { id: SCHEMA.id, metrics: SCHEMA.metrics.slice(0, 3) };
    s.add([sample(a, [1, 0, 0]), { ...sample(a, [2, 0, 0]), schema: copy }]);
    s.add([{ schema: impostor, attributes: a, values: new Float64Array([4, 0, 0]), final: false, timeMs: T0 }]);
    const rm = s.collect(T0 + 1).cumulative();
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user' }), 3);
    assert.equal(s.size, 1);
    assert.equal(telemetry.droppedByReason.get('invalid_sample'), 1);
    assert.match(String(logger.lines.find((l) => l.level === 'error')!.fields!.error), /ids must be unique/);
  });

  test('another schema may share metric names and adds its own points', () => {
    const { s } = stage();
    const other: SampleSchema = {
      id: 'other',
      metrics: [
        { name: 'process.cpu.time', unit: 's', description: 'CPU time', instrument: 'counter', valueType: 'double', pointAttributes: { 'cpu.mode': 'user' } },
      ],
    };
    s.add([sample({ src: 'a' }, [1, 0, 0]), { schema: other, attributes: { src: 'b' }, values: new Float64Array([2]), final: false, timeMs: T0 }]);
    const rm = s.collect(T0 + 1).cumulative();
    assert.equal(rm.scopeMetrics[0]!.metrics.filter((m) => m.descriptor.name === 'process.cpu.time').length, 1);
    assert.equal(valueOf(rm, 'process.cpu.time', { 'cpu.mode': 'user' }), 3);
  });

  test('encodes to OTLP: protobuf (decoded back field by field) and JSON', () => {
    const { s } = stage();
    const a = { 'process.executable.name': 'enc', 'process.linux.cgroup': '/x', 'process.pid': 42 };
    s.add([sample(a, [1.25, 0.5, 3072, 1, 4096], { pointAttributes: { 'process.exit.code': 3 } })]);
    const c = s.collect(T0 + 10_000);

    for (const [rm, temporality] of [
      [c.cumulative(), 2],
      [c.delta(), 1],
    ] as [ResourceMetrics, number][]) {
      const bytes = ProtobufMetricsSerializer.serializeRequest(rm);
      assert.ok(bytes && bytes.length > 100);
      const decoded = decodeExportRequest(bytes);
      assert.equal(decoded.resource['service.name'], 'stage-test');
      assert.equal(decoded.scope, 'taskstats-agent');
      const cpu = decoded.metrics.get('process.cpu.time')!;
      assert.equal(cpu.unit, 's');
      assert.equal(cpu.kind, 'sum');
      assert.equal(cpu.monotonic, true);
      assert.equal(cpu.temporality, temporality);
      const user = cpu.points.find((p) => p.attributes['cpu.mode'] === 'user')!;
      assert.equal(user.double, 1.25);
      assert.equal(user.attributes['process.executable.name'], 'enc');
      assert.equal(user.attributes['process.pid'], 42);
      assert.equal(user.timeNs, BigInt(T0 + 10_000) * 1_000_000n);
      const io = decoded.metrics.get('process.disk.io')!;
      assert.equal(io.points[0]!.int, 3072n);
      const exits = decoded.metrics.get('process.exits')!;
      assert.equal(exits.points[0]!.int, 1n);
      assert.equal(exits.points[0]!.attributes['process.exit.code'], 3);
      const peak = decoded.metrics.get('process.linux.memory.peak_rss')!;
      assert.equal(peak.kind, 'gauge');
      assert.equal(peak.points[0]!.int, 4096n);
    }

    type JsonMetric = { name: string; sum?: { dataPoints: { asDouble?: number; asInt?: unknown }[] } };
    const json = JSON.parse(new TextDecoder().decode(JsonMetricsSerializer.serializeRequest(c.cumulative()))) as {
      resourceMetrics: { scopeMetrics: { metrics: JsonMetric[] }[] }[];
    };
    const metrics = json.resourceMetrics[0]!.scopeMetrics[0]!.metrics;
    const cpu = metrics.find((m) => m.name === 'process.cpu.time')!;
    assert.deepEqual(cpu.sum!.dataPoints.map((p) => p.asDouble).sort(), [0.5, 1.25]);
    assert.equal(Number(metrics.find((m) => m.name === 'process.disk.io')!.sum!.dataPoints[0]!.asInt), 3072);
  });
});

// ---------------------------------------------------------------------------------------------
// A minimal protobuf wire-format reader, enough to read back an ExportMetricsServiceRequest
// (opentelemetry/proto/collector/metrics/v1) without trusting the encoder's own types.

type Field = { n: number; wire: number; varint?: bigint; bytes?: Uint8Array; fixed64?: Uint8Array };

function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(varint());
    const n = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ n, wire, varint: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      out.push({ n, wire, bytes: buf.subarray(i, i + len) });
      i += len;
    } else if (wire === 1) {
      out.push({ n, wire, fixed64: buf.subarray(i, i + 8) });
      i += 8;
    } else if (wire === 5) i += 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

function anyValue(buf: Uint8Array): string | number | boolean | bigint {
  const f = readFields(buf)[0]!;
  switch (f.n) {
    case 1:
      return str(f.bytes!);
    case 2:
      return f.varint! !== 0n;
    case 3:
      return Number(BigInt.asIntN(64, f.varint!));
    case 4:
      return dv(f.fixed64!).getFloat64(0, true);
    default:
      return `<field ${f.n}>`;
  }
}
function keyValues(fields: Field[], n: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields.filter((x) => x.n === n)) {
    const kv = readFields(f.bytes!);
    out[str(kv.find((x) => x.n === 1)!.bytes!)] = anyValue(kv.find((x) => x.n === 2)!.bytes!);
  }
  return out;
}

interface DecodedPoint {
  attributes: Record<string, unknown>;
  startNs: bigint;
  timeNs: bigint;
  double?: number;
  int?: bigint;
}
interface DecodedMetric {
  unit: string;
  kind: 'sum' | 'gauge';
  temporality?: number;
  monotonic?: boolean;
  points: DecodedPoint[];
}

function decodeExportRequest(bytes: Uint8Array) {
  const rms = readFields(bytes).filter((f) => f.n === 1);
  assert.equal(rms.length, 1);
  const rm = readFields(rms[0]!.bytes!);
  const resource = keyValues(readFields(rm.find((f) => f.n === 1)!.bytes!), 1);
  const sms = rm.filter((f) => f.n === 2);
  assert.equal(sms.length, 1);
  const sm = readFields(sms[0]!.bytes!);
  const scope = str(readFields(sm.find((f) => f.n === 1)!.bytes!).find((f) => f.n === 1)!.bytes!);
  const metrics = new Map<string, DecodedMetric>();
  for (const mf of sm.filter((f) => f.n === 2)) {
    const m = readFields(mf.bytes!);
    const name = str(m.find((f) => f.n === 1)!.bytes!);
    const unitField = m.find((f) => f.n === 3);
    const sum = m.find((f) => f.n === 7);
    const gauge = m.find((f) => f.n === 5);
    const body = readFields((sum ?? gauge)!.bytes!);
    const points = body
      .filter((f) => f.n === 1)
      .map((pf) => {
        const p = readFields(pf.bytes!);
        const d = p.find((f) => f.n === 4);
        const i64 = p.find((f) => f.n === 6);
        return {
          attributes: keyValues(p, 7),
          startNs: dv(p.find((f) => f.n === 2)!.fixed64!).getBigUint64(0, true),
          timeNs: dv(p.find((f) => f.n === 3)!.fixed64!).getBigUint64(0, true),
          double: d ? dv(d.fixed64!).getFloat64(0, true) : undefined,
          int: i64 ? dv(i64.fixed64!).getBigInt64(0, true) : undefined,
        };
      });
    metrics.set(name, {
      unit: unitField ? str(unitField.bytes!) : '',
      kind: sum ? 'sum' : 'gauge',
      temporality: sum ? Number(body.find((f) => f.n === 2)?.varint ?? 0n) : undefined,
      monotonic: sum ? body.find((f) => f.n === 3)?.varint === 1n : undefined,
      points,
    });
  }
  return { resource, scope, metrics };
}
