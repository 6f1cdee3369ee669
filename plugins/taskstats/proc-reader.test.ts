/**
 * ProcReader's kept files (a file held open and read again from its start) and a thread's CPU
 * time. The truths: the file's content as written by the test, and the kernel's own per-thread
 * CPU time as getrusage(RUSAGE_THREAD) gives it (process.threadCpuUsage).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcReader } from './proc-reader.js';

/** Some CPU on this thread (the sum keeps the loop from being optimized away). */
function burn(n: number): number {
  let x = 0;
  for (let i = 0; i < n; i++) x += i;
  return x;
}

describe('ProcReader', () => {
  test('a kept file is read from its start each time, with what it holds then', () => {
    const dir = mkdtempSync(join(tmpdir(), 'proc-reader-'));
    const r = new ProcReader();
    try {
      const file = join(dir, 'stat');
      writeFileSync(file, 'usage_usec 12\n');
      const fd = r.openKept(file);
      assert.ok(fd >= 0);
      const into = Buffer.alloc(64);
      assert.equal(into.toString('utf8', 0, r.readKept(fd, into)), 'usage_usec 12\n');
      writeFileSync(file, 'usage_usec 3456\n'); // the same file (inode), new content
      assert.equal(into.toString('utf8', 0, r.readKept(fd, into)), 'usage_usec 3456\n');
      assert.equal(into.toString('utf8', 0, r.readKept(fd, into)), 'usage_usec 3456\n', 'again from offset 0, not at its end');
      r.closeKept(fd);
      assert.equal(r.readKept(fd, into), -1, 'a closed file reads -1, no exception');
      assert.equal(r.openKept(join(dir, 'absent')), -1, 'no such file: -1, no exception');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a kept /proc file follows the kernel: this process's schedstat grows while it runs", () => {
    const r = new ProcReader();
    const fd = r.openKept('/proc/self/schedstat');
    assert.ok(fd >= 0);
    const into = Buffer.alloc(256);
    const runNs = () => Number(into.toString('utf8', 0, r.readKept(fd, into)).split(' ')[0]);
    const a = runNs();
    assert.ok(burn(2e7) > 0);
    const b = runNs();
    r.closeKept(fd);
    assert.ok(a > 0 && b > a, `schedstat ${a} then ${b} ns`);
  });

  test("threadCpuNs: a thread's CPU time, as getrusage(RUSAGE_THREAD) counts it", () => {
    const r = new ProcReader();
    // The main thread's tid is the process id. getrusage's utime + stime of a thread is its
    // scheduler runtime (sum_exec_runtime), split: their sum matches schedstat's, in µs.
    const before = process.threadCpuUsage();
    const ns0 = r.threadCpuNs(process.pid);
    assert.ok(burn(5e7) > 0);
    const ns1 = r.threadCpuNs(process.pid);
    const after = process.threadCpuUsage();
    const rusageUs = after.user + after.system - (before.user + before.system);
    const schedUs = (ns1 - ns0) / 1000;
    assert.ok(ns0 > 0 && schedUs > 0, `schedstat ${ns0} -> ${ns1} ns`);
    // The two reads of each pair are not simultaneous: what runs between them (one read of the
    // other kind) may differ by a few hundred µs.
    assert.ok(Math.abs(schedUs - rusageUs) <= 500, `schedstat grew ${schedUs.toFixed(0)} us, getrusage ${rusageUs} us`);
    assert.equal(r.threadCpuNs(2 ** 22 + 1), 0, 'no such thread: 0');
  });
});
