import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  AggregationTemporality,
  AggregationType,
  DataPointType,
  MeterProvider,
  MetricReader,
  type ExponentialHistogram,
  type Histogram,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { JsonMetricsSerializer } from '@opentelemetry/otlp-transformer';
import type { HistogramAggregation, Sample, SampleSchema } from '../api/index.js';
import { MetricsStage, buildResource } from './index.js';
import { RecordingLogger, RecordingTelemetry } from './testing.js';

class ManualReader extends MetricReader {
  constructor(temporality: AggregationTemporality) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/** The OpenTelemetry SDK's own aggregation of the same observations (code nobody here wrote). */
async function sdkHistogram(values: number[], aggregation: HistogramAggregation): Promise<ExponentialHistogram | Histogram> {
  const reader = new ManualReader(AggregationTemporality.CUMULATIVE);
  const provider = new MeterProvider({
    readers: [reader],
    views: [
      {
        instrumentName: 'h',
        aggregation:
          aggregation.kind === 'explicit'
            ? { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [...aggregation.boundaries] } }
            : { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: aggregation.maxSize ?? 160 } },
      },
    ],
  });
  const h = provider.getMeter('t').createHistogram('h');
  for (const v of values) h.record(v);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics.scopeMetrics[0]!.metrics[0]!.dataPoints[0]!.value as ExponentialHistogram | Histogram;
}

function schemaWith(aggregation?: HistogramAggregation): SampleSchema {
  return {
    id: `test.hist.${JSON.stringify(aggregation ?? null)}`,
    metrics: [
      { name: 'test.count', unit: '{x}', description: '', instrument: 'counter', valueType: 'int' },
      {
        name: 'test.duration',
        unit: 's',
        description: 'durations',
        instrument: 'histogram',
        valueType: 'double',
        ...(aggregation ? { histogram: aggregation } : {}),
      },
    ],
  };
}

function stage(seriesLimit = 100) {
  const logger = new RecordingLogger();
  const s = new MetricsStage({ seriesLimit, endedSeriesTtlMs: 60_000, resource: buildResource({}), telemetry: new RecordingTelemetry(), logger });
  return { s, logger };
}

const T0 = 1_700_000_000_000;
function samples(schema: SampleSchema, attributes: Record<string, string>, observations: number[]): Sample[] {
  return observations.map((v) => ({ schema, attributes, values: Float64Array.of(1, v), final: true, timeMs: T0 }));
}

function points(rm: ResourceMetrics, name: string) {
  const m = rm.scopeMetrics.flatMap((s) => s.metrics).find((x) => x.descriptor.name === name);
  return m;
}

// Durations of processes: many short ones, a few long, zeros (processes that never waited).
function workloadValues(): number[] {
  const out: number[] = [];
  let x = 12345;
  const rand = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 500; i++) out.push(0.0001 + rand() * 0.01);
  for (let i = 0; i < 50; i++) out.push(0.1 + rand() * 0.3);
  for (let i = 0; i < 5; i++) out.push(30 + rand() * 100);
  out.push(0, 0, 0, 1, 2, 0.5, 0.25); // exact powers of two sit on bucket boundaries
  return out;
}

