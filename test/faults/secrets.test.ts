/**
 * Secrets never reach the logs or error messages: OTLP header values (from the config, from
 * ${env:...} and from OTEL_EXPORTER_OTLP_HEADERS), credentials in the endpoint URL; and the
 * self-telemetry endpoint binds to loopback by default.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { runAgentCommand, startAgent, writeConfig, type AgentProcess } from '../support/agent.js';
import { sleep, waitFor } from '../support/workload.js';
import { faultConfig } from './configs.js';
import { needs } from '../support/caps.js';

const SECRETS = {
  configHeader: 'SECRET-cfg-7c1d',
  envHeader: 'SECRET-env-91ab',
  urlPassword: 'SECRET-url-55ef',
  expanded: 'SECRET-exp-2f80',
};

function assertNoSecret(text: string, where: string): void {
  for (const [what, secret] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(secret), `${where} contains the secret ${what} (${secret}):\n${text.slice(0, 4000)}`);
  }
}

describe('secrets and exposure', { timeout: 120_000 }, () => {
  let agent: AgentProcess | undefined;
  let server: Server | undefined;
  after(async () => {
    await agent?.kill();
    server?.closeAllConnections();
    server?.close();
  });

  test(
    'header values and URL credentials are sent, but never logged (debug level, failing backend)',
    { skip: needs('root', 'taskstats', 'libnl') },
    async () => {
      const received: Array<Record<string, string | string[] | undefined>> = [];
      server = createServer((req, res) => {
        received.push(req.headers);
        req.resume();
        // Refuse everything: failures are what gets logged in detail.
        req.on('end', () => res.writeHead(received.length % 2 ? 401 : 503, { 'content-type': 'text/plain' }).end(`denied ${req.headers.authorization}`));
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      agent = await startAgent({
        config: faultConfig({
          metricsUrl: `http://agent:${SECRETS.urlPassword}@127.0.0.1:${port}/v1/metrics`,
          collectionInterval: '300ms',
          logLevel: 'debug',
          otlp: {
            headers: { authorization: `Bearer ${SECRETS.configHeader}`, 'x-expanded': '${env:TS_TEST_TOKEN}' },
            retry_on_failure: { initial_interval: '100ms', max_interval: '300ms' },
          },
        }),
        env: { OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${SECRETS.envHeader}`, TS_TEST_TOKEN: SECRETS.expanded },
      });
      await waitFor('several export attempts', () => received.length >= 4, 20_000);
      await sleep(500);
      const m = await agent.metrics();
      const stop = await agent.stop();
      assert.equal(stop.code, 0);
      // They were really in use...
      const h = received[0]!;
      assert.equal(h.authorization, `Bearer ${SECRETS.configHeader}`);
      assert.equal(h['x-api-key'], SECRETS.envHeader);
      assert.equal(h['x-expanded'], SECRETS.expanded);
      // ...and nowhere in what the agent printed or serves.
      assertNoSecret(agent.logs, 'the agent log');
      assertNoSecret(m.text, '/metrics');
      assert.match(agent.logs, /authorization/, 'header names may be logged (and are, at start)');
      agent = undefined;
    },
  );

  test('configuration errors do not echo secret values', async () => {
    const config = faultConfig({ metricsUrl: 'http://127.0.0.1:9/v1/metrics' });
    // A wrong type for a header value, a ${env:...} secret next to an error, a broken env header list.
    config.exporters.otlp.headers = { authorization: [`Bearer ${SECRETS.configHeader}`], 'x-expanded': '${env:TS_TEST_TOKEN}' };
    config.receivers.taskstats.collection_interval = 'soon';
    const cfg = writeConfig(config);
    try {
      for (const command of ['validate', 'run']) {
        const r = await runAgentCommand([command, '--config', cfg.file], {
          env: { TS_TEST_TOKEN: SECRETS.expanded, OTEL_EXPORTER_OTLP_HEADERS: `broken-entry-${SECRETS.envHeader}` },
        });
        assert.notEqual(r.code, 0, `${command} should refuse the config`);
        assert.match(r.stderr, /headers/, `${command} names the bad key`);
        assertNoSecret(r.stdout + r.stderr, `${command}'s output`);
      }
    } finally {
      cfg.cleanup();
    }
  });

  test('the self-telemetry endpoint binds to loopback by default (127.0.0.1:8888)', async (t) => {
    const config = faultConfig({ metricsUrl: 'http://127.0.0.1:9/v1/metrics' });
    delete config.service.telemetry.metrics;
    const listening = () => execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' });
    if (/:8888\s/.test(listening())) {
      t.skip('port 8888 is in use on this machine');
      return;
    }
    agent = await startAgent({ config, telemetryPort: false, waitReady: false });
    const line = await waitFor(
      'the agent to listen',
      () =>
        listening()
          .split('\n')
          .find((l) => l.includes(`pid=${agent!.pid},`)),
      20_000,
    );
    assert.match(line, /\s127\.0\.0\.1:8888\s/, `the agent listens on ${line}`);
    const all = listening()
      .split('\n')
      .filter((l) => l.includes(`pid=${agent!.pid},`));
    assert.equal(all.length, 1, `the agent should listen on one address only:\n${all.join('\n')}`);
    const stop = await agent.stop();
    assert.equal(stop.code, 0);
    agent = undefined;
  });
});
