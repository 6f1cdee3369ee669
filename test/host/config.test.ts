/**
 * Configuration loading and validation against real files: env expansion, durations and sizes,
 * defaults, and broken configurations of every kind (each error with its path and file position).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatIssue } from '../../src/config/issues.js';
import type { ConfigIssue } from '../../src/config/issues.js';
import { loadConfigFile } from '../../src/config/load.js';
import { expandEnv } from '../../src/config/yaml.js';
import { Registry } from '../../src/registry.js';
import { builtinPlugins } from '../../plugins/index.js';
import { fixtures, tempDir, testPlugins } from './helpers.js';

const tmp = tempDir('taskstats-config-');
after(() => tmp.remove());

let n = 0;
async function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const file = tmp.write(`c${n++}.yaml`, yaml);
  const registry = new Registry();
  const r = await loadConfigFile(file, registry, env);
  const errors = r.issues.filter((i) => i.severity === 'error');
  const warnings = r.issues.filter((i) => i.severity === 'warning');
  return { ...r, file, errors, warnings, text: r.issues.map(formatIssue).join('\n') };
}

const HEADER = `plugins: ["${testPlugins}"]\n`;
const PIPELINE = `service:
  pipelines:
    metrics:
      receivers: [counting_source]
      exporters: [file_sink]
`;

function find(issues: ConfigIssue[], path: string): ConfigIssue {
  const hit = issues.find((i) => i.path === path);
  assert.ok(hit, `no issue at ${path}; got:\n${issues.map(formatIssue).join('\n')}`);
  return hit;
}

describe('valid configurations', () => {
  test('durations and sizes are converted, defaults merged, null means defaults', async () => {
    const r = await load(`${HEADER}receivers:
  counting_source:
    interval: 1m30s
    buffer: 2KiB
  counting_source/b:
exporters:
  file_sink:
    path: /tmp/x
service:
  pipelines:
    metrics:
      receivers: [counting_source, counting_source/b]
      exporters: [file_sink]
      aggregation:
        series_limit: 50
        ended_series_ttl: 30s
`);
    assert.deepEqual(r.errors, [], r.text);
    const cfg = r.config!;
    assert.deepEqual(cfg.receivers.get('counting_source')!.config, { interval: 90_000, batch_size: 3, workload: 'w', fail_at: 'none', buffer: 2048 });
    assert.deepEqual(cfg.receivers.get('counting_source/b')!.config, { interval: 100, batch_size: 3, workload: 'w', fail_at: 'none', buffer: 1024 });
    assert.deepEqual(cfg.pipelines[0], {
      signal: 'metrics',
      id: 'metrics',
      receivers: ['counting_source', 'counting_source/b'],
      processors: [],
      exporters: ['file_sink'],
      seriesLimit: 50,
      endedSeriesTtlMs: 30_000,
    });
    assert.equal(cfg.telemetry.metrics.address, '127.0.0.1:8888');
    assert.equal(cfg.telemetry.logs.level, 'info');
  });

  test('aggregation defaults: 10000 series, 5m ttl; telemetry address "" disables', async () => {
    const r = await load(`${HEADER}receivers: {counting_source: }
exporters: {file_sink: {path: /tmp/x}}
service:
  telemetry: {metrics: {address: ""}, logs: {level: debug, encoding: console}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`);
    assert.deepEqual(r.errors, [], r.text);
    assert.deepEqual(r.config!.pipelines[0], {
      signal: 'metrics',
      id: 'metrics',
      receivers: ['counting_source'],
      processors: [],
      exporters: ['file_sink'],
      seriesLimit: 10_000,
      endedSeriesTtlMs: 300_000,
    });
    assert.equal(r.config!.telemetry.metrics.address, null);
    assert.deepEqual(r.config!.telemetry.logs, { level: 'debug', encoding: 'console' });
  });

  test('env expansion: ${env:VAR}, defaults, $$ escape, typed whole references, quoted stays string', async () => {
    const env = { SINK: '/tmp/sink.jsonl', BATCH: '7', WL: 'web', EMPTY: '' };
    const r = await load(
      `${HEADER}receivers:
  counting_source:
    batch_size: \${env:BATCH}
    workload: pre-\${env:WL}-\${env:MISSING:-fallback}-$\${env:WL}-\${env:EMPTY:-e}
  counting_source/q:
    workload: "\${env:BATCH}"
exporters:
  file_sink:
    path: \${env:SINK}
service:
  pipelines:
    metrics:
      receivers: [counting_source, counting_source/q]
      exporters: [file_sink]
`,
      env,
    );
    assert.deepEqual(r.errors, [], r.text);
    const c = r.config!.receivers.get('counting_source')!.config as Record<string, unknown>;
    assert.equal(c.batch_size, 7);
    assert.equal(c.workload, 'pre-web-fallback-${env:WL}-e');
    assert.equal((r.config!.receivers.get('counting_source/q')!.config as Record<string, unknown>).workload, '7');
    assert.equal((r.config!.exporters.get('file_sink')!.config as Record<string, unknown>).path, '/tmp/sink.jsonl');
  });

  test('an unset variable without default expands to "" with a warning naming it', async () => {
    const r = await load(`${HEADER}receivers: {counting_source: {workload: "a\${env:NOPE_NOT_SET}b"}}
exporters: {file_sink: {path: /tmp/x}}
${PIPELINE}`);
    assert.deepEqual(r.errors, [], r.text);
    assert.equal((r.config!.receivers.get('counting_source')!.config as Record<string, unknown>).workload, 'ab');
    const w = find(r.warnings, 'receivers.counting_source.workload');
    assert.match(w.message, /NOPE_NOT_SET/);
    assert.deepEqual(w.pos, { line: 2, col: 41 });
  });

  test('expandEnv alone', () => {
    const report: string[] = [];
    const f = (m: string) => report.push(m);
    assert.deepEqual(expandEnv('${env:A}', { A: '1' }, f), { text: '1', wholeReference: true });
    assert.deepEqual(expandEnv('x$$y', {}, f), { text: 'x$y', wholeReference: false });
    assert.equal(expandEnv('${env:1BAD}', {}, f).text, '${env:1BAD}');
    assert.match(report[0]!, /invalid environment variable name "1BAD"/);
    // `${VAR}` without the env: scheme stays as written, with a hint; `$${VAR}` is the quiet way.
    assert.equal(expandEnv('${HOME}', { HOME: '/root' }, f).text, '${HOME}');
    assert.match(report[1]!, /"\$\{HOME\}" is not expanded: write \$\{env:HOME\}/);
    assert.equal(expandEnv('$${HOME}', { HOME: '/root' }, f).text, '${HOME}');
    assert.equal(report.length, 2);
  });

  test('anchors, aliases and merge keys (env expanded inside them too)', async () => {
    const r = await load(
      `${HEADER}receivers:
  counting_source/a: &common
    batch_size: \${env:BATCH}
    workload: a
  counting_source/b:
    <<: *common
    workload: b
  counting_source/c:
    <<: {workload: "\${env:WL}", interval: 2s}
exporters: {file_sink: {path: /tmp/x}}
service:
  pipelines:
    metrics: {receivers: [counting_source/a, counting_source/b, counting_source/c], exporters: [file_sink]}
`,
      { BATCH: '9', WL: 'merged' },
    );
    assert.deepEqual(r.errors, [], r.text);
    const cfg = (id: string) => r.config!.receivers.get(id)!.config as Record<string, unknown>;
    assert.deepEqual([cfg('counting_source/a').batch_size, cfg('counting_source/a').workload], [9, 'a']);
    assert.deepEqual([cfg('counting_source/b').batch_size, cfg('counting_source/b').workload], [9, 'b']);
    assert.deepEqual([cfg('counting_source/c').workload, cfg('counting_source/c').interval], ['merged', 2000]);
  });

  test('unused components are warnings, not errors', async () => {
    const r = await load(`${HEADER}receivers: {counting_source: }
processors: {tagger: }
exporters: {file_sink: {path: /tmp/x}, file_sink/unused: {path: /tmp/y}}
${PIPELINE}`);
    assert.deepEqual(r.errors, [], r.text);
    assert.match(find(r.warnings, 'processors.tagger').message, /configured but not used/);
    assert.match(find(r.warnings, 'exporters.file_sink/unused').message, /configured but not used/);
    assert.ok(r.config);
  });

  test('a plain-object plugin (no API import) is accepted', async () => {
    const r = await load(
      `plugins: ["${testPlugins}", ./plain.mjs]
receivers: {counting_source: }
processors: {plain_upper: }
exporters: {file_sink: {path: /tmp/x}}
service: {pipelines: {metrics: {receivers: [counting_source], processors: [plain_upper], exporters: [file_sink]}}}
`.replace('./plain.mjs', join(fixtures, 'plain-plugin.mjs')),
    );
    assert.deepEqual(r.errors, [], r.text);
    assert.deepEqual(r.config!.processors.get('plain_upper')!.config, { attribute: 'workload' });
  });
});

/** A config whose pipeline uses the `plain_upper` processor of the plugin named `plugin`. */
function plainUpperConfig(plugin: string): string {
  return `plugins: [${testPlugins}, ${plugin}]
receivers: {counting_source: }
processors: {plain_upper: }
exporters: {file_sink: {path: /tmp/x}}
service: {pipelines: {metrics: {receivers: [counting_source], processors: [plain_upper], exporters: [file_sink]}}}
`;
}

