/**
 * The results ring's writer and reader against each other in one thread: what is published is
 * what is read, in order, across the arena's wrap; a full ring drops (and counts) instead of
 * overwriting; the exec numbers tell a pending exec from an applied one.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  EXEC_RESULT_CGROUP,
  EXEC_RESULT_DETAILS,
  ExecNumbers,
  RESULT_SLOTS,
  ResultRingReader,
  ResultRingWriter,
  S_DROPPED,
  S_MISSED,
  newWatcherShared,
} from './exec-result-ring.js';

interface Got {
  tgid: number;
  seq: number;
  what: number;
  cgroup: string;
  exePath: string;
  cmdline: string;
}

function ring() {
  const shared = newWatcherShared(4096);
  let nudges = 0;
  const writer = new ResultRingWriter(shared.ring, shared.counters, () => nudges++);
  const reader = new ResultRingReader(shared.ring);
  const got: Got[] = [];
  const drain = () => reader.drain((tgid, seq, what, cgroup, exePath, cmdline) => got.push({ tgid, seq, what, cgroup, exePath, cmdline }));
  const publish = (tgid: number, seq: number, what: number, cgroup: string, exe = '', cmd = '') => {
    const cg = Buffer.from(`xx${cgroup}yy`);
    const e = Buffer.from(exe);
    const c = Buffer.from(cmd);
    writer.publish(tgid, seq, what, cg, 2, 2 + Buffer.byteLength(cgroup), e, e.length, c, c.length);
  };
  return { shared, writer, reader, got, drain, publish, nudges: () => nudges };
}

describe('exec result ring', () => {
  test('results come out as they went in, in order, with each kind of result', () => {
    const r = ring();
    assert.equal(r.reader.pending, false);
    r.publish(10, 1, EXEC_RESULT_CGROUP | EXEC_RESULT_DETAILS, '/a.slice/x', '/bin/x', 'x --y');
    r.publish(11, 2, EXEC_RESULT_CGROUP, '/a.slice/x');
    r.publish(11, 2, EXEC_RESULT_DETAILS, '', '/usr/bin/é', 'é');
    r.publish(12, 3, EXEC_RESULT_CGROUP, '/b');
    assert.equal(r.reader.pending, true);
    r.drain();
    assert.equal(r.reader.pending, false);
    assert.deepEqual(r.got, [
      { tgid: 10, seq: 1, what: 3, cgroup: '/a.slice/x', exePath: '/bin/x', cmdline: 'x --y' },
      { tgid: 11, seq: 2, what: 1, cgroup: '/a.slice/x', exePath: '', cmdline: '' },
      { tgid: 11, seq: 2, what: 2, cgroup: '', exePath: '/usr/bin/é', cmdline: 'é' },
      { tgid: 12, seq: 3, what: 1, cgroup: '/b', exePath: '', cmdline: '' },
    ]);
    assert.equal(r.nudges(), 0, 'no nudge below half full');
  });

  test('the arena wraps: long results far beyond its size, drained as they go', () => {
    const r = ring();
    const arenaBytes = r.shared.ring.arena.length;
    const long = '/' + 'c'.repeat(3000);
    let total = 0;
    for (let i = 0; total < 3 * arenaBytes; i++) {
      r.publish(i + 1, i + 1, EXEC_RESULT_CGROUP | EXEC_RESULT_DETAILS, `${long}${i}`, `/bin/${i}`, 'a'.repeat(4000));
      total += long.length + 4000;
      if (i % 50 === 0) r.drain();
    }
    r.drain();
    assert.equal(r.shared.counters[S_DROPPED], 0);
    r.got.forEach((g, i) => {
      assert.equal(g.cgroup, `${long}${i}`);
      assert.equal(g.exePath, `/bin/${i}`);
      assert.equal(g.cmdline.length, 4000);
    });
  });

  test('a full ring drops new results (counted, misses when they carried the cgroup) and nudges the reader', () => {
    const r = ring();
    for (let i = 0; i < RESULT_SLOTS + 3; i++) r.publish(i + 1, i + 1, EXEC_RESULT_CGROUP, '/c');
    r.publish(99_999, 1, EXEC_RESULT_DETAILS, '', '/bin/d', 'd');
    assert.equal(r.shared.counters[S_DROPPED], 4);
    assert.equal(r.shared.counters[S_MISSED], 3, 'details alone are no miss');
    assert.ok(r.nudges() >= 1);
    r.drain();
    assert.equal(r.got.length, RESULT_SLOTS);
    assert.equal(r.got.at(-1)!.tgid, RESULT_SLOTS, 'the oldest are kept, never overwritten');
    r.publish(5, 5, EXEC_RESULT_CGROUP, '/after');
    r.drain();
    assert.equal(r.got.at(-1)!.cgroup, '/after', 'results flow again once drained');
  });

  test('exec numbers: a later exec of the same process is pending, another process in the slot hides nothing older', () => {
    const n = new ExecNumbers();
    const a = n.next(100);
    assert.equal(n.current(), a);
    assert.equal(n.isLatest(100, a), true);
    assert.equal(n.after(100, a), false);
    const b = n.next(100);
    assert.equal(n.after(100, a), true, 'an exec after the one applied');
    assert.equal(n.isLatest(100, a), false);
    assert.equal(n.isLatest(100, b), true);
    assert.equal(n.seen(100), true);
    assert.equal(n.seen(101), false);
    n.next(100 + (1 << 16)); // the same slot
    assert.equal(n.seen(100), false);
  });
});
