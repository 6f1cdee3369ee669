/**
 * The otlp exporter against a real backend: VictoriaMetrics on loopback receives OTLP protobuf
 * (plain and gzip, and the bytes of a gRPC Export call relayed to it), and what it stores is read
 * back through its export API. VictoriaMetrics keeps OpenTelemetry names as they are (dots
 * included) and turns resource and data-point attributes into labels.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { OtlpExporter } from '../../plugins/otlp/exporter.js';
import { resolveOtlpSettings, type OtlpExporterConfig } from '../../plugins/otlp/config.js';
import { recordingContext, sdkMetrics } from '../../plugins/otlp/testing.js';
import { freePort, startVictoriaMetrics, type VictoriaMetrics } from '../support/victoriametrics.js';

async function newExporter(config: OtlpExporterConfig) {
  const ctx = recordingContext();
  const exporter = new OtlpExporter(ctx, config, {});
  await exporter.start();
  return { exporter, ctx };
}

/** Latest value of each series of `name` whose labels include `match`. */
async function latest(vm: VictoriaMetrics, name: string, match: Record<string, string>) {
  const series = await vm.exportSeries(`{__name__="${name}"}`);
  return series
    .filter((s) => Object.entries(match).every(([k, v]) => s.metric[k] === v))
    .map((s) => ({ labels: s.metric, value: s.values[s.values.length - 1]!, samples: s.values.length }));
}

