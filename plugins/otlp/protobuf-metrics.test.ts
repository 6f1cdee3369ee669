/**
 * The hand-written metrics encoder against the library it replaces: the same ResourceMetrics
 * through @opentelemetry/otlp-transformer's ProtobufMetricsSerializer and through
 * encodeMetricsRequest, both decoded by the official OpenTelemetry protobuf definitions
 * (test/support/otlp-decoder.py, strictly: no unknown field), must be the same request. Ours is
 * encoded twice: with its attribute cache cold, and warm.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ValueType } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  type DataPoint,
  type ExponentialHistogram,
  type Histogram,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { Attributes, Sample, SampleSchema } from '../../src/api/index.js';
import { MetricsStage, buildResource } from '../../src/metrics/index.js';
import { RecordingLogger, RecordingTelemetry } from '../../src/metrics/testing.js';
import { otlpDecoderMissing, startOtlpDecoder, type OtlpDecoder } from '../../test/support/otlp-decoder.js';
import { decodeMetricsResponse, encodeMetricsRequest } from './protobuf-metrics.js';

const missing = otlpDecoderMissing();
let decoder: OtlpDecoder | undefined;

before(async () => {
  if (!missing) decoder = await startOtlpDecoder();
});
after(async () => {
  await decoder?.stop();
});

/** What the official definitions decode `bytes` to. */
async function decode(bytes: Uint8Array): Promise<unknown> {
  const d = decoder!;
  const before = d.requests.length;
  const res = await fetch(`${d.httpUrl}/v1/metrics`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.from(bytes) });
  assert.equal(res.status, 200, `decoder answered ${res.status}: ${d.errors.join('; ')}`);
  await d.waitFor('metrics', before + 1);
  return d.requests[before]!.request;
}

async function assertSameAsLibrary(rm: ResourceMetrics): Promise<void> {
  const expected = await decode(ProtobufMetricsSerializer.serializeRequest(rm)!);
  const cold = encodeMetricsRequest(rm);
  assert.deepEqual(await decode(cold), expected);
  const warm = encodeMetricsRequest(rm);
  assert.deepEqual(await decode(warm), expected);
}

const SCHEMA: SampleSchema = {
  id: 'encoder.test',
  metrics: [
    { name: 'process.cpu.time', unit: 's', description: 'CPU time', instrument: 'counter', valueType: 'double', pointAttributes: { 'cpu.mode': 'user' } },
    { name: 'process.cpu.time', unit: 's', description: 'CPU time', instrument: 'counter', valueType: 'double', pointAttributes: { 'cpu.mode': 'system' } },
    { name: 'process.disk.io', unit: 'By', description: '', instrument: 'counter', valueType: 'int' },
    { name: 'process.exits', unit: '', description: 'Ended processes', instrument: 'counter', valueType: 'int', samplePointAttributes: ['process.exit.code'] },
    { name: 'process.memory.peak', unit: 'By', description: 'Peak RSS', instrument: 'gauge', valueType: 'int' },
    { name: 'process.nice', unit: '1', description: 'Nice value', instrument: 'gauge', valueType: 'double' },
    { name: 'process.lifetime', unit: 's', description: 'Lifetime', instrument: 'histogram', valueType: 'double' },
    {
      name: 'process.rss',
      unit: 'By',
      description: 'RSS at exit',
      instrument: 'histogram',
      valueType: 'int',
      histogram: { kind: 'explicit', boundaries: [0, 1024, 1_048_576, 1_073_741_824] },
    },
  ],
};

