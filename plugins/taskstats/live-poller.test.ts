/**
 * The live sweep's cheap paths against the real kernel (run as root): replies read many at a time
 * with recvmmsg, /proc listed with getdents64, idle processes served from the cache, and the
 * explicit record copy. What a sweep delivers must be what a full query gives.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LivePoller } from './live-poller.js';
import { listProcessIds, listProcessIdsYielding } from './proc-listing.js';
import { TaskstatsSocket } from './libnl.js';
import { DatagramBatch } from './libc.js';
import { TaskstatsParser, PARSED_TGID, PARSE_NETLINK_ERROR } from './parser.js';
import { copyTaskRecord, newTaskRecord, type TaskRecord } from './record.js';
import { RECORD_NUMBERS, RecordRows, loadRecordNumbers, storeRecordNumbers } from './record-store.js';
import { needs } from '../../test/support/caps.js';
import { compileC } from '../../test/support/workload.js';

const children: ChildProcess[] = [];
function sleeper(): ChildProcess {
  const c = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(c);
  return c;
}
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('live sweep building blocks', { timeout: 60_000 }, () => {
  test('copyTaskRecord copies every field of a TaskRecord', () => {
    const src = newTaskRecord() as unknown as Record<string, unknown>;
    let i = 1;
    for (const k of Object.keys(src)) {
      const v = src[k];
      src[k] = typeof v === 'number' ? 1000 + i++ : typeof v === 'boolean' ? true : `${k}-${i++}`;
    }
    src.kind = 'exit';
    src.aggregate = 'tgid';
    const dst = newTaskRecord();
    assert.equal(copyTaskRecord(src as unknown as TaskRecord, dst), dst);
    assert.deepEqual(dst, src);
    assert.deepEqual(copyTaskRecord(src as unknown as TaskRecord), src);
  });

  test('the cache rows keep every number of a TaskRecord, each in its own column', () => {
    const src = newTaskRecord() as unknown as Record<string, unknown>;
    let i = 1;
    const numbers: string[] = [];
    for (const k of Object.keys(src)) {
      if (typeof src[k] !== 'number') continue;
      src[k] = 2 ** 53 - i++; // distinct, and beyond what a heap-number-free Smi holds
      numbers.push(k);
    }
    assert.equal(numbers.length, RECORD_NUMBERS);
    const rows = new RecordRows(RECORD_NUMBERS + 1, 1);
    const first = rows.alloc();
    const o = rows.alloc(); // the array grows: offsets stay valid
    rows.f.fill(-7);
    storeRecordNumbers(src as unknown as TaskRecord, rows.f, o);
    const dst = newTaskRecord();
    loadRecordNumbers(rows.f, o, dst);
    for (const k of numbers) assert.equal((dst as unknown as Record<string, unknown>)[k], src[k], k);
    assert.ok(
      rows.f.subarray(first, first + RECORD_NUMBERS + 1).every((v) => v === -7),
      'another row was written',
    );
    assert.equal(rows.f[o + RECORD_NUMBERS], -7, "the caller's column was written");
    rows.release(first);
    assert.equal(rows.alloc(), first);
    assert.equal(rows.size, 2);
  });

  test('listProcessIds: the numeric entries of a directory, and of /proc', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ts-procroot-'));
    try {
      for (const d of ['1', '22', '4194304', '333abc', 'abc', 'self', '2147483648', '99999999999']) mkdirSync(join(dir, d));
      writeFileSync(join(dir, '7'), ''); // a file named like a pid still names one in a fake root
      // a small id array: it must grow
      const r = listProcessIds(dir, new Int32Array(1), Buffer.alloc(4096));
      assert.deepEqual(
        [...r.ids.subarray(0, r.count)].sort((a, b) => a - b),
        [1, 7, 22, 4194304],
      );
      // the sweep's variant: one getdents64() per ~1 entry here (a 40-byte buffer), yielding after each
      const y = await listProcessIdsYielding(dir, new Int32Array(1), Buffer.alloc(40), 0);
      assert.deepEqual(
        [...y.ids.subarray(0, y.count)].sort((a, b) => a - b),
        [1, 7, 22, 4194304],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const before = new Set(
      readdirSync('/proc')
        .filter((n) => /^\d+$/.test(n))
        .map(Number),
    );
    // a tiny buffer: many getdents64 calls
    const r = listProcessIds('/proc', new Int32Array(16), Buffer.alloc(512));
    const after = new Set(
      readdirSync('/proc')
        .filter((n) => /^\d+$/.test(n))
        .map(Number),
    );
    const listed = new Set(r.ids.subarray(0, r.count));
    assert.equal(listed.size, r.count, 'no duplicates');
    for (const id of before) if (after.has(id)) assert.ok(listed.has(id), `pid ${id} listed`);
    // A process may live only while the listing runs (a fork storm elsewhere on the host): an id
    // outside both readdirs is no error, but it must be a pid the kernel could have given
    // (PID_MAX_LIMIT on 64-bit: /proc/sys/kernel/pid_max can be lower than pids seen here).
    for (const id of listed) assert.ok(id >= 1 && id <= 4194304, `pid ${id} within 1..4194304`);
    assert.throws(() => listProcessIds('/nonexistent-proc-root', new Int32Array(4), Buffer.alloc(512)), /cannot open \/nonexistent-proc-root/);
  });

  test('recvMany: many GET replies in one call, the same bytes as one recv() each', { skip: needs('root', 'taskstats', 'libnl') }, () => {
    const sock = TaskstatsSocket.open({ receiveBuffer: 4 << 20 });
    try {
      const parser = new TaskstatsParser(sock.familyId);
      const ids = [process.pid, 1, 0x7ffffff0, process.pid, 1];
      // one recv() per reply
      const one = Buffer.alloc(4096);
      const single: Buffer[] = [];
      let first = sock.sendGets('tgid', ids, 0, ids.length);
      assert.ok(first > 0);
      for (let i = 0; i < ids.length; i++) {
        const n = sock.recv(one);
        assert.ok(n > 0, `reply ${i}: ${n}`);
        single.push(Buffer.from(one.subarray(0, n)));
      }
      // all at once; a batch smaller than the replies takes two calls
      const batch = new DatagramBatch(3, 2048);
      first = sock.sendGets('tgid', ids, 0, ids.length);
      const many: Buffer[] = [];
      let calls = 0;
      while (many.length < ids.length && calls < 10) {
        const n = sock.recvMany(batch);
        calls++;
        assert.ok(n > 0, `recvMany ${n}`);
        for (let i = 0; i < n; i++) {
          assert.equal(batch.truncated(i), false);
          many.push(Buffer.from(batch.buf.subarray(i * batch.slotBytes, i * batch.slotBytes + batch.length(i))));
        }
      }
      assert.equal(calls, 2);
      assert.equal(sock.recvMany(batch), -11, 'then EAGAIN');
      assert.equal(many.length, ids.length);
      for (let i = 0; i < ids.length; i++) {
        assert.equal(many[i]!.length, single[i]!.length, `reply ${i} length`);
        // same message apart from the sequence number (and the CPU counters of a running process)
        assert.equal(parser.seqOf(many[i]!, 0), first + i);
        const st = parser.locate(many[i]!, 0, many[i]!.length);
        if (ids[i] === 0x7ffffff0) {
          assert.equal(st, PARSE_NETLINK_ERROR);
          assert.equal(parser.errno, 3, 'ESRCH');
        } else {
          assert.equal(st, PARSED_TGID);
          assert.equal(parser.id, ids[i]);
        }
      }
      // a slot too small for a reply: seen as truncated
      const small = new DatagramBatch(1, 64);
      sock.sendGets('tgid', [process.pid], 0, 1);
      assert.equal(sock.recvMany(small), 1);
      assert.equal(small.truncated(0), true);
      assert.equal(small.length(0), 64);
    } finally {
      sock.close();
    }
  });
});

describe('live sweep: idle processes from the cache', { timeout: 60_000, skip: needs('root', 'taskstats', 'libnl') }, () => {
  test('an idle process is served from the cache with exactly what a full query reads', async () => {
    const idle = sleeper();
    await new Promise((r) => setTimeout(r, 300));
    const p = new LivePoller({ batch: 16 });
    p.open();
    try {
      const first = await p.sweep(() => {});
      assert.equal(first.cached, 0);
      let cachedRec: TaskRecord | undefined;
      let idleFlags = 0;
      const second = await p.sweep((r, isIdle) => {
        if (isIdle) idleFlags++;
        if (r.tgid === idle.pid) {
          cachedRec = copyTaskRecord(r);
          assert.equal(isIdle, true, 'flagged idle');
        }
        // consumers may write into the record: that must not reach the cache
        r.comm = 'written-by-a-consumer';
        r.userUs += 1e9;
      });
      assert.ok(second.cached > 0 && second.cached > second.records / 2, `${second.cached} of ${second.records} from the cache`);
      assert.equal(idleFlags, second.cached, 'exactly the cached records are flagged idle');
      assert.equal(second.errors, 0);
      assert.equal(second.records + second.vanished, second.listed);
      // Two records parsed per process that ran (its group's and its leader's), none per cached one
      // (a vanished process may have had one or two parsed before it was gone).
      for (const s of [first, second]) {
        const ran = s.records - s.cached;
        assert.ok(s.parsed >= 2 * ran && s.parsed <= 2 * (ran + s.vanished), `${s.parsed} parsed for ${ran} processes that ran, ${s.vanished} vanished`);
      }
      assert.ok(cachedRec, 'the idle process was delivered');
      const fresh = p.query(idle.pid!, newTaskRecord());
      assert.ok(fresh);
      assert.ok(Math.abs(cachedRec.elapsedUs - fresh.elapsedUs) < 2e6, `elapsed ${cachedRec.elapsedUs} vs ${fresh.elapsedUs}`);
      assert.ok(Math.abs(cachedRec.groupElapsedUs - fresh.groupElapsedUs) < 2e6, `group elapsed ${cachedRec.groupElapsedUs} vs ${fresh.groupElapsedUs}`);
      // The kernel computes a live process's ac_btime at each query as now - elapsed, truncated to
      // seconds: two queries of one process may differ by one second (seen here).
      assert.ok(Math.abs(cachedRec.startTimeSec - fresh.startTimeSec) <= 1, `start ${cachedRec.startTimeSec} vs ${fresh.startTimeSec}`);
      const same = { elapsedUs: 0, groupElapsedUs: 0, startTimeSec: 0 };
      assert.deepEqual({ ...cachedRec, ...same }, { ...fresh, ...same }, 'cached = fresh full query');
      assert.equal(cachedRec.comm, 'sleep');
      // and a third sweep still serves the untouched values
      let third: TaskRecord | undefined;
      await p.sweep((r) => {
        if (r.tgid === idle.pid) third = copyTaskRecord(r);
      });
      assert.ok(third);
      assert.equal(third.comm, 'sleep');
      assert.equal(third.userUs, fresh.userUs);
    } finally {
      p.close();
    }
  });

  test(
    "a multi-threaded process: the group's I/O and faults are what /proc says, dead threads included",
    { skip: needs('root', 'taskstats', 'libnl', 'cc') },
    async () => {
      // A thread reads, writes and faults pages, then ends; the process sleeps after "ready".
      const bin = compileC(
        `#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
static void *work(void *a) {
  (void)a;
  char buf[65536];
  int z = open("/dev/zero", O_RDONLY), n = open("/dev/null", O_WRONLY);
  for (int i = 0; i < 7; i++) { if (read(z, buf, sizeof buf) < 0 || write(n, buf, sizeof buf) < 0) exit(1); }
  close(z); close(n);
  // 2,048 pages, each its own fault (no transparent huge page).
  char *m = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(m, 8 << 20, MADV_NOHUGEPAGE);
  memset(m, 1, 8 << 20);
  munmap(m, 8 << 20);
  return NULL;
}
int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, work, NULL);
  pthread_join(t, NULL);
  printf("ready\\n"); fflush(stdout);
  pause();
  return 0;
}
`,
        'threaded-io',
        ['-pthread'],
      );
      const c = spawn(bin, [], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      await new Promise<void>((r) => c.stdout.once('data', () => r()));
      const p = new LivePoller();
      p.open();
      try {
        let rec: TaskRecord | undefined;
        await p.sweep((r) => {
          if (r.tgid === c.pid) rec = copyTaskRecord(r);
        });
        assert.ok(rec, 'the process was delivered');
        // The truth: the kernel's /proc files, split here; the kernel rounds the taskstats I/O
        // fields to KiB (xacct_add_tsk's KB_MASK), and the sweep does the same for the group.
        const io = Object.fromEntries(
          readFileSync(`/proc/${c.pid}/io`, 'latin1')
            .trim()
            .split('\n')
            .map((l) => l.split(': ') as [string, string]),
        );
        const kb = (v: string | undefined) => Number(v) - (Number(v) % 1024);
        const stat = readFileSync(`/proc/${c.pid}/stat`, 'latin1');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state)
        assert.deepEqual(
          {
            readChar: rec.readCharBytes,
            writeChar: rec.writeCharBytes,
            syscr: rec.readSyscalls,
            syscw: rec.writeSyscalls,
            readBytes: rec.readBytes,
            writeBytes: rec.writeBytes,
            cancelled: rec.cancelledWriteBytes,
            minflt: rec.minorFaults,
            majflt: rec.majorFaults,
          },
          {
            readChar: kb(io.rchar),
            writeChar: kb(io.wchar),
            syscr: kb(io.syscr),
            syscw: kb(io.syscw),
            readBytes: kb(io.read_bytes),
            writeBytes: kb(io.write_bytes),
            cancelled: kb(io.cancelled_write_bytes),
            minflt: Number(fields[10 - 3]),
            majflt: Number(fields[12 - 3]),
          },
        );
        assert.ok(rec.writeCharBytes >= 7 * 65536, `the ended thread's writes are counted: ${rec.writeCharBytes}`);
        assert.ok(rec.minorFaults >= 2048, `the ended thread's faults are counted: ${rec.minorFaults}`);
      } finally {
        p.close();
      }
    },
  );

  test('a process that ran is read again; one that ended is forgotten', async () => {
    // perl burns a little CPU on each SIGUSR1 and sleeps otherwise.
    const busy = spawn('perl', ['-e', '$|=1; $SIG{USR1} = sub { my $x = 0; $x += $_ for 1..300000; print "done\\n" }; print "ready\\n"; sleep 1 while 1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(busy);
    await new Promise<void>((r) => busy.stdout.once('data', () => r()));
    const gone = sleeper();
    await new Promise((r) => setTimeout(r, 200));
    const p = new LivePoller();
    p.open();
    try {
      const cpu = new Map<number, number>();
      await p.sweep((r) => cpu.set(r.tgid, r.cpuRunRealNs));
      const before = cpu.get(busy.pid!)!;
      assert.ok(cpu.has(gone.pid!));
      busy.kill('SIGUSR1');
      await new Promise<void>((r) => busy.stdout.once('data', () => r()));
      gone.kill('SIGKILL');
      await new Promise<void>((r) => gone.once('exit', () => r()));
      const seen = new Set<number>();
      await p.sweep((r, isIdle) => {
        seen.add(r.tgid);
        cpu.set(r.tgid, r.cpuRunRealNs);
        if (r.tgid === busy.pid) assert.equal(isIdle, false, 'a process that ran is not idle');
      });
      assert.ok(cpu.get(busy.pid!)! > before + 1e6, `CPU ${before} -> ${cpu.get(busy.pid!)} ns`);
      assert.ok(!seen.has(gone.pid!), 'a reaped process is not delivered');
      assert.ok(p.cacheSize <= seen.size, `cache ${p.cacheSize} <= ${seen.size} live`);
    } finally {
      p.close();
    }
  });
});
