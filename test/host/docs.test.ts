/**
 * Docs that stay true by themselves: the taskstats README's file table lists the receiver's
 * files, config paths are written as the agent prints them (dots), nothing cites a file outside
 * the repository, the capability table exists once, and relative links lead to files that exist.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const SKIP = new Set(['node_modules', 'dist', '.git', '.cache']);

function files(dir: string, ext: RegExp, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    if (SKIP.has(e)) continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) files(p, ext, out);
    else if (ext.test(e)) out.push(p);
  }
  return out;
}
const markdown = files(root, /\.md$/);
const read = (p: string) => readFileSync(p, 'utf8');

test("plugins/taskstats/README.md's file table names every source file of the receiver, and only those", () => {
  const dir = join(root, 'plugins/taskstats');
  const sources = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  const readme = read(join(dir, 'README.md'));
  const table = readme.slice(readme.indexOf('## How it works (files)'));
  const listed = new Set<string>();
  for (const line of table.split('\n')) {
    if (!line.startsWith('| `')) continue;
    for (const m of line.split('|')[1]!.matchAll(/`([^`]+\.ts)`/g)) listed.add(m[1]!);
  }
  assert.deepEqual(
    sources.filter((f) => !listed.has(f)),
    [],
    'files without a row',
  );
  assert.deepEqual(
    [...listed].filter((f) => !sources.includes(f)),
    [],
    'rows without a file',
  );
});

test('config paths in the docs are written with dots, as the agent prints them', () => {
  for (const f of markdown) {
    const bad = read(f).match(/`[^`\n]*\b(?:receivers|processors|exporters|service)::[^`\n]*`/g);
    assert.equal(bad, null, `${relative(root, f)}: ${bad?.join(', ')}`);
  }
});

test('no file cites a file outside the repository', () => {
  for (const f of [...markdown, ...files(root, /\.(ts|mjs|js|sh|yaml)$/)]) {
    const text = read(f);
    assert.doesNotMatch(text, /\.\.\/\.\.\/\.\.\/shared|taskstats-facts\.md/, relative(root, f));
  }
});

test('the capability table is in one place (docs/security.md)', () => {
  // A row naming the ptrace capability for the executable path: in the table, and only there.
  const row = (line: string) => line.startsWith('|') && line.includes('SYS_PTRACE') && line.includes('executable_path');
  const withTable = markdown.filter((f) => read(f).split('\n').some(row));
  assert.deepEqual(
    withTable.map((f) => relative(root, f)),
    ['docs/security.md'],
  );
});

test('relative links in the docs lead to files that exist', () => {
  for (const f of markdown) {
    for (const m of read(f).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (target === '' || /^[a-z]+:/.test(target)) continue;
      assert.ok(existsSync(join(dirname(f), target)), `${relative(root, f)}: link to ${m[1]} leads nowhere`);
    }
  }
});
