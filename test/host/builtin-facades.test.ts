/**
 * src/builtin-facades.ts: after importHttpWithoutUndici(), an ES module import of node:http (as
 * the OpenTelemetry HTTP exporters do) no longer loads undici, and node:http itself is unchanged.
 * Checked in a fresh node process (a built-in's namespace is made once per process).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../support/workload.js';

const facades = pathToFileURL(join(repoRoot, 'dist/src/builtin-facades.js')).href;

function run(script: string): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const probe = `
  const undici = () => process.moduleLoadList.includes('NativeModule internal/deps/undici/undici');
  const ns = await import('node:http');
  const out = { afterImport: undici(), nsWebSocket: typeof ns.WebSocket, nsCreateServer: typeof ns.createServer };
  const { createRequire } = await import('node:module');
  out.requireWebSocket = typeof createRequire(import.meta.url)('node:http').WebSocket;
  out.afterRequireWebSocket = undici();
  console.log(JSON.stringify(out));`;

test('without it, an ES module import of node:http loads undici (what the function avoids)', () => {
  const r = run(probe);
  assert.equal(r.afterImport, true);
  assert.equal(r.nsWebSocket, 'function');
});

test('after importHttpWithoutUndici(), importing node:http loads no undici; node:http keeps its lazy exports', () => {
  const r = run(`const { importHttpWithoutUndici } = await import(${JSON.stringify(facades)});\nawait importHttpWithoutUndici();\n${probe}`);
  assert.equal(r.afterImport, false);
  assert.equal(r.nsCreateServer, 'function');
  assert.equal(r.nsWebSocket, 'undefined', 'the namespace is made without the undici exports');
  // Put back: require('node:http').WebSocket still works (and only then loads undici).
  assert.equal(r.requireWebSocket, 'function');
  assert.equal(r.afterRequireWebSocket, true);
});
