/**
 * Logs pipelines in the agent as a real process: a receiver of both signals in a metrics and
 * three logs pipelines is started once; records are batched by size, by time, and the partial
 * batch goes out at shutdown; a logs processor filters (counted) and changes only its own
 * pipeline's copies.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, startAgent, tempDir, testPlugins } from './helpers.js';
import type { RunningAgent } from './helpers.js';

const tmp = tempDir('taskstats-logs-');
const agents: RunningAgent[] = [];
after(() => {
  for (const a of agents) a.kill();
  tmp.remove();
});

interface SinkRecord {
  timeMs: number;
  severityNumber: number;
  body: string;
  attributes: Record<string, unknown>;
}
interface SinkLine {
  event: string;
  id: string;
  service?: string;
  records?: SinkRecord[];
}

function sink(name: string): SinkLine[] {
  const p = join(tmp.dir, name);
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SinkLine);
}
const batches = (name: string) => sink(name).filter((l) => l.event === 'logs');
const records = (name: string) => batches(name).flatMap((l) => l.records ?? []);

const TOTAL = 8;

describe('logs pipelines', { timeout: 60_000 }, () => {
  test('one receiver for four pipelines; batches by size, by time, the rest at shutdown; processors on own copies', async () => {
    const file = tmp.write(
      'logs.yaml',
      `plugins: [${testPlugins}]
receivers:
  event_source: {interval: 30ms, batch_size: 3, total: ${TOTAL}}
processors:
  severity_filter: {min_severity: 13, key: kept, value: "yes"}
exporters:
  file_sink/size: {path: ${tmp.dir}/size.jsonl}
  file_sink/time: {path: ${tmp.dir}/time.jsonl}
  file_sink/filtered: {path: ${tmp.dir}/filtered.jsonl}
  file_sink/metrics: {path: ${tmp.dir}/metrics.jsonl}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines:
    metrics: {receivers: [event_source], exporters: [file_sink/metrics]}
    logs/size:
      receivers: [event_source]
      exporters: [file_sink/size]
      batch: {send_batch_size: 4, timeout: 1h}
    logs/time:
      receivers: [event_source]
      exporters: [file_sink/time]
      batch: {send_batch_size: 1000, timeout: 50ms}
    logs/filtered:
      receivers: [event_source]
      processors: [severity_filter]
      exporters: [file_sink/filtered]
      batch: {send_batch_size: 1000, timeout: 50ms}
`,
    );
    const agent = startAgent(['run', '--config', file]);
    agents.push(agent);
    await agent.waitReady();
    const key = 'taskstats_agent_receiver_accepted_log_records_total{component_id="event_source"}';
    const deadline = Date.now() + 15_000;
    let m = await agent.metrics();
    while ((m.get(key) ?? 0) < TOTAL && Date.now() < deadline) {
      await sleep(50);
      m = await agent.metrics();
    }
    assert.equal(m.get(key), TOTAL, 'every event handed to the logs pipelines once');
    assert.equal(m.get('taskstats_agent_receiver_starts_total{component_id="event_source"}'), 1, 'started once for four pipelines');
    // By time: everything arrives without shutdown, in batches no pipeline filled.
    const timeDeadline = Date.now() + 5000;
    while (records('time.jsonl').length < TOTAL && Date.now() < timeDeadline) await sleep(25);
    assert.equal(records('time.jsonl').length, TOTAL, 'the timeout sends batches that never fill');
    // By size: 3 + 3 reach 4 -> a batch of 6; the last 2 wait (timeout 1h) for shutdown.
    assert.deepEqual(
      batches('size.jsonl').map((b) => b.records!.length),
      [6],
    );
    const filteredAt = m.get(
      'taskstats_agent_component_dropped_items_total{component_id="severity_filter",pipeline_id="logs/filtered",component_kind="processor",reason="filtered",signal="logs"}',
    );

    const stopped = await agent.stop('SIGTERM');
    assert.equal(stopped.code, 0, agent.stderr);
    assert.deepEqual(
      batches('size.jsonl').map((b) => b.records!.length),
      [6, 2],
      'the partial batch is sent at shutdown',
    );
    for (const name of ['size.jsonl', 'time.jsonl']) {
      assert.deepEqual(
        records(name).map((r) => r.attributes['test.sequence']),
        [...Array(TOTAL).keys()],
        `${name}: every record once, in order`,
      );
      assert.ok(
        records(name).every((r) => !('kept' in r.attributes)),
        `${name}: another pipeline's processor did not touch these copies`,
      );
    }
    assert.ok(
      batches('size.jsonl').every((b) => b.service === 'taskstats-agent'),
      'exporters get the agent resource',
    );
    // WARN (13) and above: sequences with n % 3 != 0; INFO ones (0, 3, 6) filtered and counted.
    const kept = records('filtered.jsonl');
    assert.deepEqual(
      kept.map((r) => r.attributes['test.sequence']),
      [1, 2, 4, 5, 7],
    );
    assert.ok(kept.every((r) => r.attributes.kept === 'yes'));
    assert.equal(filteredAt, 3, 'the filtered records counted with reason filtered');
    // The metrics pipeline got the same events as samples, from the same (single) receiver.
    const lastExport = sink('metrics.jsonl')
      .filter((l) => l.event === 'export')
      .at(-1) as unknown as { scopes: Record<string, Record<string, number>> };
    assert.equal(lastExport.scopes['taskstats-agent']!['test.events{"source":"event_source"}'], TOTAL);
  });
});