/** Loads `file` without errors, and `plain_upper` came from the plugin named `source`. */
async function assertPlainUpperFrom(file: string, source: string): Promise<void> {
  const registry = new Registry();
  const r = await loadConfigFile(file, registry, {});
  assert.deepEqual(r.issues.filter((i) => i.severity === 'error').map(formatIssue), []);
  assert.equal(registry.get('processor', 'plain_upper')!.source, source);
}

test("a relative plugin path resolves from the config file's directory, not the working directory", async () => {
  const d = tempDir('taskstats-rel-');
  try {
    mkdirSync(join(d.dir, 'conf', 'my-plugins'), { recursive: true });
    copyFileSync(join(fixtures, 'plain-plugin.mjs'), join(d.dir, 'conf', 'my-plugins', 'plain.mjs'));
    await assertPlainUpperFrom(d.write('conf/config.yaml', plainUpperConfig('./my-plugins/plain.mjs')), './my-plugins/plain.mjs');
  } finally {
    d.remove();
  }
});

test("a plugin named by package name resolves from the config file's directory", async () => {
  const d = tempDir('taskstats-pkg-');
  try {
    d.write('package.json', '{"name":"x","private":true}');
    const pkg = join(d.dir, 'node_modules', 'my-agent-plugin');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'my-agent-plugin', type: 'module', exports: { '.': { import: './index.mjs' } } }));
    writeFileSync(join(pkg, 'index.mjs'), `export { default } from ${JSON.stringify(pathToFileURL(join(fixtures, 'plain-plugin.mjs')).href)};`);
    await assertPlainUpperFrom(d.write('config.yaml', plainUpperConfig('my-agent-plugin')), 'my-agent-plugin');
  } finally {
    d.remove();
  }
});

