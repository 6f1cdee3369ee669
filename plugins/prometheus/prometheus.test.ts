import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { recordingContext, sdkMetrics } from '../otlp/testing.js';
import { parseListenAddress } from '../../src/api/index.js';
import { ComponentConfigValidator } from '../../src/config/component-config.js';
import type { ConfigIssue } from '../../src/config/issues.js';
import { defaultPrometheusConfig } from './config.js';
import { prometheusExporterFactory } from './factory.js';
import { readFileSync } from 'node:fs';
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
      assert.match(text, /# TYPE process_cpu_time_seconds_total counter/);
      assert.match(
        text,
        /^process_cpu_time_seconds_total\{cpu_mode="user",process_executable_name="nginx",process_linux_cgroup="\/system\.slice\/nginx\.service"[^}]*\} 4\.25$/m,
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
      assert.match(text, /^tsa_process_cpu_time_seconds_total\{[^}]*service_name="taskstats-agent",host_name="node-1"\} 2$/m);
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
      assert.match(text, /# TYPE process_linux_lifetime_seconds histogram/);
      const buckets = [...text.matchAll(/^process_linux_lifetime_seconds_bucket\{.*le="([^"]+)".*\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])] as const);
      assert.ok(buckets.length >= 3, text);
      for (const [le, n] of buckets) {
        const bound = le === '+Inf' ? Infinity : Number(le);
        assert.equal(n, observations.filter((v) => v <= bound).length, `le=${le}\n${text}`);
      }
      assert.equal(buckets.at(-1)![0], '+Inf');
      assert.match(text, new RegExp(`^process_linux_lifetime_seconds_count\\{.*\\} ${observations.length}$`, 'm'));
      assert.ok(ctx.logs.some((l) => l.level === 'info' && l.msg.includes('classic histograms')));
    } finally {
      await exporter.shutdown();
    }
  });
});

/** Serves `rm` once and returns the text. */
async function served(rm: Awaited<ReturnType<typeof metricsOf>>): Promise<string> {
  const exporter = new PrometheusExporter(recordingContext('prometheus'), { ...defaultPrometheusConfig(), endpoint: '127.0.0.1:0' });
  await exporter.start();
  try {
    await exporter.export(rm);
    return await (await fetch(`http://127.0.0.1:${exporter.address!.port}/metrics`)).text();
  } finally {
    await exporter.shutdown();
  }
}

/** The metric family names of a Prometheus text (from the TYPE lines). */
function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe('prometheus exporter: names (OpenTelemetry-to-Prometheus compatibility)', () => {
  test('unit suffixes and _total as the specification writes them', async () => {
    // Expected names written from the specification's rules and examples (units to words, "per"
    // for "/", annotations dropped, "ratio" for gauges in 1, no suffix twice), not from the code.
    const sdk = sdkMetrics({ 'service.name': 'a' });
    const m = sdk.meter;
    m.createCounter('process.cpu.time', { unit: 's' }).add(1);
    m.createCounter('process.disk.io', { unit: 'By' }).add(1);
    m.createCounter('process.exits', { unit: '{process}' }).add(1);
    m.createCounter('http.server.requests', { unit: '{request}/s' }).add(1);
    m.createCounter('already.seconds', { unit: 's' }).add(1);
    m.createGauge('system.memory.usage', { unit: 'By' }).record(1);
    m.createGauge('system.cpu.utilization', { unit: '1' }).record(0.5);
    m.createGauge('network.throughput', { unit: 'By/s' }).record(1);
    m.createGauge('process.linux.memory.rss_time', { unit: 'MiBy.s' }).record(1);
    m.createHistogram('http.server.request.duration', { unit: 's' }).record(0.1);
    m.createUpDownCounter('process.count', { unit: '{process}' }).add(1);
    const rm = await sdk.collect();
    await sdk.shutdown();
    const names = families(await served(rm));
    assert.deepEqual(Object.fromEntries([...names].filter(([n]) => n !== 'target_info')), {
      process_cpu_time_seconds_total: 'counter',
      process_disk_io_bytes_total: 'counter',
      process_exits_total: 'counter',
      http_server_requests_per_second_total: 'counter',
      already_seconds_total: 'counter',
      system_memory_usage_bytes: 'gauge',
      system_cpu_utilization_ratio: 'gauge',
      network_throughput_bytes_per_second: 'gauge',
      process_linux_memory_rss_time: 'gauge',
      http_server_request_duration_seconds: 'histogram',
      process_count: 'gauge',
    });
  });

  test('every Prometheus example in docs/metrics.md is the name the exporter serves for that metric', async () => {
    const doc = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
    // Rows: | `metric` | instrument | `unit` | value | attributes | source | `example` |
    const rows: Array<{ name: string; instrument: string; unit: string; example: string }> = [];
    for (const line of doc.split('\n')) {
      const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
      if (cells.length < 9) continue;
      const name = /^`([a-z][a-z0-9_.]*)`$/.exec(cells[1]!)?.[1];
      const unit = /^`([^`]*)`$/.exec(cells[3]!)?.[1];
      const example = /^`([a-z_:][a-z0-9_:]*)[{ ]/.exec(cells[7]!)?.[1];
      if (name && unit !== undefined && example) rows.push({ name, instrument: cells[2]!, unit, example });
    }
    assert.ok(rows.length >= 20, `found ${rows.length} rows with a Prometheus example`);
    const sdk = sdkMetrics({ 'service.name': 'a' });
    for (const r of rows) {
      if (r.instrument === 'counter') sdk.meter.createCounter(r.name, { unit: r.unit }).add(1);
      else if (r.instrument === 'gauge') sdk.meter.createGauge(r.name, { unit: r.unit }).record(1);
      else if (r.instrument === 'histogram') sdk.meter.createHistogram(r.name, { unit: r.unit }).record(1);
      else assert.fail(`${r.name}: instrument ${r.instrument}`);
    }
    const rm = await sdk.collect();
    await sdk.shutdown();
    const names = families(await served(rm));
    for (const r of rows) {
      const family = r.instrument === 'histogram' ? r.example.replace(/_(bucket|sum|count)$/, '') : r.example;
      assert.ok(names.has(family), `${r.name} (${r.unit}): docs/metrics.md shows ${r.example}; served: ${[...names.keys()].join(', ')}`);
    }
  });
});
