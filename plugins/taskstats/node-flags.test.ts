// test-requires: root taskstats libnl
/**
 * Operators cap the agent's heap with V8 flags (`node --max-old-space-size=96 bin/taskstats-agent`,
 * or in a container's command). The receiver's exec-watcher worker must still start: a worker
 * refuses V8 and process-wide flags in its execArgv, so it must not inherit them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../../bin/taskstats-agent', import.meta.url));

test(
  'the agent starts with V8 heap flags on the node command line (root)',
  { skip: process.getuid?.() !== 0 ? 'needs root (CAP_NET_ADMIN)' : false, timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'node-flags-'));
    try {
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          'receivers:',
          '  taskstats: {collection_interval: 1s}',
          'exporters:',
          '  debug: {verbosity: basic}',
          'service:',
          '  telemetry: {metrics: {address: ""}, logs: {encoding: json}}',
          '  pipelines:',
          '    metrics: {receivers: [taskstats], exporters: [debug]}',
          '',
        ].join('\n'),
      );
      const child = spawn(process.execPath, ['--max-old-space-size=128', '--max-semi-space-size=2', bin, 'run', '--config', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.resume();
      const started = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 30_000);
        child.stderr.on('data', () => {
          if (stderr.includes('taskstats-agent started')) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        child.once('exit', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      assert.ok(started, `the agent did not start:\n${stderr}`);
      assert.doesNotMatch(stderr, /ERR_WORKER_INVALID_EXEC_ARGV/);
      assert.equal(code, 0, stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
