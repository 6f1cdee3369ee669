#!/usr/bin/env node
// Runs the compiled test files (dist/) with node's test runner.
// Usage: node scripts/run-tests.mjs [--build] [substring ...]
//   --build      clean build first (`npm run build` removes dist/), counted in the duration
//   substring    only files whose path contains one of them
// Tests share the machine's two cores and the kernel's exit stream, so files run one at a time:
// a fork-loop test running next to another would measure the other's load, not the agent.
//
// Preflight: scripts/preflight.mjs probes root, the TASKSTATS family, cgroup v2, libnl and a C
// compiler once; what is missing is named once. A file declaring `// test-requires: root cc`
// in its first lines is skipped (and counted) when one of them is missing; every file gets the
// result in TEST_CAPS / TEST_CAPS_MISSING (test/support/caps.ts) for tests that need one.
// The closing line: tests passed / failed / skipped (with reasons), files, total duration.
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { CAPABILITIES, preflight } from './preflight.mjs';

const started = Date.now();
const root = fileURLToPath(new URL('..', import.meta.url));
// Run on the Node.js the repository pins (node_modules/.bin/node), also when started as
// `node scripts/run-tests.mjs` with another node first on PATH.
const pinned = join(root, 'node_modules', '.bin', 'node');
if (existsSync(pinned) && realpathSync(pinned) !== realpathSync(process.execPath)) {
  const again = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TEST_RUN_STARTED: String(process.env.TEST_RUN_STARTED ?? started) },
  });
  process.exit(again.status ?? 1);
}
const t0 = Number(process.env.TEST_RUN_STARTED ?? started);
let args = process.argv.slice(2);
if (args[0] === '--build') {
  args = args.slice(1);
  const npm = process.env.npm_execpath;
  const b = npm
    ? spawnSync(process.execPath, [npm, 'run', 'build'], { stdio: 'inherit', cwd: root })
    : spawnSync('npm', ['run', 'build'], { stdio: 'inherit', cwd: root });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
console.log(`# node ${process.version} (${process.execPath})`);

const { caps, missing } = preflight();
console.log(`# preflight: ${caps.length > 0 ? caps.join(', ') : 'nothing'} present`);
for (const [cap, why] of Object.entries(missing)) console.log(`# preflight: ${cap} missing: ${why}`);

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
// A compiled test whose source is gone (a stale dist/) must not run.
const stale = files.filter((f) => {
  const src = join(root, relative(dist, f)).replace(/\.js$/, '');
  return !existsSync(`${src}.ts`) && !existsSync(`${src}.mts`);
});
if (stale.length > 0) {
  console.error(`stale dist/: ${stale.map((f) => relative(root, f)).join(', ')} have no source; run with --build (npm test does)`);
  process.exit(1);
}
const selected = files.filter((f) => args.length === 0 || args.some((s) => relative(root, f).includes(s))).sort();
if (selected.length === 0) {
  console.error('no test files matched', args.join(' '));
  process.exit(1);
}

/** Capabilities a file declares on a `// test-requires:` line in its first 30 lines. */
function requires(file) {
  const head = readFileSync(file, 'utf8').split('\n', 30);
  for (const line of head) {
    const m = /^\s*\/\/\s*test-requires:(.*)$/.exec(line);
    if (!m) continue;
    const wanted = m[1]
      .trim()
      .split(/[\s,]+/)
      .filter((w) => w !== '');
    for (const w of wanted)
      if (!CAPABILITIES.includes(w)) throw new Error(`${relative(root, file)}: unknown capability '${w}' (known: ${CAPABILITIES.join(' ')})`);
    return wanted;
  }
  return [];
}
const toRun = [];
const skippedFiles = new Map(); // capability -> files skipped for it
for (const f of selected) {
  const lack = requires(f).find((c) => !caps.includes(c));
  if (lack === undefined) toRun.push(f);
  else skippedFiles.set(lack, [...(skippedFiles.get(lack) ?? []), relative(root, f)]);
}
for (const [cap, list] of skippedFiles) console.log(`# skipped for lack of ${cap} (${list.length} files): ${list.join(' ')}`);

const out = mkdtempSync(join(tmpdir(), 'taskstats-tests-'));
const summaryFile = join(out, 'summary.json');
let status = 0;
if (toRun.length > 0) {
  const r = spawnSync(
    process.execPath,
    [
      '--test',
      '--test-concurrency=1',
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      `--test-reporter=${join(root, 'scripts', 'test-summary.mjs')}`,
      `--test-reporter-destination=${summaryFile}`,
      ...toRun,
    ],
    {
      stdio: 'inherit',
      cwd: root,
      env: { ...process.env, TEST_CAPS: caps.join(','), TEST_CAPS_MISSING: JSON.stringify(missing) },
    },
  );
  status = r.status ?? 1;
}
let s = { passed: 0, failed: 0, skipped: 0, reasons: {} };
try {
  s = JSON.parse(readFileSync(summaryFile, 'utf8'));
} catch {
  if (toRun.length > 0) status = status || 1;
}
rmSync(out, { recursive: true, force: true });
const reasons = Object.entries(s.reasons)
  .sort((a, b) => b[1] - a[1])
  .map(([why, n]) => `${n} ${why}`);
const fileSkips = [...skippedFiles].map(([cap, list]) => `${list.length} for lack of ${cap}`);
const seconds = ((Date.now() - t0) / 1000).toFixed(1);
console.log(
  `# tests ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}, ` +
    `files ${selected.length}${fileSkips.length > 0 ? ` (${fileSkips.join(', ')} not run)` : ''}, duration ${seconds} s`,
);
process.exit(status !== 0 || s.failed > 0 ? 1 : 0);