describe('logs pipelines', () => {
  test('logs and logs/<name> beside metrics; batch settings and their defaults (8192 records, 200ms)', async () => {
    const r = await load(`${HEADER}receivers: {event_source: }
processors: {severity_filter: }
exporters: {file_sink: {path: /tmp/x}}
service:
  pipelines:
    metrics: {receivers: [event_source], exporters: [file_sink]}
    logs: {receivers: [event_source], exporters: [file_sink]}
    logs/failures:
      receivers: [event_source]
      processors: [severity_filter]
      exporters: [file_sink]
      batch: {send_batch_size: 100, send_batch_max_size: 500, timeout: 2s}
`);
    assert.deepEqual(r.errors, [], r.text);
    assert.deepEqual(
      r.config!.pipelines.map((p) => p.signal),
      ['metrics', 'logs', 'logs'],
    );
    assert.deepEqual(r.config!.pipelines[1], {
      signal: 'logs',
      id: 'logs',
      receivers: ['event_source'],
      processors: [],
      exporters: ['file_sink'],
      sendBatchSize: 8192,
      batchTimeoutMs: 200,
      sendBatchMaxSize: 0,
    });
    assert.deepEqual(r.config!.pipelines[2], {
      signal: 'logs',
      id: 'logs/failures',
      receivers: ['event_source'],
      processors: ['severity_filter'],
      exporters: ['file_sink'],
      sendBatchSize: 100,
      batchTimeoutMs: 2000,
      sendBatchMaxSize: 500,
    });
  });

  test('a component in a pipeline of a signal it does not support: an error with its path and line', async () => {
    const file = tmp.write(
      `signals${n++}.yaml`,
      `${HEADER}receivers: {counting_source: , event_source: }
processors: {tagger: , severity_filter: }
exporters: {prometheus: , file_sink: {path: /tmp/x}}
service:
  pipelines:
    logs:
      receivers: [event_source, counting_source]
      processors: [tagger]
      exporters: [prometheus]
    metrics:
      receivers: [event_source]
      processors: [severity_filter]
      exporters: [file_sink]
`,
    );
    const registry = new Registry();
    for (const plugin of builtinPlugins) registry.registerPlugin(plugin, 'built-in');
    const r = await loadConfigFile(file, registry, {});
    const errors = r.issues.filter((i) => i.severity === 'error');
    const expect: Array<[string, string, number]> = [
      ['service.pipelines.logs.receivers[1]', 'receiver "counting_source" does not support logs (it supports metrics)', 8],
      ['service.pipelines.logs.processors[0]', 'processor "tagger" does not support logs (it supports metrics)', 9],
      ['service.pipelines.logs.exporters[0]', 'exporter "prometheus" does not support logs (it supports metrics)', 10],
      ['service.pipelines.metrics.processors[0]', 'processor "severity_filter" does not support metrics (it supports logs)', 13],
    ];
    assert.equal(errors.length, expect.length, r.issues.map(formatIssue).join('\n'));
    for (const [path, message, line] of expect) {
      const hit = find(errors, path);
      assert.equal(hit.message, message);
      assert.equal(hit.pos?.line, line, `${path} line`);
    }
    assert.equal(r.config, undefined);
  });

  test('batch only in logs pipelines, aggregation only in metrics pipelines; bad batch values', async () => {
    const r = await load(`${HEADER}receivers: {event_source: }
exporters: {file_sink: {path: /tmp/x}}
service:
  pipelines:
    metrics: {receivers: [event_source], exporters: [file_sink], batch: {timeout: 1s}}
    logs: {receivers: [event_source], exporters: [file_sink], aggregation: {series_limit: 5}}
    logs/b:
      receivers: [event_source]
      exporters: [file_sink]
      batch: {send_batch_size: 0, timeout: -1s, send_batch_max_size: 0, extra: 1}
    logs/c:
      receivers: [event_source]
      exporters: [file_sink]
      batch: {send_batch_size: 100, send_batch_max_size: 10, timeout: soon}
`);
    const expect: Array<[string, RegExp]> = [
      ['service.pipelines.metrics.batch', /unknown key "batch".*"batch" belongs to logs pipelines/],
      ['service.pipelines.logs.aggregation', /unknown key "aggregation".*"aggregation" belongs to metrics pipelines/],
      ['service.pipelines.logs/b.batch.send_batch_size', /must be an integer >= 1 \(got 0\)/],
      ['service.pipelines.logs/b.batch.timeout', /must not be negative/],
      ['service.pipelines.logs/b.batch.extra', /unknown key "extra"/],
      ['service.pipelines.logs/c.batch.send_batch_max_size', /must be 0 \(no limit\) or at least send_batch_size \(100\)/],
      ['service.pipelines.logs/c.batch.timeout', /invalid duration "soon"/],
    ];
    for (const [path, re] of expect) assert.match(find(r.errors, path).message, re, path);
    assert.equal(r.errors.length, expect.length, r.text);
  });

  test('a factory with bad signals is refused when the plugin registers', () => {
    const registry = new Registry();
    const bad = { type: 'x', kind: 'exporter', description: 'd', stability: 'alpha', defaultConfig: () => ({}), configSchema: {}, create: () => ({}) };
    assert.throws(
      () => registry.registerPlugin({ factories: [{ ...bad, signals: ['traces'] }] }, 'p.mjs'),
      /exporter "x": signals must be a non-empty list of metrics, logs \(got \["traces"\]\)/,
    );
    assert.throws(() => registry.registerPlugin({ factories: [{ ...bad, signals: [] }] }, 'p.mjs'), /signals must be a non-empty list/);
  });
});

