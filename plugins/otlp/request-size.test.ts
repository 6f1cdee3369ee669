/**
 * One collection of a node with many workloads is tens of thousands of data points, megabytes of
 * protobuf, over what receivers take by default (gRPC's 4 MiB message limit: the Collector's otlp
 * receiver and grpcio alike). The exporter sends it as requests of at most
 * `sending_queue.batch.max_size` points. The receiver here is the independent decoder
 * (test/support/otlp-decoder.py: grpcio with its default limits and the official definitions).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SampleSchema } from '../../src/api/index.js';
import { DEFAULT_BATCH_MAX_SIZE } from '../../src/api/index.js';
import { MetricsStage, buildResource } from '../../src/metrics/index.js';
import { RecordingLogger, RecordingTelemetry } from '../../src/metrics/testing.js';
import { otlpDecoderMissing, startOtlpDecoder, type OtlpDecoder } from '../../test/support/otlp-decoder.js';
import { OtlpExporter } from './exporter.js';
import { encodeMetricsRequest } from './protobuf-metrics.js';
import { recordingContext } from './testing.js';

const missing = otlpDecoderMissing();
let decoder: OtlpDecoder | undefined;
before(async () => {
  if (!missing) decoder = await startOtlpDecoder();
});
after(async () => {
  await decoder?.stop();
});

const METRICS = 10;
const SERIES = 2_400;
const SCHEMA: SampleSchema = {
  id: 'request-size.test',
  metrics: Array.from({ length: METRICS }, (_, i) => ({
    name: `test.counter_${i}`,
    unit: '{item}',
    description: 'a counter',
    instrument: 'counter' as const,
    valueType: 'int' as const,
  })),
};

/** One collection of SERIES workloads shaped like a node's (a command in a container's cgroup). */
function collection() {
  const stage = new MetricsStage({
    seriesLimit: SERIES + 1,
    endedSeriesTtlMs: 60_000,
    resource: buildResource({ OTEL_SERVICE_NAME: 'request-size-test' }),
    telemetry: new RecordingTelemetry(),
    logger: new RecordingLogger(),
  });
  const now = Date.now();
  stage.add(
    Array.from({ length: SERIES }, (_, w) => ({
      schema: SCHEMA,
      attributes: {
        'process.executable.name': `cmd-${w}`,
        'process.linux.cgroup': `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${w}.slice/cri-containerd-${w}.scope`,
      },
      values: Float64Array.from({ length: METRICS }, (_, m) => w * METRICS + m + 1),
      final: false,
      timeMs: now,
    })),
  );
  return stage.collect(now).cumulative();
}

const pointsOf = (r: (typeof decoder & object)['requests'][number]) =>
  (r.request.resource_metrics ?? []).flatMap((rm) => (rm.scope_metrics ?? []).flatMap((sm) => (sm.metrics ?? []).flatMap((m) => m.sum?.data_points ?? [])));

describe('otlp exporter: requests within what receivers take', { skip: missing }, () => {
  test('a collection over 4 MiB reaches a gRPC receiver with default limits whole, in requests of at most batch.max_size points', async () => {
    const rm = collection();
    const whole = encodeMetricsRequest(rm).length;
    assert.ok(whole > 4 * 1024 * 1024, `the collection must be over gRPC's 4 MiB (${whole} bytes)`);
    const ctx = recordingContext();
    const exporter = new OtlpExporter(ctx, { endpoint: decoder!.grpcUrl, protocol: 'grpc' }, {});
    await exporter.start();
    await exporter.export(rm);
    await exporter.forceFlush();
    const requests = Math.ceil((SERIES * METRICS) / DEFAULT_BATCH_MAX_SIZE);
    const got = await decoder!.waitFor('metrics', requests, 30_000);
    await exporter.shutdown();
    assert.deepEqual(decoder!.errors, []);
    assert.equal(got.length, requests);
    for (const r of got) assert.ok(pointsOf(r).length <= DEFAULT_BATCH_MAX_SIZE);
    // Every point arrived once, with its value: value = w * METRICS + m + 1 is unique per point.
    const values = got.flatMap((r) => pointsOf(r).map((p) => Number(p.as_int)));
    assert.equal(values.length, SERIES * METRICS);
    assert.equal(new Set(values).size, SERIES * METRICS);
    assert.equal(Math.max(...values), SERIES * METRICS);
    assert.deepEqual(exporter.stats.droppedPoints, {});
    assert.equal(exporter.stats.requests.success, requests);
    // Each request carries the resource.
    for (const r of got) assert.ok(r.request.resource_metrics?.[0]?.resource?.attributes?.some((a) => a.key === 'service.name'));
  });

  test('as one request (batch.max_size 0) the same collection is refused, and its points are counted as dropped', async () => {
    const before = decoder!.requests.length;
    const ctx = recordingContext();
    const exporter = new OtlpExporter(
      ctx,
      { endpoint: decoder!.grpcUrl, protocol: 'grpc', retry_on_failure: { enabled: false }, sending_queue: { batch: { max_size: 0 } } },
      {},
    );
    await exporter.start();
    await exporter.export(collection());
    await exporter.forceFlush();
    await exporter.shutdown();
    assert.equal(decoder!.requests.length, before, 'nothing decoded');
    assert.equal(exporter.stats.droppedPoints.send_failed, SERIES * METRICS);
    const failure = ctx.logs.find((l) => l.msg === 'export failed; batch dropped');
    assert.match(String(failure?.fields?.reason), /gRPC status 8/, 'RESOURCE_EXHAUSTED: the message is over the receiver limit');
  });
});
