/**
 * The example exporter of docs/plugins.md (section 12), loaded by path as a user loads a plugin,
 * in a real agent, against a local HTTP server: the exporter helper waits out a 503's
 * Retry-After and re-sends (counted), drops a batch the server refuses for good (400, counted
 * send_failed), and every other event arrives exactly once; at shutdown the queue is flushed.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { repoRoot, sleep, startAgent, tempDir, testPlugins, type RunningAgent } from '../../test/host/helpers.js';

const webhookJs = join(repoRoot, 'dist', 'examples', 'webhook-exporter', 'index.js');
const tmp = tempDir('taskstats-webhook-');
const agents: RunningAgent[] = [];
let server: Server | undefined;
after(() => {
  for (const a of agents) a.kill();
  server?.closeAllConnections();
  server?.close();
  tmp.remove();
});

describe('example webhook exporter over the exporter helper', { timeout: 60_000 }, () => {
  test('Retry-After waited out and re-sent, a 400 dropped and counted, the rest exactly once', async () => {
    const arrivals: number[] = [];
    const accepted: number[][] = [];
    const refused: number[][] = [];
    // Request 0: 503 with Retry-After 1; request 1 (the re-send): 200; request 2: 400; then 200.
    server = createServer((req, res) => {
      const i = arrivals.length;
      arrivals.push(performance.now());
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const seqs = body.split('\n').map((l) => (JSON.parse(l) as { 'test.sequence': number })['test.sequence']);
        const status = i === 0 ? 503 : i === 2 ? 400 : 200;
        if (status === 200) accepted.push(seqs);
        if (status === 400) refused.push(seqs);
        res.writeHead(status, status === 503 ? { 'retry-after': '1' } : {});
        res.end();
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const TOTAL = 20;
    const agent = startAgent([
      'run',
      '--config',
      tmp.write(
        'webhook.yaml',
        `plugins: [${testPlugins}, ${webhookJs}]
receivers:
  event_source: {interval: 100ms, batch_size: 5, total: ${TOTAL}}
exporters:
  webhook:
    url: http://127.0.0.1:${port}/events
    retry_on_failure: {initial_interval: 50ms, max_interval: 100ms}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines:
    logs:
      receivers: [event_source]
      exporters: [webhook]
      batch: {send_batch_size: 5, timeout: 1h}
`,
      ),
    ]);
    agents.push(agent);
    await agent.waitReady();
    const deadline = Date.now() + 20_000;
    while (accepted.flat().length + refused.flat().length < TOTAL && Date.now() < deadline) await sleep(50);
    const m = await agent.metrics();
    const stop = await agent.stop('SIGTERM');
    assert.equal(stop.code, 0, agent.stderr);

    assert.ok(
      arrivals[1]! - arrivals[0]! >= 950,
      `re-sent ${Math.round(arrivals[1]! - arrivals[0]!)} ms after a 503 with Retry-After: 1 (backoff alone: 50 ms)`,
    );
    assert.deepEqual(accepted[0], [0, 1, 2, 3, 4], 'the batch that met the 503 was re-sent whole');
    assert.deepEqual(refused, [[5, 6, 7, 8, 9]], 'a 400 is not retried');
    assert.deepEqual(accepted.flat(), [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 'every other event once, in order');
    const at = (k: string) => m.get(k) ?? 0;
    assert.equal(at('taskstats_agent_exporter_batch_retries_total{signal="logs",component_id="webhook"}'), 1);
    assert.equal(at('taskstats_agent_exporter_delivered_items_total{signal="logs",component_id="webhook"}'), 15);
    assert.equal(at('taskstats_agent_component_dropped_items_total{signal="logs",component_id="webhook",component_kind="exporter",reason="send_failed"}'), 5);
    assert.match(agent.stderr, /"reason":"HTTP 400".*"msg":"export failed; batch dropped"/);
  });
});
