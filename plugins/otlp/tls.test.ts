import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveOtlpSettings, validateOtlpConfig, type OtlpExporterConfig } from './config.js';
import { OtlpExporter } from './exporter.js';
import { recordingContext, sdkMetrics } from './testing.js';

const openssl = ['/usr/bin/openssl', '/bin/openssl'].find((p) => existsSync(p));

async function metrics() {
  const sdk = sdkMetrics({ 'service.name': 'tls-test' });
  sdk.meter.createCounter('process.exits').add(1);
  const rm = await sdk.collect();
  await sdk.shutdown();
  return rm;
}

describe('otlp exporter over HTTPS', { skip: openssl ? undefined : 'needs openssl to make a test certificate' }, () => {
  let dir = '';
  let server: https.Server;
  let url = '';
  let received = 0;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'otlp-tls-'));
    execFileSync(
      openssl!,
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server?.closeAllConnections();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function send(config: OtlpExporterConfig, env: Record<string, string> = {}) {
    const ctx = recordingContext();
    const exporter = new OtlpExporter(ctx, { endpoint: url, retry_on_failure: { enabled: false }, ...config }, env);
    await exporter.start();
    const before = received;
    await exporter.export(await metrics());
    await exporter.forceFlush();
    await exporter.shutdown();
    return { sent: exporter.stats.batchesSent, arrived: received - before, ctx };
  }

  test('a private CA from tls.ca_file, or from OTEL_EXPORTER_OTLP_CERTIFICATE', async () => {
    assert.deepEqual((await send({ tls: { ca_file: join(dir, 'cert.pem') } })).arrived, 1);
    const viaEnv = await send({}, { OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'cert.pem') });
    assert.equal(viaEnv.sent, 1);
  });

  test('an unknown CA is refused (counted as dropped), unless insecure_skip_verify', async () => {
    const refused = await send({ retry_on_failure: { enabled: true, initial_interval: 10, max_elapsed_time: 60_000 } });
    assert.equal(refused.sent, 0);
    assert.equal(refused.ctx.counterTotal('batch_retries'), 0, 'a certificate error is not retried');
    assert.ok(refused.ctx.logs.some((l) => l.fields?.why === 'not retryable'));
    assert.equal(refused.arrived, 0);
    assert.equal(refused.ctx.dropped.send_failed, 1);
    assert.equal((await send({ tls: { insecure_skip_verify: true } })).arrived, 1);
  });

  test('an unreadable file fails start() naming the key; cert_file needs key_file', async () => {
    const exporter = new OtlpExporter(recordingContext(), { endpoint: url, tls: { ca_file: join(dir, 'missing.pem') } }, {});
    await assert.rejects(exporter.start(), /tls\.ca_file: cannot read ".*missing\.pem": ENOENT/);
    assert.deepEqual(
      validateOtlpConfig({ tls: { cert_file: 'c.pem' } }).map((p) => p.path),
      ['tls.key_file'],
    );
  });
});