function stageRequests(temporality: 'cumulative' | 'delta'): ResourceMetrics[] {
  const s = new MetricsStage({
    seriesLimit: 1000,
    endedSeriesTtlMs: 60_000,
    resource: buildResource({ OTEL_SERVICE_NAME: 'encoder-test', OTEL_RESOURCE_ATTRIBUTES: 'host.name=nœud-7,k8s.node.name=node-7' }),
    telemetry: new RecordingTelemetry(),
    logger: new RecordingLogger(),
  });
  const workloads: Attributes[] = [
    { 'process.executable.name': 'bash', 'process.linux.cgroup': '/kubepods.slice/pod-a.slice/cri-containerd-1.scope' },
    { 'process.executable.name': 'café-日本', 'process.pid': 4_194_303, 'process.linux.cgroup': '/system.slice/ünïcode.service' },
    { 'process.executable.name': 'big', 'process.pid': -7, 'x.large': 2 ** 60, 'x.ratio': 0.375, 'x.flag': true, 'x.off': false, 'x.empty': '' },
  ];
  const out: ResourceMetrics[] = [];
  const T0 = 1_764_672_000_123;
  for (let round = 0; round < 3; round++) {
    const samples: Sample[] = workloads.map((attributes, w) => {
      const v = new Float64Array(SCHEMA.metrics.length);
      v.set([0.25 * (round + 1) + w, 0.125 * round, round === 1 ? 0 : 4096 * (w + 1) + 2 ** 33 * w, round === 2 ? 1 : 0]);
      v[4] = w === 2 ? -123 : 2 ** 40 + round;
      v[5] = w === 1 ? NaN : -0.5 * w;
      v[6] = round === 0 ? NaN : 0.001 * 10 ** (w + round);
      v[7] = w === 0 && round === 0 ? NaN : 700 * 10 ** (w * 2);
      return {
        schema: SCHEMA,
        attributes,
        values: v,
        final: round === 2 && w === 2,
        timeMs: T0 + round * 1000,
        ...(round === 2 ? { pointAttributes: { 'process.exit.code': w - 1 } } : {}),
      };
    });
    s.add(samples);
    const collected = s.collect(T0 + round * 1000 + 500);
    out.push(temporality === 'cumulative' ? collected.cumulative() : collected.delta());
  }
  return out;
}

const T = (s: number, ns: number): [number, number] => [s, ns];

