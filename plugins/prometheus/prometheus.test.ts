import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { recordingContext, sdkMetrics } from '../otlp/testing.js';
import { parseListenAddress } from '../../src/api/index.js';
import { ComponentConfigValidator } from '../../src/config/component-config.js';
import type { ConfigIssue } from '../../src/config/issues.js';
import { defaultPrometheusConfig } from './config.js';
import { prometheusExporterFactory } from './factory.js';
import { PrometheusExporter } from './exporter.js';

async function metricsOf(value: number) {
  const sdk = sdkMetrics({ 'service.name': 'taskstats-agent', 'host.name': 'node-1' });
  sdk.meter.createCounter('process.cpu.time', { unit: 's', description: 'CPU seconds' }).add(value, {
    'cpu.mode': 'user',
    'process.executable.name': 'nginx',
    'process.linux.cgroup': '/system.slice/nginx.service',
  });
  sdk.meter.createCounter('process.exits', { unit: '{process}' }).add(12, { 'process.exit.code': 0 });
  const rm = await sdk.collect();
  await sdk.shutdown();
  return rm;
}

describe('prometheus exporter', () => {
  test('config: endpoint must be host:port; default 127.0.0.1:9464', () => {
    assert.equal(defaultPrometheusConfig().endpoint, '127.0.0.1:9464');
    assert.deepEqual(parseListenAddress('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseListenAddress(':9464'), { host: '0.0.0.0', port: 9464 });
    assert.deepEqual(parseListenAddress('[::1]:80'), { host: '::1', port: 80 });
    assert.equal(parseListenAddress('9464'), undefined);
    assert.equal(parseListenAddress('host:99999'), undefined);
    const issues: ConfigIssue[] = [];
    const positions = { valuePositions: new Map(), keyPositions: new Map() };
    new ComponentConfigValidator().resolve(prometheusExporterFactory, { endpoint: 'http://x:1' }, 'exporters.prometheus', positions, issues);
    assert.deepEqual(
      issues.map((i) => [i.path, i.message]),
      [['exporters.prometheus.endpoint', 'must be host:port such as "127.0.0.1:9464", "[::1]:9464" or ":9464" (all interfaces) (got "http://x:1")']],
    );
  });

  test('serves the latest collection as Prometheus text; empty before the first; 404 elsewhere', async () => {
    const ctx = recordingContext('prometheus');
    const exporter = new PrometheusExporter(ctx, { ...defaultPrometheusConfig(), endpoint: '127.0.0.1:0' });
    assert.equal(exporter.temporality, 'cumulative');
    await exporter.start();
    const base = `http://127.0.0.1:${exporter.address!.port}`;
    try {
      const empty = await fetch(`${base}/metrics`);
      assert.equal(empty.status, 200);
      assert.equal(await empty.text(), '');
      await exporter.export(await metricsOf(1.5));
      await exporter.export(await metricsOf(4.25)); // the latest wins
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /# TYPE process_cpu_time_total counter/);
      assert.match(
        text,
        /^process_cpu_time_total\{cpu_mode="user",process_executable_name="nginx",process_linux_cgroup="\/system\.slice\/nginx\.service"[^}]*\} 4\.25$/m,
      );
      assert.match(text, /^process_exits_total\{process_exit_code="0"[^}]*\} 12$/m);
      assert.match(text, /^target_info\{service_name="taskstats-agent",host_name="node-1"\} 1$/m);
      assert.equal((await fetch(`${base}/other`)).status, 404);
      assert.equal(ctx.counterTotal('scrapes'), 2);
    } finally {
      await exporter.shutdown();
    }
    await assert.rejects(fetch(`${base}/metrics`), 'closed after shutdown');
  });

  test('namespace and resource_to_telemetry_conversion', async () => {
    const exporter = new PrometheusExporter(recordingContext(), {
      endpoint: '127.0.0.1:0',
      namespace: 'tsa',
      resource_to_telemetry_conversion: { enabled: true },
    });
    await exporter.start();
    try {
      await exporter.export(await metricsOf(2));
      const text = await (await fetch(`http://127.0.0.1:${exporter.address!.port}/metrics`)).text();
      assert.match(text, /^tsa_process_cpu_time_total\{[^}]*service_name="taskstats-agent",host_name="node-1"\} 2$/m);
    } finally {
      await exporter.shutdown();
    }
  });

  test('a port in use fails start() with a message naming the endpoint', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const exporter = new PrometheusExporter(recordingContext(), { ...defaultPrometheusConfig(), endpoint: `127.0.0.1:${port}` });
      await assert.rejects(exporter.start(), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
      await exporter.shutdown();
    } finally {
      blocker.close();
    }
  });
});

describe('prometheus exporter: histograms', () => {
  test('an exponential histogram is served as a classic one: each le counts exactly the observations <= le; +Inf and _count are all of them', async () => {
    const { MetricsStage, buildResource } = await import('../../src/metrics/index.js');
    const { RecordingLogger, RecordingTelemetry } = await import('../../src/metrics/testing.js');
    const stage = new MetricsStage({
      seriesLimit: 10,
      endedSeriesTtlMs: 60_000,
      resource: buildResource({}),
      telemetry: new RecordingTelemetry(),
      logger: new RecordingLogger(),
    });
    const schema = {
      id: 'prom.hist',
      metrics: [{ name: 'process.linux.lifetime', unit: 's', description: 'life', instrument: 'histogram' as const, valueType: 'double' as const }],
    };
    const observations = [0, 0.003, 0.1, 0.1, 0.4, 0.41, 2, 30];
    stage.add(
      observations.map((v) => ({ schema, attributes: { 'process.executable.name': 'sh' }, values: Float64Array.of(v), final: false, timeMs: Date.now() })),
    );
    const ctx = recordingContext('prometheus');
    const exporter = new PrometheusExporter(ctx, { ...defaultPrometheusConfig(), endpoint: '127.0.0.1:0' });
    await exporter.start();
    try {
      await exporter.export(stage.collect().cumulative());
      const text = await (await fetch(`http://127.0.0.1:${exporter.address!.port}/metrics`)).text();
      assert.match(text, /# TYPE process_linux_lifetime(_seconds)? histogram/);
      const buckets = [...text.matchAll(/^process_linux_lifetime(?:_seconds)?_bucket\{.*le="([^"]+)".*\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])] as const);
      assert.ok(buckets.length >= 3, text);
      for (const [le, n] of buckets) {
        const bound = le === '+Inf' ? Infinity : Number(le);
        assert.equal(n, observations.filter((v) => v <= bound).length, `le=${le}\n${text}`);
      }
      assert.equal(buckets.at(-1)![0], '+Inf');
      assert.match(text, new RegExp(`^process_linux_lifetime(?:_seconds)?_count\\{.*\\} ${observations.length}$`, 'm'));
      assert.ok(ctx.logs.some((l) => l.level === 'info' && l.msg.includes('classic histograms')));
    } finally {
      await exporter.shutdown();
    }
  });
});
