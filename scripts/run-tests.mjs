#!/usr/bin/env node
// Runs the compiled test files (dist/) with node's test runner.
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one of them)
// Tests share the machine's two cores and the kernel's exit stream, so files run one at a time:
// a fork-loop test running next to another would measure the other's load, not the agent.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
// Run on the Node.js the repository pins (node_modules/.bin/node), also when started as
// `node scripts/run-tests.mjs` with another node first on PATH.
const pinned = join(root, 'node_modules', '.bin', 'node');
if (existsSync(pinned) && realpathSync(pinned) !== realpathSync(process.execPath)) {
  const again = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}
console.log(`# node ${process.version} (${process.execPath})`);
const dist = join(root, 'dist');
const files = [];
function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (e === 'node_modules') continue;
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith('.test.js')) files.push(p);
  }
}
for (const top of ['test', 'plugins', 'src', 'examples']) walk(join(dist, top));
const filters = process.argv.slice(2);
const selected = files.filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s))).sort();
if (selected.length === 0) {
  console.error('no test files matched', filters.join(' '));
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...selected], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status ?? 1);
