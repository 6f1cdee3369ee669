/**
 * docs/errors.md against the catalogue of src/api/errors.ts: every error code and drop reason has
 * its row, with the catalogue's text, and the doc has no row the catalogue lacks. On a mismatch
 * the message carries the expected table, to paste into the doc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DROP_CATALOGUE, DropReason, ERROR_CATALOGUE, ErrorCode } from '../../src/api/index.js';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

/** The lines between `<!-- name:begin -->` and `<!-- name:end -->`. */
function section(name: string): string {
  const m = new RegExp(`<!-- ${name}:begin -->\\n([\\s\\S]*?)<!-- ${name}:end -->`).exec(doc);
  assert.ok(m, `docs/errors.md has no ${name} section`);
  return m[1]!.trim();
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

test('docs/errors.md lists every error code with its meaning and remedy, in catalogue order', () => {
  const rows = Object.values(ErrorCode).map((code) => `| \`${code}\` | ${cell(ERROR_CATALOGUE[code].meaning)} | ${cell(ERROR_CATALOGUE[code].remedy)} |`);
  const expected = ['| code | meaning | what to do |', '| --- | --- | --- |', ...rows].join('\n');
  assert.equal(section('error-codes'), expected, `expected table:\n${expected}`);
});

test('docs/errors.md lists every drop reason with who counts it and its meaning, in catalogue order', () => {
  const rows = Object.values(DropReason).map((r) => `| \`${r}\` | ${cell(DROP_CATALOGUE[r].by)} | ${cell(DROP_CATALOGUE[r].meaning)} |`);
  const expected = ['| reason | counted by | meaning |', '| --- | --- | --- |', ...rows].join('\n');
  assert.equal(section('drop-reasons'), expected, `expected table:\n${expected}`);
});

test('codes and reasons are unique snake_case, and every one has a catalogue entry', () => {
  for (const values of [Object.values(ErrorCode), Object.values(DropReason)]) {
    assert.equal(new Set(values).size, values.length);
    for (const v of values) assert.match(v, /^[a-z][a-z0-9_]*$/);
  }
  assert.deepEqual(Object.keys(ERROR_CATALOGUE).sort(), [...Object.values(ErrorCode)].sort());
  assert.deepEqual(Object.keys(DROP_CATALOGUE).sort(), [...Object.values(DropReason)].sort());
});