describe('otlp exporter -> VictoriaMetrics', { timeout: 120_000 }, () => {
  let vm: VictoriaMetrics;
  before(async () => {
    vm = await startVictoriaMetrics();
  });
  after(async () => {
    await vm?.stop();
  });

  test('http/protobuf: cumulative sums and gauges land with their names, values and attributes', async () => {
    const run = `proto-${process.pid}`;
    const { exporter, ctx } = await newExporter({ endpoint: vm.otlpEndpoint });
    const sdk = sdkMetrics({ 'service.name': 'taskstats-agent', 'host.name': 'e2e-host', 'test.run': run });
    const cpu = sdk.meter.createCounter('process.cpu.time', { unit: 's' });
    const exits = sdk.meter.createCounter('process.exits', { unit: '{process}' });
    const peak = sdk.meter.createGauge('process.linux.memory.peak', { unit: 'By' });
    const point = { 'process.executable.name': 'make', 'process.linux.cgroup': '/e2e/build' };
    cpu.add(1.5, { ...point, 'cpu.mode': 'user' });
    cpu.add(0.25, { ...point, 'cpu.mode': 'system' });
    exits.add(40, { ...point, 'process.exit.code': 0 });
    exits.add(2, { ...point, 'process.exit.code': 2 });
    peak.record(123_456, point);
    await exporter.export(await sdk.collect());
    // A second collection: the sums grow (cumulative), the gauge is replaced.
    cpu.add(0.5, { ...point, 'cpu.mode': 'user' });
    exits.add(10, { ...point, 'process.exit.code': 0 });
    peak.record(200_000, point);
    await new Promise((r) => setTimeout(r, 20)); // distinct timestamps
    await exporter.export(await sdk.collect());
    await exporter.forceFlush();
    await exporter.shutdown();
    await sdk.shutdown();
    assert.equal(exporter.stats.batchesSent, 2);
    assert.deepEqual(ctx.dropped, {});

    const user = await vm.waitFor(async () => {
      const r = await latest(vm, 'process.cpu.time', { 'test.run': run, 'cpu.mode': 'user' });
      return r.length === 1 && r[0]!.samples === 2 ? r[0] : undefined;
    }, 'process.cpu.time{cpu.mode=user} with 2 samples');
    assert.equal(user.value, 2.0);
    assert.equal(user.labels['process.executable.name'], 'make');
    assert.equal(user.labels['process.linux.cgroup'], '/e2e/build');
    assert.equal(user.labels['service.name'], 'taskstats-agent');
    assert.equal(user.labels['host.name'], 'e2e-host');
    const system = await latest(vm, 'process.cpu.time', { 'test.run': run, 'cpu.mode': 'system' });
    assert.equal(system[0]?.value, 0.25);
    const ok = await latest(vm, 'process.exits', { 'test.run': run, 'process.exit.code': '0' });
    const failed = await latest(vm, 'process.exits', { 'test.run': run, 'process.exit.code': '2' });
    assert.equal(ok[0]?.value, 50);
    assert.equal(failed[0]?.value, 2);
    const mem = await latest(vm, 'process.linux.memory.peak', { 'test.run': run });
    assert.equal(mem[0]?.value, 200_000);
    // PromQL sees the same numbers (the CPU sum over modes, as a dashboard would ask for it).
    const q = await vm.query(`sum({__name__="process.cpu.time", "test.run"="${run}"})`);
    assert.equal(q[0]?.value, 2.25);
  });

  test('gzip compression is accepted and decoded by the backend', async () => {
    const run = `gzip-${process.pid}`;
    const { exporter } = await newExporter({ endpoint: vm.otlpEndpoint, compression: 'gzip' });
    const sdk = sdkMetrics({ 'service.name': 'taskstats-agent', 'test.run': run });
    sdk.meter.createCounter('process.cpu.time', { unit: 's' }).add(7.125, { 'cpu.mode': 'user' });
    await exporter.export(await sdk.collect());
    await exporter.forceFlush();
    await exporter.shutdown();
    await sdk.shutdown();
    const r = await vm.waitFor(async () => (await latest(vm, 'process.cpu.time', { 'test.run': run }))[0], 'gzip series');
    assert.equal(r.value, 7.125);
  });

  test('grpc: the Export call body is OTLP protobuf the backend decodes (relayed by a local gRPC server)', async () => {
    const run = `grpc-${process.pid}`;
    const relayed: number[] = [];
    const server = new grpc.Server();
    const raw = (b: Buffer) => b;
    server.addService(
      {
        Export: {
          path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
          requestStream: false,
          responseStream: false,
          requestSerialize: raw,
          requestDeserialize: raw,
          responseSerialize: raw,
          responseDeserialize: raw,
        },
      },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          fetch(vm.otlpMetricsUrl, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: new Uint8Array(call.request) })
            .then(async (res) => {
              await res.arrayBuffer();
              relayed.push(res.status);
              callback(res.ok ? null : { code: grpc.status.INTERNAL, details: `VM answered ${res.status}` }, Buffer.alloc(0));
            })
            .catch((e) => callback({ code: grpc.status.UNAVAILABLE, details: String(e) }));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    try {
      const { exporter } = await newExporter({ endpoint: `http://127.0.0.1:${port}`, protocol: 'grpc' });
      const sdk = sdkMetrics({ 'service.name': 'taskstats-agent', 'test.run': run });
      sdk.meter.createCounter('process.exits', { unit: '{process}' }).add(300, { 'process.exit.code': 0 });
      await exporter.export(await sdk.collect());
      await exporter.forceFlush();
      await exporter.shutdown();
      await sdk.shutdown();
      assert.equal(relayed.length, 1);
      assert.ok(relayed[0]! >= 200 && relayed[0]! < 300, `VictoriaMetrics answered ${relayed[0]}`);
      const r = await vm.waitFor(async () => (await latest(vm, 'process.exits', { 'test.run': run }))[0], 'grpc series');
      assert.equal(r.value, 300);
    } finally {
      server.forceShutdown();
    }
  });

  test('a backend down at start is retried quietly and receives the data once it is up', async () => {
    const run = `late-${process.pid}`;
    const port = await freePort();
    const { exporter, ctx } = await newExporter({
      endpoint: `http://127.0.0.1:${port}/opentelemetry`,
      timeout: 500,
      retry_on_failure: { initial_interval: 200, max_interval: 500, max_elapsed_time: 60_000 },
    });
    const sdk = sdkMetrics({ 'service.name': 'taskstats-agent', 'test.run': run });
    sdk.meter.createCounter('process.cpu.time', { unit: 's' }).add(3, { 'cpu.mode': 'system' });
    await exporter.export(await sdk.collect());
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(exporter.stats.batchesSent, 0);
    assert.ok(exporter.stats.requests.retryable >= 1);
    const late = await startVictoriaMetrics({ port });
    try {
      const until = Date.now() + 20_000;
      while (exporter.stats.batchesSent === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      await exporter.shutdown();
      await sdk.shutdown();
      assert.equal(exporter.stats.batchesSent, 1);
      assert.deepEqual(ctx.dropped, {});
      assert.ok(ctx.logs.every((l) => l.level !== 'error'));
      assert.ok(ctx.logs.some((l) => l.msg === 'backend reachable again'));
      const r = await late.waitFor(async () => (await latest(late, 'process.cpu.time', { 'test.run': run }))[0], 'late series');
      assert.equal(r.value, 3);
    } finally {
      await late.stop();
    }
  });
});
