/**
 * The prometheus exporter scraped by a real Prometheus-compatible scraper: VictoriaMetrics with
 * -promscrape.config pulls /metrics every second, so its text must parse and carry the values.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrometheusExporter } from '../../plugins/prometheus/exporter.js';
import { recordingContext, sdkMetrics } from '../../plugins/otlp/testing.js';
import { startVictoriaMetrics } from '../support/victoriametrics.js';

describe('prometheus exporter <- VictoriaMetrics scrape', { timeout: 90_000 }, () => {
  test('the scraped series carry the exported values, and follow the latest collection', async () => {
    const exporter = new PrometheusExporter(recordingContext('prometheus'), {
      endpoint: '127.0.0.1:0',
      namespace: '',
      resource_to_telemetry_conversion: { enabled: false },
    });
    await exporter.start();
    const dir = mkdtempSync(join(tmpdir(), 'promscrape-'));
    const scrapeConfig = join(dir, 'scrape.yaml');
    writeFileSync(
      scrapeConfig,
      [
        'scrape_configs:',
        '  - job_name: taskstats-agent',
        '    scrape_interval: 1s',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${exporter.address!.port}']`,
        '',
      ].join('\n'),
    );
    const vm = await startVictoriaMetrics({ extraArgs: [`-promscrape.config=${scrapeConfig}`] });
    try {
      const sdk = sdkMetrics({ 'service.name': 'taskstats-agent' });
      const cpu = sdk.meter.createCounter('process.cpu.time', { unit: 's' });
      const exits = sdk.meter.createCounter('process.exits', { unit: '{process}' });
      cpu.add(5.5, { 'cpu.mode': 'system', 'process.executable.name': 'postgres', 'process.linux.cgroup': '/db' });
      exits.add(300, { 'process.exit.code': 0, 'process.executable.name': 'postgres', 'process.linux.cgroup': '/db' });
      await exporter.export(await sdk.collect());
      const first = await vm.waitFor(
        async () => {
          const r = await vm.query('process_cpu_time_seconds_total{process_executable_name="postgres",cpu_mode="system"}');
          return r.length === 1 ? r[0] : undefined;
        },
        'scraped process_cpu_time_seconds_total',
        20_000,
      );
      assert.equal(first.value, 5.5);
      assert.equal(first.metric.process_linux_cgroup, '/db');
      assert.equal(first.metric.job, 'taskstats-agent');
      const ex = await vm.query('process_exits_total{process_exit_code="0"}');
      assert.equal(ex[0]?.value, 300);

      cpu.add(1, { 'cpu.mode': 'system', 'process.executable.name': 'postgres', 'process.linux.cgroup': '/db' });
      await exporter.export(await sdk.collect());
      const second = await vm.waitFor(
        async () => {
          const r = await vm.query('process_cpu_time_seconds_total{process_executable_name="postgres",cpu_mode="system"}');
          return r[0]?.value === 6.5 ? r[0] : undefined;
        },
        'the next collection scraped',
        20_000,
      );
      assert.equal(second.value, 6.5);
      await sdk.shutdown();
    } finally {
      await vm.stop();
      await exporter.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
