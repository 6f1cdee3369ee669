/** The command line as a real process: help, version, components, validate, default command, exit codes. */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, runCli, sleep, startAgent, tempDir, testPlugins } from './helpers.js';
import type { RunningAgent } from './helpers.js';

const tmp = tempDir('taskstats-cli-');
const agents: RunningAgent[] = [];
after(() => {
  for (const a of agents) a.kill();
  tmp.remove();
});

const VALID = `plugins: [${testPlugins}]
receivers:
  counting_source:
    interval: 50ms
exporters:
  file_sink:
    path: \${env:SINK_PATH:-/tmp/unused.jsonl}
service:
  telemetry: {metrics: {address: ""}}
  pipelines: {metrics: {receivers: [counting_source], exporters: [file_sink]}}
`;

describe('cli', { timeout: 90_000 }, () => {
  test('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), `taskstats-agent ${pkg.version}`);
  });

  test('--help lists the commands and the exit codes; every command has --help', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['run', 'validate', 'components']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
    assert.match(r.stdout, /Exit codes:\n {2}0 {3}ok/);
    assert.match(r.stdout, /^ {2}70 {2}internal error/m);
    for (const c of ['run', 'validate', 'components']) {
      const h = await runCli([c, '--help']);
      assert.equal(h.code, 0, h.stderr);
      assert.match(h.stdout, new RegExp(`^Usage: taskstats-agent ${c === 'run' ? '\\[run\\]' : c}`));
    }
  });

  test('commands of built-in plugins are listed in --help and dispatched (their --help prints their usage)', async () => {
    const { builtinPlugins } = await import('../../plugins/index.js');
    const commands = builtinPlugins.flatMap((p) => p.commands ?? []);
    const help = await runCli(['--help']);
    for (const c of commands) {
      assert.ok(help.stdout.includes(`  ${c.name} `) && help.stdout.includes(c.summary), `${c.name} missing from --help`);
      const r = await runCli([c.name, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), c.usage.trim());
    }
  });

  test('usage errors exit 2: unknown command, unknown option, bad --log-level', async () => {
    const a = await runCli(['frobnicate']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /unknown command "frobnicate"/);
    const b = await runCli(['validate', '--nope']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /Unknown option '--nope'/);
    const c = await runCli(['run', '--log-level', 'chatty', '--config', '/nonexistent.yaml']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--log-level must be one of debug, info, warn, error/);
  });

  test('components lists types by kind with stability and description, custom plugins with --config', async () => {
    const file = tmp.write('components.yaml', VALID);
    const r = await runCli(['components', '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const line = lines.find((l) => /^receiver\s+counting_source\s+development\s+metrics\s+Test receiver: emits batches/.test(l));
    assert.ok(line, r.stdout);
    assert.match(line, /\(plugin .*test-plugins\.mjs\)$/);
    assert.ok(lines.some((l) => /^exporter\s+file_sink\s+development\s+metrics,logs\s+/.test(l)));
    assert.ok(lines.some((l) => /^exporter\s+otlp\s+beta\s+metrics,logs\s+/.test(l)));
    assert.ok(lines.some((l) => /^exporter\s+prometheus\s+\w+\s+metrics\s+/.test(l)));
    // Kinds are grouped: receivers, then processors, then exporters.
    const order = lines.map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(
      [...new Set(order)],
      ['receiver', 'processor', 'exporter'].filter((k) => order.includes(k)),
    );
  });

  test('validate: 0 for a valid file', async () => {
    const file = tmp.write('valid.yaml', VALID);
    const r = await runCli(['validate', '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid \(pipelines: metrics\)/);
  });

  test('validate: exit 2 with every error on stderr, each with file:line:col and path', async () => {
    const file = tmp.write(
      'broken.yaml',
      `plugins: [${testPlugins}]
receivers:
  counting_source: {interval: soon, batch_size: 0}
exporters: {file_sink: {path: /tmp/x, extra: 1}}
service:
  pipelines:
    metrics: {receivers: [counting_source], processors: [filter/x], exporters: [file_sink]}
`,
    );
    const r = await runCli(['validate', '--config', file]);
    assert.equal(r.code, 2);
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.includes(`${file}:3:31: receivers.counting_source.interval: invalid duration "soon" (expected e.g. 500ms, 10s, 1m, 1h30m)`), r.stderr);
    assert.ok(lines.includes(`${file}:3:49: receivers.counting_source.batch_size: must be an integer >= 1 (got 0)`), r.stderr);
    assert.ok(
      lines.some((l) => l.startsWith(`${file}:4:39: exporters.file_sink.extra: unknown key "extra"`)),
      r.stderr,
    );
    assert.ok(
      lines.some((l) => l.startsWith(`${file}:7:58: service.pipelines.metrics.processors[0]: processor "filter/x" is not configured`)),
      r.stderr,
    );
    assert.equal(lines[lines.length - 1], `${file}: 4 errors`);
  });

  test('validate: syntax error with line and column; missing file; directory', async () => {
    const file = tmp.write('syntax.yaml', 'receivers:\n  a: {b: [1, 2}\n');
    const r = await runCli(['validate', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: YAML: `, 'm'));
    const missing = await runCli(['validate', '--config', join(tmp.dir, 'missing.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing\.yaml: cannot read configuration file: no such file/);
    const dir = await runCli(['validate', '--config', tmp.dir]);
    assert.equal(dir.code, 2);
    assert.match(dir.stderr, /is a directory/);
  });

  test('validate: a file the user may not read (run as nobody)', { skip: process.getuid?.() !== 0 && 'needs root to switch user' }, async () => {
    const d = tempDir('taskstats-cli-perm-');
    try {
      chmodSync(d.dir, 0o755);
      const file = d.write('secret.yaml', VALID);
      chmodSync(file, 0o600);
      const r = await runCli(['validate', '--config', file], { uid: 65534, gid: 65534, cwd: '/' });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /secret\.yaml: cannot read configuration file: permission denied/);
    } finally {
      d.remove();
    }
  });

  test('validate defaults to ./config.yaml; env expansion applies', async () => {
    const d = tempDir('taskstats-cli-cwd-');
    try {
      d.write('config.yaml', VALID.replace('interval: 50ms', 'interval: ${env:IVL}'));
      const bad = await runCli(['validate'], { cwd: d.dir, env: { ...process.env, IVL: '-3s' } });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /config\.yaml:4:15: receivers\.counting_source\.interval: must not be negative \(got "-3s"\)/);
      const good = await runCli(['validate'], { cwd: d.dir, env: { ...process.env, IVL: '2s' } });
      assert.equal(good.code, 0, good.stderr);
    } finally {
      d.remove();
    }
  });

  test('run is the default command and reads ./config.yaml; console logs when asked', async () => {
    const d = tempDir('taskstats-cli-run-');
    try {
      d.write('config.yaml', VALID.replace('{metrics: {address: ""}}', '{metrics: {address: ""}, logs: {encoding: console}}'));
      const agent = startAgent([], { cwd: d.dir, env: { ...process.env, SINK_PATH: join(d.dir, 'out.jsonl') } });
      agents.push(agent);
      const deadline = Date.now() + 20_000;
      while (!agent.stderr.includes('taskstats-agent started')) {
        assert.ok(Date.now() < deadline && !agent.exit, agent.stderr);
        await sleep(50);
      }
      const stopped = await agent.stop('SIGTERM');
      assert.equal(stopped.code, 0, agent.stderr);
      // Console encoding: "time LEVEL message key=value", not JSON.
      assert.match(agent.stderr, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}taskstats-agent started/m);
      assert.ok(!agent.stderr.split('\n').some((l) => l.startsWith('{')));
      assert.match(readFileSync(join(d.dir, 'out.jsonl'), 'utf8'), /"event":"shutdown"/);
    } finally {
      d.remove();
    }
  });

  test('run with an invalid config: exit 2, nothing started', async () => {
    const file = tmp.write('invalid-run.yaml', 'receivers: {nosuch: }\n');
    const r = await runCli(['run', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown receiver type "nosuch"/);
    assert.match(r.stderr, /invalid configuration; nothing started/);
  });
});
