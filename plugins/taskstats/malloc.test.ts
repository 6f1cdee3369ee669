/**
 * The receiver's malloc settings (malloc.ts) on this process's real glibc: the defaults, the
 * environment variables winning, and malloc_trim giving freed memory inside an arena back to the
 * kernel (what keeps the agent's RSS near what it uses; RssAnon from /proc is the truth).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MALLOC_SETTINGS, tuneMalloc } from './malloc.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function rssAnonKb(): number {
  return Number(/RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

test('the defaults apply; a MALLOC_* variable given wins', () => {
  const defaults = tuneMalloc({});
  assert.ok(!('reason' in defaults), 'reason' in defaults ? defaults.reason : '');
  assert.deepEqual(defaults.applied, Object.fromEntries(MALLOC_SETTINGS.map((s) => [s.name, s.value])));
  const given = tuneMalloc({ MALLOC_ARENA_MAX: '4', MALLOC_MMAP_THRESHOLD_: ' 262144 ', MALLOC_TRIM_THRESHOLD_: 'lots' });
  assert.ok(!('reason' in given));
  assert.equal(given.applied.arena_max, 4);
  assert.equal(given.applied.mmap_threshold, 262144);
  assert.equal(given.applied.trim_threshold, MALLOC_SETTINGS[2].value, 'not a number: the default');
  tuneMalloc({});
});

test('trim() returns the free pages inside the arena to the kernel', async () => {
  const tuning = tuneMalloc({});
  assert.ok(!('reason' in tuning));
  // 24 MB in 4 KB blocks (below the mmap threshold: from the arena), 7 of every 8 freed: the
  // free runs sit between live blocks, where no automatic trim (only the arena's top) reaches.
  const kept: Buffer[] = [];
  const blocks: Buffer[] = [];
  for (let i = 0; i < 6000; i++) blocks.push(Buffer.alloc(4096, 1));
  for (let i = 0; i < blocks.length; i += 8) kept.push(blocks[i]!);
  blocks.length = 0;
  gc();
  gc();
  await new Promise((r) => setTimeout(r, 200)); // V8 frees array buffers' memory on a helper thread
  const before = rssAnonKb();
  const seconds = tuning.trim();
  const after = rssAnonKb();
  assert.ok(seconds >= 0, `trim reports its own duration (${seconds} s)`);
  assert.ok(before - after > 8 * 1024, `RssAnon ${before} kB before trim, ${after} kB after: less than 8 MB returned`);
  assert.equal(kept.length, 750);
  assert.ok(
    kept.every((b) => b[0] === 1 && b[4095] === 1),
    'the kept blocks are intact',
  );
});
