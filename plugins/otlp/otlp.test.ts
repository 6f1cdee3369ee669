import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { resolveOtlpSettings, validateOtlpConfig, type OtlpExporterConfig } from './config.js';
import { OtlpExporter } from './exporter.js';
import { otlpExporterFactory } from './factory.js';
import { recordingContext, sdkMetrics } from './testing.js';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/** A local OTLP/HTTP receiver whose answers the test scripts: each request takes the next answer. */
async function startReceiver(
  answers: Array<{ status: number; headers?: Record<string, string>; holdMs?: number }> = [],
  fallback: { status: number; headers?: Record<string, string>; holdMs?: number } = { status: 200 },
): Promise<{ url: string; received: Received[]; close(): Promise<void>; release(): void }> {
  const received: Received[] = [];
  const held: Array<() => void> = [];
  let released = false;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body);
      received.push({ path: req.url ?? '', headers: req.headers, body, at: Date.now() });
      const answer = answers.shift() ?? fallback;
      const reply = () => {
        res.writeHead(answer.status, answer.headers ?? {});
        res.end();
      };
      if (answer.holdMs && !released) {
        held.push(reply);
        setTimeout(reply, answer.holdMs).unref();
      } else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    release() {
      released = true;
      for (const r of held.splice(0)) r();
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function cpuMetrics(value = 1.5) {
  const m = sdkMetrics({ 'service.name': 'otlp-test' });
  m.meter.createCounter('process.cpu.time', { unit: 's' }).add(value, { 'cpu.mode': 'user', 'process.executable.name': 'sh' });
  m.meter.createCounter('process.exits', { unit: '{process}' }).add(3, { 'process.exit.code': 0 });
  const rm = await m.collect();
  await m.shutdown();
  return rm;
}

async function exporterFor(config: OtlpExporterConfig, ctx = recordingContext()) {
  const exporter = new OtlpExporter(ctx, config, {});
  await exporter.start();
  return { exporter, ctx };
}

describe('otlp settings', () => {
  test('endpoint gets /v1/metrics, metrics_endpoint is taken as is and wins', () => {
    assert.equal(resolveOtlpSettings({ endpoint: 'http://c:4318' }, {}).url, 'http://c:4318/v1/metrics');
    assert.equal(resolveOtlpSettings({ endpoint: 'http://c:4318/otlp/' }, {}).url, 'http://c:4318/otlp/v1/metrics');
    assert.equal(resolveOtlpSettings({ endpoint: 'http://c:4318', metrics_endpoint: 'http://m:1/x' }, {}).url, 'http://m:1/x');
    assert.equal(resolveOtlpSettings({ endpoint: 'http://c:4317', protocol: 'grpc' }, {}).url, 'http://c:4317');
    // gRPC takes host:port as the Collector does; HTTP needs a URL.
    assert.equal(resolveOtlpSettings({ endpoint: 'otel-collector:4317', protocol: 'grpc' }, {}).url, 'http://otel-collector:4317');
    assert.deepEqual(validateOtlpConfig({ endpoint: 'otel-collector:4317', protocol: 'grpc' }), []);
    assert.deepEqual(
      validateOtlpConfig({ endpoint: 'otel-collector:4318' }).map((p) => p.path),
      ['endpoint'],
    );
  });

  test('environment variables apply when the config is silent, and the config wins', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://envbase:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=x%20y',
      OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'b=2',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta',
    };
    const fromEnv = resolveOtlpSettings({}, env);
    assert.equal(fromEnv.url, 'http://envbase:4318/v1/metrics');
    assert.equal(fromEnv.urlSource, 'OTEL_EXPORTER_OTLP_ENDPOINT');
    assert.deepEqual(fromEnv.headers, { a: '1', b: '2' });
    assert.equal(fromEnv.protocol, 'http/json');
    assert.equal(fromEnv.compression, 'gzip');
    assert.equal(fromEnv.timeoutMs, 2500);
    assert.equal(fromEnv.temporality, 'delta');

    const specific = resolveOtlpSettings({}, { ...env, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://full:1/path' });
    assert.equal(specific.url, 'http://full:1/path');

    const explicit = resolveOtlpSettings(
      { endpoint: 'http://cfg:4318', headers: { b: '3' }, protocol: 'http/protobuf', compression: 'none', timeout: 1000, temporality: 'cumulative' },
      env,
    );
    assert.equal(explicit.url, 'http://cfg:4318/v1/metrics');
    assert.deepEqual(explicit.headers, { a: '1', b: '3' });
    assert.equal(explicit.protocol, 'http/protobuf');
    assert.equal(explicit.compression, 'none');
    assert.equal(explicit.timeoutMs, 1000);
    assert.equal(explicit.temporality, 'cumulative');
  });

  test('defaults: protobuf, no compression, 10 s, retries on, queue of 100, cumulative, idle without endpoint', () => {
    const s = resolveOtlpSettings({ endpoint: '' }, {});
    assert.equal(s.url, undefined);
    assert.equal(s.protocol, 'http/protobuf');
    assert.equal(s.compression, 'none');
    assert.equal(s.timeoutMs, 10_000);
    assert.deepEqual(s.retry, { enabled: true, initialIntervalMs: 5000, maxIntervalMs: 30000, maxElapsedTimeMs: 300000 });
    assert.deepEqual(s.queue, { enabled: true, queueSize: 100 });
    assert.equal(s.temporality, 'cumulative');
  });

  test('bad URLs are config errors naming the key or the variable', () => {
    assert.deepEqual(
      validateOtlpConfig({ endpoint: 'not a url' }).map((p) => p.path),
      ['endpoint'],
    );
    assert.deepEqual(
      validateOtlpConfig({ metrics_endpoint: 'ftp://x/y' }).map((p) => p.path),
      ['metrics_endpoint'],
    );
    assert.throws(() => resolveOtlpSettings({}, { OTEL_EXPORTER_OTLP_ENDPOINT: '::nope' }), /OTEL_EXPORTER_OTLP_ENDPOINT/);
    assert.throws(() => resolveOtlpSettings({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }), /OTEL_EXPORTER_OTLP_PROTOCOL/);
    const saved = process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = 'bogus';
    try {
      const problems = otlpExporterFactory.validate!({});
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /OTEL_EXPORTER_OTLP_METRICS_ENDPOINT/);
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = saved;
    }
  });
});

