/**
 * Broken configurations: a clear error naming what is wrong, a non-zero exit, and nothing started
 * (the self-telemetry port the config names is never bound while the agent runs).
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { AS_NOBODY_WITHOUT_CAPS, agentBin, freePort, portIsOpen, type CommandResult } from '../support/agent.js';
import { faultConfig, type FaultConfig } from './configs.js';
import { spawn } from 'node:child_process';
import { needs } from '../support/caps.js';

const dir = mkdtempSync(join(tmpdir(), 'ts-badconfig-'));
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Run `taskstats-agent run --config FILE` and watch `port` while it runs: resolves with the
 * result and whether the port was ever seen open.
 */
async function runWatchingPort(file: string, port: number, wrapper?: string[]): Promise<CommandResult & { portWasOpen: boolean }> {
  const argv = [agentBin, 'run', '--config', file];
  const command = wrapper ? wrapper[0]! : process.execPath;
  const args = wrapper ? [...wrapper.slice(1), process.execPath, ...argv] : argv;
  const t0 = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let running = true as boolean; // cleared by the exit handler while the loop runs
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // 'close': after stdout and stderr are drained ('exit' may come first).
    child.on('close', (code, signal) => {
      running = false;
      resolve({ code, signal });
    }),
  );
  let portWasOpen = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  while (running) {
    if (await portIsOpen(port)) portWasOpen = true;
    await new Promise((r) => setTimeout(r, 25));
  }
  clearTimeout(timer);
  const { code, signal } = await exited;
  return { code, signal, stdout, stderr, ms: performance.now() - t0, portWasOpen };
}

let n = 0;
async function writeBroken(mutate: (config: FaultConfig) => void): Promise<{ file: string; port: number }> {
  const port = await freePort();
  const config = faultConfig({ metricsUrl: 'http://127.0.0.1:9/v1/metrics' });
  config.service.telemetry.metrics = { address: `127.0.0.1:${port}` };
  mutate(config);
  const file = join(dir, `config-${++n}.yaml`);
  writeFileSync(file, stringify(config), { mode: 0o644 });
  return { file, port };
}

function assertRefused(r: CommandResult & { portWasOpen: boolean }, ...mentions: Array<string | RegExp>): void {
  const out = r.stdout + r.stderr;
  assert.notEqual(r.code, 0, `expected a non-zero exit, got ${r.code} (signal ${r.signal})\n${out}`);
  assert.equal(r.signal, null, `the agent was killed by ${r.signal} (it did not exit by itself)\n${out}`);
  for (const m of mentions) {
    if (typeof m === 'string') assert.ok(out.includes(m), `the error output should mention ${JSON.stringify(m)}:\n${out}`);
    else assert.match(out, m);
  }
  assert.equal(r.portWasOpen, false, `the telemetry port was bound although the config is invalid\n${out}`);
}

describe('broken configurations are refused before anything starts', () => {
  test('a wrong type names the key', async () => {
    const { file, port } = await writeBroken((c) => (c.receivers.taskstats.collection_interval = [1, 2]));
    assertRefused(await runWatchingPort(file, port), 'receivers.taskstats.collection_interval');
  });

  test('a negative duration names the key', async () => {
    const { file, port } = await writeBroken((c) => (c.receivers.taskstats.collection_interval = '-5s'));
    assertRefused(await runWatchingPort(file, port), 'receivers.taskstats.collection_interval');
  });

  test('a negative duration in an exporter names the key', async () => {
    const { file, port } = await writeBroken((c) => (c.exporters.otlp.timeout = '-1s'));
    assertRefused(await runWatchingPort(file, port), 'exporters.otlp.timeout');
  });

  test('a URL that is not one names the key and the value', async () => {
    const { file, port } = await writeBroken((c) => (c.exporters.otlp.metrics_endpoint = 'http//collector:4318'));
    assertRefused(await runWatchingPort(file, port), 'metrics_endpoint', 'http//collector:4318');
  });

  test('a URL with a scheme other than http(s) is refused', async () => {
    const { file, port } = await writeBroken((c) => (c.exporters.otlp.metrics_endpoint = 'ftp://collector:4318/v1/metrics'));
    assertRefused(await runWatchingPort(file, port), 'metrics_endpoint');
  });

  test('an unknown component type is named', async () => {
    const { file, port } = await writeBroken((c) => {
      c.processors = { nosuchprocessor: {} };
      c.service.pipelines.metrics.processors = ['nosuchprocessor'];
    });
    assertRefused(await runWatchingPort(file, port), 'nosuchprocessor');
  });

  test('a pipeline naming a component that is not configured is refused', async () => {
    const { file, port } = await writeBroken((c) => (c.service.pipelines.metrics.exporters = ['otlp', 'otlp/missing']));
    assertRefused(await runWatchingPort(file, port), 'service.pipelines.metrics.exporters', 'otlp/missing');
  });

  test('an unknown key is named', async () => {
    const { file, port } = await writeBroken((c) => (c.receivers.taskstats.colection_interval = '1s'));
    assertRefused(await runWatchingPort(file, port), 'colection_interval');
  });

  test('every problem is reported at once', async () => {
    const { file, port } = await writeBroken((c) => {
      c.receivers.taskstats.collection_interval = '-1s';
      c.exporters.otlp.metrics_endpoint = 'not a url';
      c.service.pipelines.metrics.processors = ['ghost'];
    });
    assertRefused(await runWatchingPort(file, port), 'collection_interval', 'not a url', 'ghost');
  });

  test('a YAML syntax error gives the line', async () => {
    const port = await freePort();
    const file = join(dir, 'syntax.yaml');
    writeFileSync(
      file,
      `service:\n  telemetry:\n    metrics:\n      address: 127.0.0.1:${port}\n  pipelines:\n    metrics:\n      receivers: [taskstats\nreceivers:\n  taskstats: {}\n`,
    );
    assertRefused(await runWatchingPort(file, port), /line \d+|:\d+:\d+/);
  });

  test('a missing file is named', async () => {
    const port = await freePort();
    const file = join(dir, 'does-not-exist.yaml');
    assertRefused(await runWatchingPort(file, port), file);
  });

  test('a directory instead of a file is named', async () => {
    const port = await freePort();
    const sub = join(dir, 'a-directory.yaml');
    mkdirSync(sub);
    assertRefused(await runWatchingPort(sub, port), sub);
  });

  test('a file the agent may not read is named (run as nobody)', { skip: needs('root') }, async () => {
    const { file, port } = await writeBroken(() => {});
    chmodSync(file, 0o600); // root's, unreadable for nobody
    assertRefused(await runWatchingPort(file, port, AS_NOBODY_WITHOUT_CAPS), file);
  });
});
