/**
 * The agent as a real process: pipelines with fan-out, a shared receiver started once, a throwing
 * processor contained and counted, a failing exporter that does not hold back the others, the
 * telemetry endpoint, SIGTERM/SIGINT with a final export, start failures, the shutdown deadline.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fixtures, readSink, sleep, startAgent, tempDir, testPlugins } from './helpers.js';
import type { RunningAgent } from './helpers.js';

const tmp = tempDir('taskstats-run-');
const agents: RunningAgent[] = [];
after(() => {
  for (const a of agents) a.kill();
  tmp.remove();
});

function start(configName: string, yaml: string, args: string[] = []): RunningAgent {
  const file = tmp.write(configName, yaml);
  const a = startAgent(['run', '--config', file, ...args]);
  agents.push(a);
  return a;
}

function sink(name: string) {
  const p = join(tmp.dir, name);
  return existsSync(p) ? readSink(readFileSync(p, 'utf8')) : [];
}

describe('run', { timeout: 90_000 }, () => {
  test('fan-out, shared receiver, contained processor errors, SIGTERM with final export', async () => {
    const agent = start(
      'main.yaml',
      `plugins: [${testPlugins}]
receivers:
  counting_source:
    interval: 100ms
    batch_size: 3
processors:
  thrower:
    every: 3
  tagger:
    key: team
    value: a
exporters:
  file_sink/good:
    path: ${tmp.dir}/good.jsonl
  file_sink/bad:
    path: ${tmp.dir}/bad.jsonl
    fail: true
  file_sink/two:
    path: ${tmp.dir}/two.jsonl
    temporality: delta
service:
  telemetry:
    metrics: {address: "127.0.0.1:0"}
  pipelines:
    metrics:
      receivers: [counting_source]
      processors: [thrower, tagger]
      exporters: [file_sink/bad, file_sink/good]
    metrics/two:
      receivers: [counting_source]
      exporters: [file_sink/two]
`,
      ['--log-level', 'debug'],
    );
    await agent.waitReady(20_000);
    assert.equal((await agent.get('/healthz')).status, 200);
    // Let several collections happen (the thrower drops every third batch).
    const deadline = Date.now() + 20_000;
    let m = await agent.metrics();
    while (
      (m.get(
        'taskstats_agent_component_dropped_items_total{component_id="thrower",pipeline_id="metrics",component_kind="processor",reason="processor_error"}',
      ) ?? 0) < 6
    ) {
      assert.ok(Date.now() < deadline, 'the thrower did not drop two batches in time');
      await sleep(100);
      m = await agent.metrics();
    }
    // The shared receiver was started once although two pipelines use it.
    assert.equal(m.get('taskstats_agent_receiver_starts_total{component_id="counting_source"}'), 1);
    // The failing exporter failed, the good one got data anyway.
    assert.ok(m.get('taskstats_agent_exporter_failed_points_total{component_id="file_sink/bad"}')! > 0);
    assert.ok(m.get('taskstats_agent_exporter_failed_exports_total{component_id="file_sink/bad"}')! > 0);
    assert.ok(m.get('taskstats_agent_exporter_sent_points_total{component_id="file_sink/good"}')! > 0);
    assert.equal(m.get('taskstats_agent_exporter_sent_points_total{component_id="file_sink/bad"}'), 0);
    // Processor accounting: thrower lets 2 of 3 batches through, tagger sees exactly those.
    const thrIn = m.get('taskstats_agent_processor_incoming_samples_total{component_id="thrower",pipeline_id="metrics"}')!;
    const thrOut = m.get('taskstats_agent_processor_outgoing_samples_total{component_id="thrower",pipeline_id="metrics"}')!;
    const thrErr = m.get(
      'taskstats_agent_component_dropped_items_total{component_id="thrower",pipeline_id="metrics",component_kind="processor",reason="processor_error"}',
    )!;
    assert.equal(thrIn, thrOut + thrErr);
    assert.equal(m.get('taskstats_agent_processor_incoming_samples_total{component_id="tagger",pipeline_id="metrics"}'), thrOut);
    assert.ok(m.get('taskstats_agent_receiver_accepted_samples_total{component_id="counting_source"}')! >= thrIn);
    assert.equal((await agent.get('/readyz')).status, 200);
    assert.equal((await agent.get('/nope')).status, 404);

    const stopped = await agent.stop('SIGTERM');
    assert.equal(stopped.code, 0, agent.stderr);
    assert.ok(
      agent.logs().some((l) => l.msg === 'shutdown complete'),
      `every shutdown step finished before the deadline:\n${agent.stderr}`,
    );

    // Start order exporters -> processors -> receivers (debug log lines "starting component").
    const kinds = agent
      .logs()
      .filter((l) => l.msg === 'starting component')
      .map((l) => l.kind);
    assert.deepEqual(kinds, ['exporter', 'exporter', 'exporter', 'processor', 'processor', 'receiver']);

    // Pipeline two (no processors, delta): the exports add up to everything the receiver emitted,
    // including the batch it emitted in shutdown(), which only the final export carries.
    const two = sink('two.jsonl');
    const exports = two.filter((e) => e.event === 'export');
    const items = exports.reduce((s, e) => s + (e.scopes!['taskstats-agent']?.['test.items{"workload":"w"}'] ?? 0), 0);
    const last = exports[exports.length - 1]!;
    const emitted = last.scopes!['taskstats-agent.self']!['taskstats_agent.receiver.emitted_samples{"component.id":"counting_source"}']!;
    // Self-metrics to a delta exporter are deltas too: sum them.
    const emittedTotal = exports.reduce(
      (s, e) => s + (e.scopes!['taskstats-agent.self']?.['taskstats_agent.receiver.emitted_samples{"component.id":"counting_source"}'] ?? 0),
      0,
    );
    assert.ok(emitted > 0);
    assert.equal(items, emittedTotal, 'every emitted sample reached pipeline two exactly once');
    assert.deepEqual(
      two.slice(-2).map((e) => e.event),
      ['flush', 'shutdown'],
    );
    assert.equal(two[0]!.event, 'start');

    // Pipeline one (cumulative): the tagger's attribute is there; the final value equals what the
    // thrower let through (read from the same final export's self-metrics).
    const good = sink('good.jsonl').filter((e) => e.event === 'export');
    const final = good[good.length - 1]!;
    const tagged = final.scopes!['taskstats-agent']!['test.items{"workload":"w","team":"a"}'];
    const passed = final.scopes!['taskstats-agent.self']!['taskstats_agent.processor.outgoing_samples{"component.id":"thrower","pipeline.id":"metrics"}'];
    assert.ok(tagged! > 0);
    assert.equal(tagged, passed);
    assert.equal(sink('bad.jsonl').filter((e) => e.event === 'export').length, 0);

    // The repeated processor error was logged once (rate-limited), the rest counted as suppressed.
    const errors = agent.logs().filter((l) => l.msg === 'processor failed: batch dropped');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.component, 'thrower');
    assert.equal(errors[0]!.reason, 'processor_error');
    const suppressed = agent.logs().find((l) => l.msg === 'repeated messages were suppressed' && String(l.key).startsWith('processor_error'));
    assert.ok(suppressed && Number(suppressed.suppressed) >= 1, agent.stderr);
  });

  test('SIGINT also flushes and exits 0; an asynchronous processor keeps every sample', async () => {
    const agent = start(
      'sigint.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: {interval: 20ms, batch_size: 2}}
processors: {slow: {delay: 15ms}}
exporters: {file_sink: {path: ${tmp.dir}/sigint.jsonl}}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], processors: [slow], exporters: [file_sink]}}
`,
    );
    await agent.waitReady(20_000);
    await sleep(800);
    const stopped = await agent.stop('SIGINT');
    assert.equal(stopped.code, 0, agent.stderr);
    assert.ok(
      agent.logs().some((l) => l.msg === 'shutdown complete'),
      `every shutdown step finished before the deadline:\n${agent.stderr}`,
    );
    const exports = sink('sigint.jsonl').filter((e) => e.event === 'export');
    const final = exports[exports.length - 1]!;
    const items = final.scopes!['taskstats-agent']!['test.items{"workload":"w"}'];
    const emitted = final.scopes!['taskstats-agent.self']!['taskstats_agent.receiver.emitted_samples{"component.id":"counting_source"}'];
    assert.ok(emitted! > 10);
    assert.equal(items, emitted);
  });

  test('a receiver that throws at start: reported with its id, started exporters shut down, exit 1', async () => {
    const agent = start(
      'startfail.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source/broken: {fail_at: start}}
exporters: {file_sink: {path: ${tmp.dir}/startfail.jsonl}}
service:
  telemetry: {metrics: {address: ""}}
  pipelines: {metrics: {receivers: [counting_source/broken], exporters: [file_sink]}}
`,
    );
    const exit = await agent.exited;
    assert.equal(exit.code, 1, agent.stderr);
    const line = agent.logs().find((l) => l.component === 'counting_source/broken' && l.phase === 'start');
    assert.ok(line, agent.stderr);
    assert.match(String(line.msg), /receiver "counting_source\/broken" failed to start: counting_source refuses to start/);
    assert.deepEqual(
      sink('startfail.jsonl').map((e) => e.event),
      ['start', 'flush', 'shutdown'],
    );
  });

  test('a receiver that throws at create: reported with its id, exit 1', async () => {
    const agent = start(
      'createfail.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: {fail_at: create}}
exporters: {file_sink: {path: ${tmp.dir}/createfail.jsonl}}
service:
  telemetry: {metrics: {address: ""}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
    );
    const exit = await agent.exited;
    assert.equal(exit.code, 1, agent.stderr);
    assert.match(agent.stderr, /receiver \\?"counting_source\\?" failed to create: counting_source cannot be created/);
    // Nothing was started, so nothing was exported.
    assert.deepEqual(sink('createfail.jsonl'), []);
  });

  test('an exporter that hangs in shutdown: the agent still exits 0 at the shutdown deadline and names it', async () => {
    const agent = start(
      'hang.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: {interval: 50ms}}
exporters:
  file_sink/hang: {path: ${tmp.dir}/hang.jsonl, hang_on_shutdown: true}
  file_sink/ok: {path: ${tmp.dir}/ok.jsonl}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink/hang, file_sink/ok]}}
`,
    );
    await agent.waitReady(20_000);
    await sleep(200);
    const stopped = await agent.stop('SIGTERM', 15_000);
    assert.equal(stopped.code, 0, agent.stderr);
    const line = agent.logs().find((l) => String(l.msg).includes('shutdown deadline reached'));
    assert.ok(line, agent.stderr);
    assert.deepEqual(line.unfinished, ['exporter "file_sink/hang": flush and shutdown']);
    // The other exporter finished its shutdown and got the final export.
    assert.deepEqual(
      sink('ok.jsonl')
        .slice(-2)
        .map((e) => e.event),
      ['flush', 'shutdown'],
    );
  });

  test('an error thrown in a component callback is contained, logged and counted', async () => {
    const agent = start(
      'uncaught.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: {interval: 50ms, fail_at: timer}}
exporters: {file_sink: {path: ${tmp.dir}/uncaught.jsonl}}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
    );
    await agent.waitReady(20_000);
    await agent.waitForLog((l) => String(l.msg).startsWith('uncaught error in a component callback'));
    await sleep(300);
    const m = await agent.metrics();
    assert.equal(m.get('taskstats_agent_uncaught_errors_total'), 1);
    // Still running and exporting after the error.
    assert.equal((await agent.get('/readyz')).status, 200);
    assert.equal((await agent.stop()).code, 0, agent.stderr);
    assert.ok(sink('uncaught.jsonl').filter((e) => e.event === 'export').length >= 3);
  });

  test('SIGTERM while a receiver hangs in start(): exit 0 before the shutdown deadline, exporters still shut down', async () => {
    const agent = start(
      'hangstart.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: {fail_at: hang_start}}
exporters: {file_sink: {path: ${tmp.dir}/hangstart.jsonl}}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
      ['--log-level', 'debug'],
    );
    await agent.waitForLog((l) => l.msg === 'starting component' && l.kind === 'receiver', 20_000);
    assert.equal((await agent.get('/readyz')).status, 503, 'not ready while a component is starting');
    assert.equal((await agent.get('/healthz')).status, 200);
    const stopped = await agent.stop('SIGTERM');
    assert.equal(stopped.code, 0, agent.stderr);
    assert.ok(
      agent.logs().some((l) => l.msg === 'shutdown complete'),
      `every shutdown step finished before the deadline:\n${agent.stderr}`,
    );
    const warn = agent.logs().find((l) => String(l.msg).startsWith('stop requested while starting'));
    assert.deepEqual(warn?.starting, ['receiver "counting_source"']);
    assert.deepEqual(
      sink('hangstart.jsonl')
        .map((e) => e.event)
        .slice(-2),
      ['flush', 'shutdown'],
    );
  });

  test('SIGTERM during start-up (while the config loads): exit 0, nothing started', async () => {
    const agent = start(
      'early.yaml',
      `plugins: [${testPlugins}, ${join(fixtures, 'signal-at-load.mjs')}]
receivers: {counting_source: }
exporters: {file_sink: {path: ${tmp.dir}/early.jsonl}}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
    );
    const exit = await agent.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, agent.stderr);
    assert.ok(
      agent.logs().some((l) => l.msg === 'stop requested before start: nothing started'),
      agent.stderr,
    );
    assert.deepEqual(sink('early.jsonl'), []);
  });

  test('the telemetry endpoint answers a scrape that arrives while the agent is stopped for 6 s', async () => {
    // A scraper that reused a kept-alive connection after the agent's event loop had been busy for
    // seconds got a reset: the server's keep-alive timer ran before the request was read. SIGSTOP
    // makes the same gap without a big node.
    const a = start(
      'stopped.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: }
exporters: {file_sink: {path: ${tmp.dir}/stopped.jsonl}}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
    );
    const [host, port] = (await a.address()).split(':') as [string, string];
    // What an HTTP client does: keep the connection for the next request unless the server
    // closed it (or said `connection: close`).
    let socket: Socket | undefined;
    let answer = '';
    let closed = true;
    const send = (): void => {
      if (closed) {
        answer = '';
        closed = false;
        socket = connect(Number(port), host);
        socket.on('data', (d: Buffer) => (answer += d.toString()));
        socket.on('end', () => (closed = true));
        socket.on('error', (err) => (answer = `error ${err.message}`));
      }
      answer = '';
      socket!.write('GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n');
    };
    const answered = async (): Promise<string> => {
      for (let i = 0; i < 500 && !answer.includes('taskstats_agent_process_uptime') && !answer.startsWith('error'); i++) await sleep(20);
      return answer;
    };
    send();
    assert.match(await answered(), /^HTTP\/1.1 200/);
    await sleep(200);
    a.child.kill('SIGSTOP');
    try {
      await sleep(5600); // past the 5 s keep-alive timeout node's HTTP server had here
      send();
      await sleep(400);
    } finally {
      a.child.kill('SIGCONT');
    }
    assert.match(await answered(), /^HTTP\/1.1 200/, 'the scrape after the stop is answered');
    socket?.destroy();
    assert.equal((await a.stop()).code, 0);
  });

  test('the telemetry address already in use: exit 1 with a clear message', async () => {
    const first = start(
      'port1.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: }
exporters: {file_sink: {path: ${tmp.dir}/port.jsonl}}
service:
  telemetry: {metrics: {address: "127.0.0.1:0"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
    );
    const address = await first.address();
    const second = start(
      'port2.yaml',
      `plugins: [${testPlugins}]
receivers: {counting_source: }
exporters: {file_sink: {path: ${tmp.dir}/port2.jsonl}}
service:
  telemetry: {metrics: {address: "${address}"}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`,
    );
    const exit = await second.exited;
    assert.equal(exit.code, 1);
    assert.match(second.stderr, /address already in use/);
    assert.match(second.stderr, /"code":"cannot_listen"|code=cannot_listen/, 'the catalogue code');
    assert.equal((await first.stop()).code, 0);
  });
});