describe('metrics stage: histograms', () => {
  for (const maxSize of [160, 20, 4]) {
    test(`exponential (max_size ${maxSize}): the same scale, offset and bucket counts as the OpenTelemetry SDK, count and sum exact`, async () => {
      const values = workloadValues();
      const agg: HistogramAggregation = { kind: 'exponential', maxSize };
      const schema = schemaWith(agg);
      const { s } = stage();
      s.add(samples(schema, { w: 'a' }, values));
      const m = points(s.collect(T0 + 1000).cumulative(), 'test.duration')!;
      assert.equal(m.dataPointType, DataPointType.EXPONENTIAL_HISTOGRAM);
      const mine = m.dataPoints[0]!.value;
      const sdk = (await sdkHistogram(values, agg)) as ExponentialHistogram;
      assert.equal(mine.count, values.length);
      assert.equal(
        mine.sum,
        values.reduce((a, b) => a + b, 0),
      );
      assert.equal(mine.min, 0);
      assert.equal(mine.max, Math.max(...values));
      assert.equal(mine.zeroCount, 3);
      assert.equal(mine.scale, sdk.scale);
      assert.ok(mine.positive.bucketCounts.length <= maxSize);
      // The SDK may carry empty buckets at the ends; compare the populated range.
      const trim = (h: ExponentialHistogram) => {
        const c = h.positive.bucketCounts;
        let a = 0;
        let b = c.length - 1;
        while (a <= b && c[a] === 0) a++;
        while (b >= a && c[b] === 0) b--;
        return { offset: h.positive.offset + a, counts: c.slice(a, b + 1) };
      };
      assert.deepEqual(trim(mine), trim(sdk));
      assert.equal(mine.zeroCount, sdk.zeroCount);
    });
  }

  test('exponential: every observation lies in the bucket the specification gives it, (base^i, base^(i+1)]', () => {
    const values = workloadValues().filter((v) => v > 0);
    const schema = schemaWith();
    const { s } = stage();
    const seen: number[] = [];
    for (const v of values) {
      // one observation per collection: the delta point holds exactly that value's bucket
      s.add(samples(schema, { w: 'a' }, [v]));
      const h = points(s.collect(T0 + 1000).delta(), 'test.duration')!.dataPoints[0]!.value as ExponentialHistogram;
      const base = 2 ** (2 ** -h.scale);
      const i = h.positive.offset + h.positive.bucketCounts.findIndex((c) => c === 1);
      assert.equal(
        h.positive.bucketCounts.reduce((a, b) => a + b, 0),
        1,
      );
      assert.ok(base ** i < v * (1 + 1e-12) && v <= base ** (i + 1) * (1 + 1e-12), `${v} in bucket ${i} at scale ${h.scale}`);
      seen.push(h.scale);
    }
    // The scale only goes down as the range grows, and 160 buckets bound it.
    for (let k = 1; k < seen.length; k++) assert.ok(seen[k]! <= seen[k - 1]!);
  });

  test('explicit boundaries: the same bucket counts as the SDK (upper-inclusive), min/max/sum/count', async () => {
    const values = workloadValues();
    const agg: HistogramAggregation = { kind: 'explicit', boundaries: [0, 0.001, 0.01, 0.1, 0.25, 0.5, 1, 10] };
    const schema = schemaWith(agg);
    const { s } = stage();
    s.add(samples(schema, { w: 'a' }, values));
    const m = points(s.collect(T0 + 1000).cumulative(), 'test.duration')!;
    assert.equal(m.dataPointType, DataPointType.HISTOGRAM);
    const mine = m.dataPoints[0]!.value;
    const sdk = (await sdkHistogram(values, agg)) as Histogram;
    assert.deepEqual(mine.buckets, sdk.buckets);
    assert.equal(mine.count, sdk.count);
    assert.equal(mine.sum, sdk.sum);
    assert.equal(mine.min, sdk.min);
    assert.equal(mine.max, sdk.max);
  });

  test('delta temporality: per-interval histograms add up to the cumulative one; quiet intervals export no point', () => {
    const values = workloadValues();
    for (const agg of [{ kind: 'exponential' } as const, { kind: 'explicit', boundaries: [0.001, 0.01, 0.1, 1] } as const]) {
      const schema = schemaWith(agg);
      const { s } = stage();
      let count = 0;
      let sum = 0;
      let last: ResourceMetrics | undefined;
      for (let k = 0; k < values.length; k += 100) {
        s.add(samples(schema, { w: 'a' }, values.slice(k, k + 100)));
        const c = s.collect(T0 + k + 1);
        const h = points(c.delta(), 'test.duration')!.dataPoints[0]!.value as ExponentialHistogram | Histogram;
        count += h.count;
        sum += h.sum!;
        last = c.cumulative();
        if ('scale' in h) {
          // deltas of an exponential histogram are at the cumulative's (current) scale
          const cum = points(last, 'test.duration')!.dataPoints[0]!.value as ExponentialHistogram;
          assert.equal(h.scale, cum.scale);
        }
      }
      const cum = points(last!, 'test.duration')!.dataPoints[0]!.value as ExponentialHistogram | Histogram;
      assert.equal(count, values.length);
      assert.equal(cum.count, values.length);
      assert.ok(Math.abs(sum - cum.sum!) < 1e-9);
      // Nothing observed: no delta point, the cumulative one stays.
      const quiet = s.collect(T0 + 10_000);
      assert.equal(points(quiet.delta(), 'test.duration'), undefined);
      assert.equal((points(quiet.cumulative(), 'test.duration')!.dataPoints[0]!.value as Histogram).count, values.length);
    }
  });

  test('exponential deltas bucket by bucket: the sum of the intervals (brought to the last scale) is the cumulative', () => {
    const values = workloadValues().filter((v) => v > 0);
    const schema = schemaWith({ kind: 'exponential', maxSize: 40 });
    const { s } = stage();
    const deltas: ExponentialHistogram[] = [];
    let cum: ExponentialHistogram | undefined;
    for (let k = 0; k < values.length; k += 37) {
      s.add(samples(schema, { w: 'a' }, values.slice(k, k + 37)));
      const c = s.collect(T0 + k);
      deltas.push(points(c.delta(), 'test.duration')!.dataPoints[0]!.value as ExponentialHistogram);
      cum = points(c.cumulative(), 'test.duration')!.dataPoints[0]!.value as ExponentialHistogram;
    }
    const total = new Map<number, number>();
    for (const d of deltas) {
      const shift = d.scale - cum!.scale;
      d.positive.bucketCounts.forEach((n, k) => {
        const i = (d.positive.offset + k) >> shift;
        total.set(i, (total.get(i) ?? 0) + n);
      });
    }
    cum!.positive.bucketCounts.forEach((n, k) => assert.equal(total.get(cum!.positive.offset + k) ?? 0, n, `bucket ${cum!.positive.offset + k}`));
  });

  test('NaN is no observation (live samples); other series of the schema keep their counters; the overflow series gets its own histogram', () => {
    const schema = schemaWith();
    const { s } = stage(1);
    s.add([{ schema, attributes: { w: 'a' }, values: Float64Array.of(0, NaN), final: false, timeMs: T0 }]);
    s.add(samples(schema, { w: 'a' }, [0.5]));
    s.add(samples(schema, { w: 'b' }, [0.25, 4])); // over the limit of 1 series: overflow
    const rm = s.collect(T0 + 1).cumulative();
    const pts = points(rm, 'test.duration')!.dataPoints;
    const a = pts.find((p) => p.attributes['w'] === 'a')!.value as ExponentialHistogram;
    const overflow = pts.find((p) => p.attributes['otel.metric.overflow'] === true)!.value as ExponentialHistogram;
    assert.equal(a.count, 1);
    assert.equal(overflow.count, 2);
    assert.equal(overflow.sum, 4.25);
  });

  test('negative or infinite observations drop the sample (counted, logged); bad aggregations reject the schema with a message naming the metric', () => {
    const { s, logger } = stage();
    const schema = schemaWith();
    s.add(samples(schema, { w: 'a' }, [-1, Infinity]));
    assert.equal(points(s.collect(T0).cumulative(), 'test.count'), undefined);
    assert.ok(logger.lines.some((l) => String(l.fields?.['reason']).includes('test.duration')));
    for (const [bad, says] of [
      [{ kind: 'explicit', boundaries: [1, 1] }, 'strictly ascending'],
      [{ kind: 'exponential', maxSize: 1 }, 'maxSize'],
      [{ kind: 'exponential', maxScale: 21 }, 'maxScale'],
    ] as const) {
      const t = stage();
      t.s.add(samples(schemaWith(bad), { w: 'a' }, [1]));
      assert.ok(
        t.logger.lines.some(
          (l) => l.msg.includes('schema rejected') && String(l.fields?.['error']).includes('test.duration') && String(l.fields?.['error']).includes(says),
        ),
        JSON.stringify(t.logger.lines),
      );
    }
  });

  test('the OTLP serializer of OpenTelemetry JS encodes both kinds (exponentialHistogram / histogram)', () => {
    for (const [agg, field] of [
      [{ kind: 'exponential' }, 'exponentialHistogram'],
      [{ kind: 'explicit', boundaries: [0.1, 1] }, 'histogram'],
    ] as const) {
      const schema = schemaWith(agg);
      const { s } = stage();
      s.add(samples(schema, { w: 'a' }, [0.05, 0.5, 5]));
      const json = JSON.parse(Buffer.from(JsonMetricsSerializer.serializeRequest(s.collect(T0 + 1).cumulative())!).toString()) as {
        resourceMetrics: { scopeMetrics: { metrics: Record<string, { dataPoints: { count: string | number }[] }>[] }[] }[];
      };
      const metric = json.resourceMetrics[0]!.scopeMetrics[0]!.metrics.find((x) => (x as unknown as { name: string }).name === 'test.duration')!;
      assert.ok(metric[field], `${field} in ${JSON.stringify(metric)}`);
      assert.equal(Number(metric[field].dataPoints[0]!.count), 3);
    }
  });
});