describe('broken configurations: every error, with path and position', () => {
  test('YAML syntax error gives line and column', async () => {
    const r = await load(`receivers:\n  a: [1, 2\nexporters: {}\n`);
    assert.ok(r.errors.length >= 1, r.text);
    assert.match(r.errors[0]!.message, /^YAML: /);
    assert.ok(r.errors[0]!.pos, 'position expected');
    assert.match(r.text, /c\d+\.yaml:\d+:\d+: /);
    assert.equal(r.config, undefined);
  });

  test('duplicate key is a YAML error with its line', async () => {
    const r = await load(`${HEADER}receivers:\n  counting_source:\n  counting_source:\n`);
    assert.equal(r.errors.length, 1, r.text);
    assert.match(r.errors[0]!.message, /unique|duplicate/i);
    assert.ok([3, 4].includes(r.errors[0]!.pos!.line), formatIssue(r.errors[0]!));
  });

  test('empty file and non-mapping root', async () => {
    assert.match((await load('')).text, /the configuration is empty/);
    assert.match((await load('- a\n- b\n')).text, /must be a mapping \(got a list\)/);
  });

  test('unreadable file: missing, a directory', async () => {
    const registry = new Registry();
    const missing = await loadConfigFile(join(tmp.dir, 'nope.yaml'), registry);
    assert.match(formatIssue(missing.issues[0]!), /nope\.yaml: cannot read configuration file: no such file/);
    const dir = await loadConfigFile(tmp.dir, registry);
    assert.match(formatIssue(dir.issues[0]!), /cannot read configuration file: is a directory/);
  });

  test('many problems at once, each with path, message and line:col', async () => {
    const r = await load(`${HEADER}recievers: {}
receivers:
  counting_source:
    interval: -5s
    batch_size: "three"
    colour: red
  counting_source/b:
    interval: 10
    buffer: 12 parsecs
  counting_source/c:
    buffer: 2MiB
    interval: 0ms
  nosuch: {}
  Bad-Id: {}
processors:
  tagger:
exporters:
  file_sink: {}
  file_sink/t:
    path: /x
    temporality: sideways
    delay: 1h5q
service:
  telemetry:
    logs: {level: loud}
    metrics: {address: "localhost"}
  pipelines:
    metrics:
      receivers: [counting_source, missing_receiver]
      processors: [tagger, filter/x]
      exporters: [file_sink, file_sink]
      aggregation: {series_limit: 0, ended_series_ttl: -1m, extra: 1}
    metrics/empty:
      receivers: []
    traces:
      receivers: [counting_source]
      exporters: [file_sink]
`);
    const expect: Array<[string, RegExp, number?]> = [
      ['recievers', /unknown key "recievers" \(known keys: plugins, receivers, processors, exporters, service\)/, 2],
      ['receivers.counting_source.interval', /must not be negative \(got "-5s"\)/, 5],
      ['receivers.counting_source.batch_size', /must be an integer \(got "three"\)/, 6],
      ['receivers.counting_source.colour', /unknown key "colour" \(known keys: interval, batch_size, workload, fail_at, buffer\)/, 7],
      ['receivers.counting_source/b.interval', /must be a duration with a unit, e\.g\. "10ms" or "10s"/, 9],
      ['receivers.counting_source/b.buffer', /invalid size "12 parsecs"/, 10],
      ['receivers.counting_source/c.buffer', /must be at most 1MiB \(got "2MiB"\)/, 12],
      ['receivers.counting_source/c.interval', /must be at least 1ms \(got "0ms"\)/, 13],
      ['receivers.nosuch', /unknown receiver type "nosuch" \(known receiver types: counting_source, event_source\)/, 14],
      ['receivers.Bad-Id', /invalid receiver id "Bad-Id"/, 15],
      ['exporters.file_sink', /missing required key "path"/, 19],
      ['exporters.file_sink/t.temporality', /must be one of "cumulative", "delta" \(got "sideways"\)/, 22],
      ['exporters.file_sink/t.delay', /invalid duration "1h5q"/, 23],
      ['service.telemetry.logs.level', /must be one of "debug", "info", "warn", "error" \(got "loud"\)/, 26],
      ['service.telemetry.metrics.address', /must be host:port/, 27],
      ['service.pipelines.metrics.receivers[1]', /receiver "missing_receiver" is not configured/, 30],
      ['service.pipelines.metrics.processors[1]', /processor "filter\/x" is not configured/, 31],
      ['service.pipelines.metrics.exporters[1]', /exporter "file_sink" is listed twice/, 32],
      ['service.pipelines.metrics.aggregation.series_limit', /must be an integer >= 1 \(got 0\)/, 33],
      ['service.pipelines.metrics.aggregation.ended_series_ttl', /must not be negative/, 33],
      ['service.pipelines.metrics.aggregation.extra', /unknown key "extra"/, 33],
      ['service.pipelines.metrics/empty.receivers', /a pipeline needs at least one receiver/, 35],
      ['service.pipelines.metrics/empty.exporters', /a pipeline needs at least one exporter/, 34],
      ['service.pipelines.traces', /invalid pipeline id "traces".*traces pipelines are not supported/, 36],
    ];
    for (const [path, re, line] of expect) {
      const issue = find(r.errors, path);
      assert.match(issue.message, re, `${path}: ${issue.message}`);
      if (line !== undefined) assert.equal(issue.pos?.line, line, `${path}: line of ${formatIssue(issue)}`);
      assert.ok(issue.pos && issue.pos.col >= 1, `${path}: column`);
    }
    assert.equal(r.config, undefined);
    // The formatted form: file:line:col: path: message
    assert.match(r.text, /c\d+\.yaml:31:\d+: service\.pipelines\.metrics\.processors\[1\]: processor "filter\/x" is not configured/);
  });

  test('sizes: negative numbers and strings, fractions of a byte, wrong types', async () => {
    const r = await load(`${HEADER}receivers:
  counting_source/a: {buffer: -1}
  counting_source/b: {buffer: "-5MiB"}
  counting_source/c: {buffer: 1.5}
  counting_source/d: {buffer: [1]}
  counting_source/e: {buffer: 0.5KiB}
exporters: {file_sink: {path: /tmp/x}}
service:
  pipelines:
    metrics: {receivers: [counting_source/a, counting_source/b, counting_source/c, counting_source/d, counting_source/e], exporters: [file_sink]}
`);
    assert.match(find(r.errors, 'receivers.counting_source/a.buffer').message, /must not be negative \(got -1\)/);
    assert.match(find(r.errors, 'receivers.counting_source/b.buffer').message, /must not be negative \(got "-5MiB"\)/);
    assert.match(find(r.errors, 'receivers.counting_source/c.buffer').message, /must be a string or an integer \(got 1\.5\)|invalid size 1\.5/);
    assert.ok(
      r.errors.some((e) => e.path === 'receivers.counting_source/d.buffer'),
      r.text,
    );
    assert.equal(r.errors.filter((e) => e.path === 'receivers.counting_source/e.buffer').length, 0, '0.5KiB is 512 bytes');
    for (const p of ['a', 'b', 'c']) assert.equal(find(r.errors, `receivers.counting_source/${p}.buffer`).pos?.line, 'abc'.indexOf(p) + 3);
  });

  test('wrong types for sections and pipelines', async () => {
    const r = await load(`plugins: "x.mjs"
receivers: [a]
exporters: 3
service:
  pipelines:
    metrics: [a]
`);
    assert.match(find(r.errors, 'plugins').message, /must be a list/);
    assert.match(find(r.errors, 'receivers').message, /must be a mapping of receiver ids/);
    assert.match(find(r.errors, 'exporters').message, /must be a mapping of exporter ids/);
    assert.match(find(r.errors, 'service.pipelines.metrics').message, /must be a mapping with receivers/);
  });

  test('missing service and missing pipelines', async () => {
    assert.match(find((await load(`${HEADER}receivers: {counting_source: }\n`)).errors, 'service').message, /missing/);
    assert.match(find((await load(`${HEADER}service: {telemetry: {}}\n`)).errors, 'service.pipelines').message, /missing/);
  });

  test('factory validate() problems are reported under the component path', async () => {
    const r = await load(`${HEADER}receivers: {counting_source: {workload: forbidden}}
exporters: {file_sink: {path: /tmp/x}}
${PIPELINE}`);
    const issue = find(r.errors, 'receivers.counting_source.workload');
    assert.match(issue.message, /reserved/);
    assert.equal(issue.pos?.line, 2);
  });

  test('a component config that is not a mapping', async () => {
    const r = await load(`${HEADER}receivers: {counting_source: 5}
exporters: {file_sink: {path: /tmp/x}}
${PIPELINE}`);
    assert.match(find(r.errors, 'receivers.counting_source').message, /must be a mapping of settings \(got 5\)/);
  });

  test('a quoted env reference stays a string and fails an integer schema', async () => {
    const r = await load(
      `${HEADER}receivers: {counting_source: {batch_size: "\${env:N}"}}
exporters: {file_sink: {path: /tmp/x}}
${PIPELINE}`,
      { N: '4' },
    );
    assert.match(find(r.errors, 'receivers.counting_source.batch_size').message, /must be an integer \(got "4"\)/);
  });

  test('bad plugin entries: missing file, no default export, throws at load, bad factory, duplicate type, invalid schema', async () => {
    const f = (name: string) => join(fixtures, name);
    const r = await load(`plugins:
  - ./does-not-exist.mjs
  - ${f('no-default.mjs')}
  - ${f('throws-at-load.mjs')}
  - ${f('bad-factory.mjs')}
  - ${testPlugins}
  - ${f('duplicate-type.mjs')}
  - ${f('bad-schema.mjs')}
  - no-such-package-taskstats-xyz
  - 42
`);
    const at = (i: number) => find(r.errors, `plugins[${i}]`);
    assert.match(at(0).message, /plugin \.\/does-not-exist\.mjs: file .*does-not-exist\.mjs does not exist/);
    assert.equal(at(0).pos?.line, 2);
    assert.match(at(1).message, /no-default\.mjs: has no default export/);
    assert.match(at(2).message, /throws-at-load\.mjs: failed to load: Error: this plugin cannot be loaded/);
    assert.match(at(3).message, /bad-factory\.mjs: factories\[0\]: processor "no_create": create must be a function/);
    assert.match(at(5).message, /duplicate-type\.mjs: processor type "tagger" is already registered by .*test-plugins\.mjs/);
    assert.match(at(6).message, /bad-schema\.mjs: factories\[0\]: processor "bad_schema": invalid configSchema/);
    assert.match(at(7).message, /package "no-such-package-taskstats-xyz" cannot be found/);
    assert.match(at(8).message, /must be a file path or a package name \(got 42\)/);
    assert.equal(r.errors.filter((e) => e.path.startsWith('plugins[')).length, 8, r.text);
  });
});