describe('otlp exporter over HTTP', () => {
  const receivers: Array<{ close(): Promise<void> }> = [];
  after(async () => {
    for (const r of receivers) await r.close();
  });

  test('http/json with gzip and headers: the request body decodes to the metrics sent', async () => {
    const rx = await startReceiver();
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({
      endpoint: rx.url,
      protocol: 'http/json',
      compression: 'gzip',
      headers: { authorization: 'Bearer SECRET-TOKEN-42' },
    });
    await exporter.export(await cpuMetrics(2.5));
    await exporter.forceFlush();
    await exporter.shutdown();
    assert.equal(rx.received.length, 1);
    const req = rx.received[0]!;
    assert.equal(req.path, '/v1/metrics');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['content-encoding'], 'gzip');
    assert.equal(req.headers.authorization, 'Bearer SECRET-TOKEN-42');
    type JsonAttribute = { key: string; value: { stringValue?: string } };
    type JsonMetric = {
      name: string;
      unit: string;
      sum: { isMonotonic: boolean; aggregationTemporality: number; dataPoints: { asDouble?: number; asInt?: string; attributes: JsonAttribute[] }[] };
    };
    const body = JSON.parse(req.body.toString()) as {
      resourceMetrics: { resource: { attributes: JsonAttribute[] }; scopeMetrics: { metrics: JsonMetric[] }[] }[];
    };
    const resourceAttrs = body.resourceMetrics[0]!.resource.attributes;
    assert.ok(resourceAttrs.some((a) => a.key === 'service.name' && a.value.stringValue === 'otlp-test'));
    const metrics = body.resourceMetrics[0]!.scopeMetrics[0]!.metrics;
    const cpu = metrics.find((m) => m.name === 'process.cpu.time');
    assert.ok(cpu, 'process.cpu.time exported');
    assert.equal(cpu.unit, 's');
    assert.equal(cpu.sum.isMonotonic, true);
    assert.equal(cpu.sum.aggregationTemporality, 2); // cumulative
    assert.equal(cpu.sum.dataPoints[0]!.asDouble, 2.5);
    assert.ok(cpu.sum.dataPoints[0]!.attributes.some((a) => a.key === 'cpu.mode' && a.value.stringValue === 'user'));
    const exits = metrics.find((m) => m.name === 'process.exits');
    assert.ok(exits, 'process.exits exported');
    assert.equal(exits.sum.dataPoints[0]!.asDouble ?? Number(exits.sum.dataPoints[0]!.asInt), 3);
    assert.equal(exporter.stats.requests.success, 1);
    assert.equal(ctx.counterTotal('requests', { outcome: 'success' }), 1);
    assert.ok(!JSON.stringify(ctx.logs).includes('SECRET-TOKEN-42'), 'header values must never be logged');
    assert.ok(JSON.stringify(ctx.logs).includes('authorization'), 'header names are logged at start');
  });

  test('503 and 429 with Retry-After: the export waits as asked, succeeds, and every attempt is counted', async () => {
    const rx = await startReceiver([
      { status: 503, headers: { 'retry-after': '1' } },
      { status: 429, headers: { 'retry-after': '1' } },
    ]);
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({ endpoint: rx.url, timeout: 10_000 });
    const t0 = Date.now();
    await exporter.export(await cpuMetrics());
    await exporter.forceFlush();
    const elapsed = Date.now() - t0;
    await exporter.shutdown();
    assert.equal(rx.received.length, 3);
    assert.ok(rx.received[1]!.at - rx.received[0]!.at >= 950, `second attempt ${rx.received[1]!.at - rx.received[0]!.at} ms after the first`);
    assert.ok(rx.received[2]!.at - rx.received[1]!.at >= 950, `third attempt ${rx.received[2]!.at - rx.received[1]!.at} ms after the second`);
    assert.ok(elapsed >= 1900, `took ${elapsed} ms`);
    assert.deepEqual(exporter.stats.requests, { success: 1, retryable: 2, failed: 0 });
    assert.deepEqual(exporter.stats.statusCodes, { '503': 1, '429': 1, '200': 1 });
    assert.equal(ctx.counterTotal('requests', { outcome: 'retryable' }), 2);
    assert.equal(exporter.stats.batchesSent, 1);
    assert.deepEqual(ctx.dropped, {});
  });

  test('a Retry-After longer than the timeout is honoured by re-sending the batch later', async () => {
    const rx = await startReceiver([{ status: 503, headers: { 'retry-after': '2' } }]);
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({
      endpoint: rx.url,
      timeout: 500,
      retry_on_failure: { initial_interval: 50, max_interval: 100, max_elapsed_time: 10_000 },
    });
    await exporter.export(await cpuMetrics());
    const until = Date.now() + 8000;
    while (exporter.stats.batchesSent === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await exporter.shutdown();
    assert.equal(exporter.stats.batchesSent, 1);
    assert.equal(rx.received.length, 2);
    const gap = rx.received[1]!.at - rx.received[0]!.at;
    assert.ok(gap >= 1900, `re-sent after ${gap} ms; Retry-After asked for 2000`);
    assert.equal(exporter.stats.batchRetries, 1);
    assert.equal(ctx.counterTotal('batch_retries'), 1);
    assert.ok(ctx.logs.some((l) => l.level === 'warn' && l.fields?.key === 'retrying:metrics'));
    assert.ok(ctx.logs.some((l) => l.level === 'info' && l.msg === 'backend reachable again'));
  });

  test('an IPv6 node address expanded into the URL without brackets is reached (the chart default on IPv6 nodes)', async (t) => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        paths.push(req.url ?? '');
        res.writeHead(200).end();
      });
    });
    const paths: string[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '::1', resolve);
      });
    } catch (e) {
      t.skip(`no IPv6 loopback here (${(e as Error).message})`);
      return;
    }
    const { port } = server.address() as net.AddressInfo;
    // What `http://${env:K8S_NODE_IP}:4318` becomes with K8S_NODE_IP=::1.
    const endpoint = `http://::1:${port}`;
    assert.deepEqual(validateOtlpConfig({ endpoint }), []);
    assert.equal(resolveOtlpSettings({ endpoint }, {}).url, `http://[::1]:${port}/v1/metrics`);
    const { exporter } = await exporterFor({ endpoint });
    await exporter.export(await cpuMetrics());
    await exporter.forceFlush();
    await exporter.shutdown();
    await new Promise<void>((r) => server.close(() => r()));
    assert.deepEqual(paths, ['/v1/metrics']);
    assert.equal(resolveOtlpSettings({ endpoint: 'http://collector:4318' }, {}).url, 'http://collector:4318/v1/metrics', 'names untouched');
  });

  test('a 400 is not retried: the batch is dropped and counted, never thrown', async () => {
    const rx = await startReceiver([{ status: 400 }]);
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({ endpoint: rx.url });
    const rm = await cpuMetrics();
    await exporter.export(rm);
    await exporter.forceFlush();
    await exporter.shutdown();
    assert.equal(rx.received.length, 1);
    assert.equal(ctx.dropped.send_failed, 2);
    assert.equal(exporter.stats.requests.failed, 1);
    assert.ok(ctx.logs.some((l) => l.level === 'warn' && l.fields?.why === 'not retryable'));
  });

  test('backend down: retried quietly until max_elapsed_time, then dropped and counted; secrets never logged', async () => {
    const rx = await startReceiver();
    const deadUrl = rx.url;
    await rx.close(); // nothing listens there now: connection refused
    const { exporter, ctx } = await exporterFor({
      endpoint: deadUrl,
      timeout: 300,
      headers: { 'x-api-key': 'TOPSECRET-VALUE' },
      retry_on_failure: { initial_interval: 100, max_interval: 200, max_elapsed_time: 1000 },
    });
    await exporter.export(await cpuMetrics()); // resolves at once: queued
    const failed = () => ctx.dropped.send_failed ?? 0;
    assert.equal(failed(), 0, 'export() returned before the retries (up to 1 s) ended');
    const until = Date.now() + 5000;
    while (failed() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await exporter.shutdown();
    assert.equal(ctx.dropped.send_failed, 2);
    assert.ok(exporter.stats.batchRetries >= 2, `batch retries ${exporter.stats.batchRetries}`);
    assert.ok(exporter.stats.requests.retryable >= 3, `requests ${JSON.stringify(exporter.stats.requests)}`);
    assert.ok(
      ctx.logs.every((l) => l.level !== 'error'),
      'backend down is a warning, not an error',
    );
    const warnKeys = new Set(ctx.logs.filter((l) => l.level === 'warn').map((l) => l.fields?.key));
    assert.deepEqual([...warnKeys].sort(), ['retrying:metrics', 'send_failed:metrics'], 'warnings carry a rate-limit key');
    assert.ok(!JSON.stringify(ctx.logs).includes('TOPSECRET-VALUE'));
  });

  test('bounded queue: when full the oldest waiting batch is dropped and counted as queue_full', async () => {
    const rx = await startReceiver([{ status: 200, holdMs: 10_000 }]);
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({ endpoint: rx.url, protocol: 'http/json', sending_queue: { queue_size: 2 } });
    const batches = [];
    for (let i = 1; i <= 5; i++) batches.push(await cpuMetrics(i));
    for (const b of batches) await exporter.export(b); // 1 in flight, 4 for 2 places
    assert.equal(ctx.gauges.queue_size!(), 2);
    assert.equal(ctx.gauges.queue_capacity!(), 2);
    assert.equal(ctx.dropped.queue_full, 4, 'two batches of two points each');
    assert.equal(exporter.stats.droppedBatches.queue_full, 2);
    rx.release();
    await exporter.forceFlush();
    await exporter.shutdown();
    assert.equal(rx.received.length, 3);
    assert.equal(exporter.stats.batchesSent, 3);
    // Which batches survived, read from what the backend received: 1 (in flight), then the
    // newest two, 4 and 5 (2 and 3, the oldest waiting, were dropped).
    const sent = rx.received.map((r) => {
      const body = JSON.parse(r.body.toString()) as {
        resourceMetrics: { scopeMetrics: { metrics: { name: string; sum: { dataPoints: { asDouble?: number }[] } }[] }[] }[];
      };
      return body.resourceMetrics[0]!.scopeMetrics[0]!.metrics.find((m) => m.name === 'process.cpu.time')!.sum.dataPoints[0]!.asDouble;
    });
    assert.deepEqual(sent, [1, 4, 5]);
    assert.ok(ctx.logs.some((l) => l.fields?.key === 'queue_full:metrics'));
  });

  test('shutdown with the backend failing is quick and accounts for every batch', async () => {
    const rx = await startReceiver([], { status: 503 });
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({
      endpoint: rx.url,
      timeout: 1000,
      sending_queue: { queue_size: 3 },
      retry_on_failure: { initial_interval: 5000, max_interval: 5000, max_elapsed_time: 600_000 },
    });
    for (let i = 0; i < 4; i++) await exporter.export(await cpuMetrics(i + 1));
    await new Promise((r) => setTimeout(r, 1200)); // the first batch is now waiting for its re-send
    const t0 = Date.now();
    await exporter.forceFlush();
    await exporter.shutdown();
    const tookMs = Date.now() - t0;
    // It does not wait for the 5 s re-send of the waiting batch (a bound of the behaviour, not a speed).
    assert.ok(tookMs < 5000, `flush + shutdown took ${tookMs} ms`);
    // Every batch (2 points each) is accounted for: none sent, all dropped with a reason.
    const dropped = Object.values(ctx.dropped).reduce((a, b) => a + b, 0);
    assert.equal(dropped, 8, JSON.stringify(ctx.dropped));
    assert.equal(exporter.stats.batchesSent, 0);
    assert.equal(ctx.gauges.queue_size!(), 0);
  });

  test('a backend that does not answer: the flush gives up after its budget and every batch is counted', async () => {
    const rx = await startReceiver([{ status: 200, holdMs: 20_000 }]);
    receivers.push(rx);
    const { exporter, ctx } = await exporterFor({ endpoint: rx.url, timeout: 1500, retry_on_failure: { enabled: false } });
    await exporter.export(await cpuMetrics(1));
    await exporter.export(await cpuMetrics(2));
    const t0 = Date.now();
    await exporter.forceFlush();
    const tookMs = Date.now() - t0;
    // The budget is honoured, and the flush does not wait for the backend's answer (20 s).
    assert.ok(tookMs >= 1400 && tookMs < 10_000, `flush took ${tookMs} ms for a 1.5 s budget`);
    await exporter.shutdown();
    await new Promise((r) => setTimeout(r, 100));
    rx.release();
    // Both batches (2 points each) are accounted for: the waiting one as flush_timeout (or
    // send_failed when the in-flight request timed out first), the in-flight one as send_failed.
    assert.equal((ctx.dropped.flush_timeout ?? 0) + (ctx.dropped.send_failed ?? 0), 4, JSON.stringify(ctx.dropped));
    assert.equal(exporter.stats.batchesSent, 0);
  });

  test('no endpoint: idle, says so once, counts its points as dropped (no_endpoint), sends nothing', async () => {
    const { exporter, ctx } = await exporterFor({ endpoint: '' });
    await exporter.export(await cpuMetrics());
    await exporter.export(await cpuMetrics());
    await exporter.shutdown();
    assert.equal(ctx.dropped.no_endpoint, 4);
    assert.equal(ctx.logs.filter((l) => l.level === 'info' && /idle/.test(l.msg)).length, 1);
    assert.equal(ctx.logs.filter((l) => l.level === 'warn' || l.level === 'error').length, 0);
  });

  test('delta temporality is announced to the host', async () => {
    const { exporter } = await exporterFor({ endpoint: 'http://127.0.0.1:9', temporality: 'delta' });
    assert.equal(exporter.temporality, 'delta');
    await exporter.shutdown();
  });
});