function handBuilt(): ResourceMetrics {
  const histogramPoints: DataPoint<Histogram>[] = [
    {
      startTime: T(1_700_000_000, 1),
      endTime: T(1_764_672_000, 999_999_999),
      attributes: { a: 'x' },
      value: { buckets: { boundaries: [1, 10, 100], counts: [2 ** 33, 0, 5, 1] }, count: 2 ** 33 + 6, sum: 123.5, min: 0.5, max: 250 },
    },
    { startTime: T(0, 0), endTime: T(1, 0), attributes: {}, value: { buckets: { boundaries: [], counts: [] }, count: 0 } },
  ];
  const exponentialPoints: DataPoint<ExponentialHistogram>[] = [
    {
      startTime: T(1_764_000_000, 5),
      endTime: T(1_764_672_000, 6),
      attributes: { b: 'y', n: 3 },
      value: {
        count: 40,
        sum: -12.25,
        scale: -3,
        zeroCount: 2 ** 32 + 1,
        positive: { offset: -70, bucketCounts: [1, 300, 2 ** 35, 0, 7] },
        negative: { offset: 5, bucketCounts: [] },
        min: -4,
        max: 9,
      },
    },
    {
      startTime: T(1, 1),
      endTime: T(2, 2),
      attributes: { b: 'z' },
      value: { count: 0, scale: 20, zeroCount: 0, positive: { offset: 0, bucketCounts: [] }, negative: { offset: -1, bucketCounts: [3] } },
    },
  ];
  const intPoints: DataPoint<number>[] = [-1, 0, 2 ** 31, 2 ** 53 - 1, -(2 ** 40)].map((value, i) => ({
    startTime: T(1_764_672_000, i),
    endTime: T(1_764_672_001, i),
    attributes: { i },
    value,
  }));
  return {
    resource: resourceFromAttributes({ 'service.name': 'hand', 'service.instance.id': 'ü-1' }, { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' }),
    scopeMetrics: [
      {
        scope: { name: 'scope-a', version: '1.2.3', schemaUrl: 'https://opentelemetry.io/schemas/1.24.0' },
        metrics: [
          {
            descriptor: { name: 'h', description: 'explicit', unit: 'ms', valueType: ValueType.DOUBLE },
            aggregationTemporality: AggregationTemporality.DELTA,
            dataPointType: DataPointType.HISTOGRAM,
            dataPoints: histogramPoints,
          },
          {
            descriptor: { name: 'e', description: '', unit: '', valueType: ValueType.DOUBLE },
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM,
            dataPoints: exponentialPoints,
          },
          {
            descriptor: { name: 'empty', description: 'no points', unit: '1', valueType: ValueType.INT },
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.SUM,
            dataPoints: [],
            isMonotonic: false,
          },
        ],
      },
      {
        scope: { name: 'scope-b' },
        metrics: [
          {
            descriptor: { name: 'ints', description: 'int gauge', unit: '{x}', valueType: ValueType.INT },
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.GAUGE,
            dataPoints: intPoints,
          },
          {
            descriptor: { name: 'nonmono', description: '', unit: '', valueType: ValueType.INT },
            aggregationTemporality: AggregationTemporality.DELTA,
            dataPointType: DataPointType.SUM,
            dataPoints: intPoints,
            isMonotonic: false,
          },
        ],
      },
    ],
  };
}

/** One metric of `points` points whose attributes are long: the request's lengths take 4 bytes. */
function large(points: number): ResourceMetrics {
  const dataPoints: DataPoint<number>[] = [];
  for (let i = 0; i < points; i++) {
    dataPoints.push({
      startTime: T(1_764_672_000, 0),
      endTime: T(1_764_672_010, 0),
      attributes: {
        'process.linux.cgroup': `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${i}.slice/cri-containerd-${'0'.repeat(64)}.scope`,
        'process.pid': i,
      },
      value: i * 0.5,
    });
  }
  return {
    resource: buildResource({}),
    scopeMetrics: [
      {
        scope: { name: 'large' },
        metrics: [
          {
            descriptor: { name: 'big', description: 'many points', unit: 's', valueType: ValueType.DOUBLE },
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            dataPointType: DataPointType.SUM,
            dataPoints,
            isMonotonic: true,
          },
        ],
      },
    ],
  };
}

describe('OTLP protobuf metrics encoder', { skip: missing }, () => {
  test('what the metrics stage builds, cumulative: decodes to what the library writes', async () => {
    for (const rm of stageRequests('cumulative')) await assertSameAsLibrary(rm);
  });

  test('what the metrics stage builds, delta (points omitted, sub-series, histograms): decodes to what the library writes', async () => {
    for (const rm of stageRequests('delta')) await assertSameAsLibrary(rm);
  });

  test('every point type, 64-bit counts, negative integers, schema URLs, scopes, an empty metric', async () => {
    await assertSameAsLibrary(handBuilt());
  });

  test('a request over 2 MiB (lengths of 4 bytes) decodes to what the library writes', async () => {
    const rm = large(12_000);
    const bytes = encodeMetricsRequest(rm);
    assert.ok(bytes.length > 2 ** 21, `${bytes.length} bytes`);
    await assertSameAsLibrary(rm);
  });
});

describe('OTLP metrics response decoder', () => {
  /** A length-delimited field. */
  const field = (tag: number, body: number[]): number[] => [(tag << 3) | 2, body.length, ...body];
  const utf8 = (text: string): number[] => [...Buffer.from(text, 'utf8')];
  const varint = (v: number): number[] => {
    const out: number[] = [];
    for (; v >= 128; v = Math.floor(v / 128)) out.push((v % 128) | 128);
    return [...out, v];
  };

  test('decodes what the library decodes: empty, partial success, 64-bit counts, unknown fields of every wire type', () => {
    const responses: Record<string, number[]> = {
      empty: [],
      'empty partial success': field(1, []),
      'rejected points and a message': field(1, [0x08, ...varint(5), ...field(2, utf8('2 points rejected: é'))]),
      'a count above 2^32': field(1, [0x08, ...varint(2 ** 40 + 3)]),
      'only a message': field(1, field(2, utf8('slow down'))),
      'unknown fields around and inside': [
        0x18,
        ...varint(300), // 3: varint
        0x21,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8, // 4: fixed64
        ...field(1, [0x2d, 1, 2, 3, 4, 0x08, 7, ...field(9, utf8('x')), ...field(2, utf8('m'))]),
        ...field(6, utf8('later')),
      ],
    };
    for (const [name, bytes] of Object.entries(responses)) {
      const data = Uint8Array.from(bytes);
      assert.deepEqual(decodeMetricsResponse(data), ProtobufMetricsSerializer.deserializeResponse(data), name);
    }
  });

  test('a truncated response is an error, as for the library', () => {
    for (const bytes of [[0x0a, 5, 0x08], [0x08, 0x80], field(1, [0x08, 0x80])]) {
      const data = Uint8Array.from(bytes);
      assert.throws(() => ProtobufMetricsSerializer.deserializeResponse(data));
      assert.throws(() => decodeMetricsResponse(data), /truncated/);
    }
  });
});
