/**
 * Logs meet the same backend troubles as metrics (backend-errors, backend-outage), played by a
 * local OTLP/HTTP server (JSON encoding, so it can list what arrived): a 429 with Retry-After is
 * waited out and every event then arrives exactly once; a backend down at start and for a while
 * loses only what the bounded queue could not hold, and every lost event is counted: what arrived
 * plus what the agent counted as dropped is every event the receiver produced.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../support/victoriametrics.js';
import { sleep, startAgent, tempDir, testPlugins, type RunningAgent } from '../host/helpers.js';
import { fakeOtlpBackend, type Answer, type FakeOtlpBackend } from '../support/fake-otlp-backend.js';

interface JsonLogsRequest {
  resourceLogs?: Array<{
    scopeLogs?: Array<{ logRecords?: Array<{ attributes?: Array<{ key: string; value: { intValue?: string | number } }> }> }>;
  }>;
}

/** test.sequence of every record in the requests the backend accepted, in arrival order. */
function sequences(backend: FakeOtlpBackend): number[] {
  const out: number[] = [];
  for (const body of backend.accepted)
    for (const rl of (JSON.parse(body.toString('utf8')) as JsonLogsRequest).resourceLogs ?? [])
      for (const sl of rl.scopeLogs ?? [])
        for (const r of sl.logRecords ?? []) out.push(Number(r.attributes?.find((kv) => kv.key === 'test.sequence')?.value.intValue));
  return out;
}

const logsBackend = (answer: Answer, port = 0) => fakeOtlpBackend(answer, 'json', port);

const tmp = tempDir('taskstats-backend-logs-');
const agents: RunningAgent[] = [];
const backends: FakeOtlpBackend[] = [];
after(async () => {
  for (const a of agents) a.kill();
  for (const b of backends) await b.close();
  tmp.remove();
});

function config(endpoint: string, source: string, otlp: string): string {
  return `plugins: [${testPlugins}]
receivers:
  event_source: ${source}
exporters:
  otlp:
    endpoint: ${endpoint}
    protocol: http/json
${otlp}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines:
    logs:
      receivers: [event_source]
      exporters: [otlp]
      batch: {send_batch_size: 10, timeout: 100ms}
`;
}

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);
const sum = (m: Map<string, number>, name: string, ...labels: string[]) =>
  [...m].filter(([k]) => k.startsWith(`${name}{`) && labels.every((l) => k.includes(l))).reduce((s, [, v]) => s + v, 0);

describe('logs: backend answering 429, backend down', { timeout: 120_000 }, () => {
  test('429 with Retry-After: waited out, then every event arrives exactly once', async () => {
    const RETRY_AFTER_S = 2;
    const TOTAL = 30;
    const backend = await logsBackend((i) => (i < 2 ? { status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } } : { status: 200 }));
    backends.push(backend);
    const agent = startAgent([
      'run',
      '--config',
      tmp.write(
        '429.yaml',
        config(
          backend.url,
          `{interval: 20ms, batch_size: 3, total: ${TOTAL}}`,
          '    timeout: 30s\n    retry_on_failure: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 2m}',
        ),
      ),
    ]);
    agents.push(agent);
    await agent.waitReady();
    const deadline = Date.now() + 30_000;
    while (sequences(backend).length < TOTAL && Date.now() < deadline) await sleep(50);
    const g = gaps(backend.arrivals.slice(0, 3));
    for (const [i, gap] of g.entries()) {
      assert.ok(gap >= RETRY_AFTER_S * 1000 - 50, `request ${i + 2} came ${Math.round(gap)} ms after a 429 with Retry-After: ${RETRY_AFTER_S}`);
    }
    assert.deepEqual(
      [...sequences(backend)].sort((a, b) => a - b),
      [...Array(TOTAL).keys()],
      'every event once: none lost, none sent twice',
    );
    const m = await agent.metrics();
    assert.ok(sum(m, 'taskstats_agent_exporter_requests_total', 'status="429"', 'signal="logs"') >= 2, 'the 429 answers are counted');
    assert.equal(sum(m, 'taskstats_agent_exporter_delivered_items_total', 'signal="logs"'), TOTAL);
    const stop = await agent.stop();
    assert.equal(stop.code, 0);
  });

  test('backend down at start and for a while: what arrives plus what is counted dropped is every event', async () => {
    const port = await freePort();
    const TOTAL = 600;
    // 600 events over ~6 s in batches of 10; a queue of 5 batches holds 50 of them while the
    // backend is down, so most are dropped, and must be counted.
    const agent = startAgent([
      'run',
      '--config',
      tmp.write(
        'outage.yaml',
        config(
          `http://127.0.0.1:${port}`,
          `{interval: 50ms, batch_size: 5, total: ${TOTAL}}`,
          '    timeout: 1s\n    sending_queue: {queue_size: 5}\n    retry_on_failure: {initial_interval: 200ms, max_interval: 500ms, max_elapsed_time: 10m}',
        ),
      ),
    ]);
    agents.push(agent);
    await agent.waitReady();
    await sleep(4000);
    let m = await agent.metrics();
    assert.ok(sum(m, 'taskstats_agent_exporter_requests_total', 'outcome="retryable"', 'signal="logs"') > 0, 'sends failed while the backend was down');
    assert.ok(sum(m, 'taskstats_agent_exporter_queue_size', 'signal="logs"') <= 5, 'the sending queue stays within its capacity');
    const backend = await logsBackend(() => ({ status: 200 }), port);
    backends.push(backend);
    // Until every event was produced and the queue is empty.
    const deadline = Date.now() + 30_000;
    for (;;) {
      m = await agent.metrics();
      const produced = sum(m, 'taskstats_agent_receiver_accepted_log_records_total');
      const queued = sum(m, 'taskstats_agent_exporter_queue_size', 'signal="logs"');
      const pending = sum(m, 'taskstats_agent_pipeline_batch_pending_records');
      if ((produced === TOTAL && queued === 0 && pending === 0) || Date.now() > deadline) break;
      await sleep(200);
    }
    await sleep(1500); // the batch in flight when the queue emptied
    m = await agent.metrics();
    const dropped = sum(m, 'taskstats_agent_component_dropped_items_total', 'component_id="otlp"', 'signal="logs"');
    const delivered = sum(m, 'taskstats_agent_exporter_delivered_items_total', 'signal="logs"');
    assert.equal(sum(m, 'taskstats_agent_receiver_accepted_log_records_total'), TOTAL);
    assert.ok(dropped > 0, 'an outage longer than the queue drops events, counted');
    assert.ok(sum(m, 'taskstats_agent_component_dropped_items_total', 'reason="queue_full"', 'signal="logs"') > 0, 'as queue_full');
    assert.equal(new Set(sequences(backend)).size, sequences(backend).length, 'nothing sent twice');
    assert.equal(sequences(backend).length, delivered, 'delivered_items counts what the backend accepted');
    assert.equal(sequences(backend).length + dropped, TOTAL, `arrived ${sequences(backend).length} + dropped ${dropped} = every event`);
    assert.match(agent.stderr, /queue full/, 'the drop is logged');
    const stop = await agent.stop();
    assert.equal(stop.code, 0);
  });
});