describe('otlp exporter over gRPC', () => {
  test('the Export call carries the metrics and the headers as metadata; UNAVAILABLE is retried', async () => {
    const calls: Array<{ body: Buffer; metadata: grpc.Metadata }> = [];
    let failFirst = true;
    const server = new grpc.Server();
    const passThrough = (b: Buffer) => b;
    server.addService(
      {
        Export: {
          path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
          requestStream: false,
          responseStream: false,
          requestSerialize: passThrough,
          requestDeserialize: passThrough,
          responseSerialize: passThrough,
          responseDeserialize: passThrough,
        },
      },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          calls.push({ body: call.request, metadata: call.metadata });
          if (failFirst) {
            failFirst = false;
            callback({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
            return;
          }
          callback(null, Buffer.alloc(0)); // an empty ExportMetricsServiceResponse
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    try {
      const { exporter, ctx } = await exporterFor({
        endpoint: `http://127.0.0.1:${port}`,
        protocol: 'grpc',
        headers: { 'x-tenant': 'team-a' },
        retry_on_failure: { initial_interval: 50, max_interval: 100, max_elapsed_time: 5000 },
      });
      await exporter.export(await cpuMetrics());
      await exporter.forceFlush();
      const until = Date.now() + 5000;
      while (exporter.stats.batchesSent === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      await exporter.shutdown();
      assert.equal(calls.length, 2);
      assert.deepEqual(calls[1]!.metadata.get('x-tenant'), ['team-a']);
      // Protobuf keeps strings as UTF-8 bytes: the names are in the body (the end-to-end test
      // has VictoriaMetrics decode the same bytes).
      assert.ok(calls[1]!.body.includes(Buffer.from('process.cpu.time')));
      assert.ok(calls[1]!.body.includes(Buffer.from('otlp-test')));
      assert.equal(exporter.stats.batchRetries, 1);
      assert.deepEqual(exporter.stats.requests, { success: 1, retryable: 1, failed: 0 });
      assert.equal(ctx.counterTotal('requests', { outcome: 'retryable', status: '14' }), 1);
    } finally {
      server.forceShutdown();
    }
  });
});
