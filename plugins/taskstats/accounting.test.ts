/**
 * Unit tests of ProcessAccounting's arithmetic on synthetic TaskRecords shaped like the kernel's
 * (kernel/taskstats.c, seen on 6.18): live TGID readings sum CPU, delays and context
 * switches over living and dead threads and carry whole-process I/O and faults; each ending thread
 * gives a PID record with its own values; the last thread has AGROUP and, when the process had
 * several threads, a TGID record with the group sums (no I/O, faults or memory integrals).
 * Real-kernel accuracy is tested with the receiver.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Sample, SampleBatch } from '../../src/api/index.js';
import { MetricsStage, buildResource } from '../../src/metrics/index.js';
import { RecordingLogger, RecordingTelemetry, valueOf } from '../../src/metrics/testing.js';
import { ProcessAccounting } from './accounting.js';
import { NO_PROCESS_INFO, newTaskRecord, type ProcessInfo, type TaskRecord } from './record.js';
import { PROCESS_SCHEMA, PROCESS_SCHEMA_PER_PROCESS, RAW, RAW_COUNTERS, RAW_SCALE, VALUE } from './schema.js';

const AGROUP = 0x20;
const T0 = 1_700_000_000_000;
const START = 1_700_000_000;

/** Per-thread cumulative counters of the simulation (a subset of TaskRecord's fields). */
interface ThreadCounters {
  userUs: number;
  systemUs: number;
  cpuRunVirtualNs: number;
  voluntaryCtxSwitches: number;
  involuntaryCtxSwitches: number;
  cpuDelayTotalNs: number;
  cpuDelayCount: number;
  blkioDelayTotalNs: number;
  blkioDelayCount: number;
  readBytes: number;
  writeBytes: number;
  minorFaults: number;
  majorFaults: number;
  readCharBytes: number;
  writeCharBytes: number;
  readSyscalls: number;
  writeSyscalls: number;
  cancelledWriteBytes: number;
  coreMemMbUs: number;
  virtMemMbUs: number;
}
const GROUP_FIELDS = [
  'userUs',
  'systemUs',
  'cpuRunVirtualNs',
  'voluntaryCtxSwitches',
  'involuntaryCtxSwitches',
  'cpuDelayTotalNs',
  'cpuDelayCount',
  'blkioDelayTotalNs',
  'blkioDelayCount',
] as const;
const THREAD_FIELDS = [
  'readBytes',
  'writeBytes',
  'minorFaults',
  'majorFaults',
  'readCharBytes',
  'writeCharBytes',
  'readSyscalls',
  'writeSyscalls',
  'cancelledWriteBytes',
  'coreMemMbUs',
  'virtMemMbUs',
] as const;
const ALL_FIELDS = [...GROUP_FIELDS, ...THREAD_FIELDS];

function zero(): ThreadCounters {
  return Object.fromEntries(ALL_FIELDS.map((f) => [f, 0])) as unknown as ThreadCounters;
}

/** The metadata the receiver passes beside each record (ProcessMetadata's answer), by record. */
const INFO = new WeakMap<TaskRecord, ProcessInfo>();
const infoOf = (r: TaskRecord): ProcessInfo => INFO.get(r) ?? NO_PROCESS_INFO;

/** A simulated process: threads that work, end, and a kernel view of them. */
class SimProcess {
  readonly threads = new Map<number, ThreadCounters>();
  readonly dead: ThreadCounters[] = [];
  /** Kernel's signal->stats: exists once a thread ended while others lived. */
  groupStats: ThreadCounters | null = null;
  comm: string;
  cgroup: string;
  /** Simulate kernels whose TGID exit record lacks utime/stime/context switches. */
  groupLacksCpuTimes = false;
  constructor(
    readonly tgid: number,
    readonly start: number,
    comm = 'work',
    cgroup = '/test.slice',
    threads = 1,
  ) {
    this.comm = comm;
    this.cgroup = cgroup;
    for (let i = 0; i < threads; i++) this.threads.set(tgid + i, zero());
  }
  /** The process's metadata, as ProcessMetadata would give it beside each record. */
  get info(): ProcessInfo {
    return { cgroup: this.cgroup, exePath: '', cmdline: '' };
  }
  /** Thread `pid` does some work (each unit moves every counter by a different amount). */
  work(pid: number, units: number): this {
    const t = this.threads.get(pid)!;
    ALL_FIELDS.forEach((f, k) => {
      t[f] += units * (k + 1) * (f === 'readBytes' || f === 'writeBytes' ? 4096 : f.endsWith('Us') ? 1000 : f.endsWith('Ns') ? 1e6 : 1);
    });
    return this;
  }
  /** The truth: everything every thread ever did. */
  total(): ThreadCounters {
    const s = zero();
    for (const t of [...this.threads.values(), ...this.dead]) for (const f of ALL_FIELDS) s[f] += t[f];
    return s;
  }
  /** A live reading as the receiver completes it: TGID query + whole-process I/O and faults. */
  live(): TaskRecord {
    const r = this.record('live', 'tgid', this.total());
    r.pid = this.tgid;
    return r;
  }
  /** Thread `pid` ends: its PID record, plus the TGID record when it is the last. */
  exit(pid: number, exitCode = 0, signal = 0): [TaskRecord, TaskRecord | null] {
    const t = this.threads.get(pid)!;
    this.threads.delete(pid);
    const last = this.threads.size === 0;
    if (!last && this.groupStats === null) this.groupStats = zero();
    if (this.groupStats) for (const f of GROUP_FIELDS) this.groupStats[f] += t[f];
    this.dead.push(t);
    const thread = this.record('exit', 'pid', t);
    thread.pid = pid;
    thread.comm = pid === this.tgid ? this.comm : `${this.comm}-worker`;
    thread.startTimeSec = pid === this.tgid ? this.start : this.start + 1;
    thread.flags = last ? AGROUP : 0;
    thread.exitCode = signal ? -1 : exitCode;
    thread.exitSignal = signal;
    thread.exitStatus = signal ? signal : exitCode << 8;
    let group: TaskRecord | null = null;
    if (last && this.groupStats) {
      const g = { ...this.groupStats };
      if (this.groupLacksCpuTimes) g.userUs = g.systemUs = g.voluntaryCtxSwitches = g.involuntaryCtxSwitches = 0;
      group = this.record('exit', 'tgid', { ...zero(), ...Object.fromEntries(GROUP_FIELDS.map((f) => [f, g[f]])) });
      group.comm = '';
      group.pid = 0;
      group.startTimeSec = 0;
      INFO.set(group, NO_PROCESS_INFO);
    }
    return [thread, group];
  }
  private record(kind: 'live' | 'exit', aggregate: 'pid' | 'tgid', c: ThreadCounters): TaskRecord {
    const r = newTaskRecord();
    Object.assign(r, c);
    r.kind = kind;
    r.aggregate = aggregate;
    r.version = 16;
    r.tgid = this.tgid;
    r.comm = this.comm;
    INFO.set(r, this.info);
    r.startTimeSec = this.start;
    r.hiwaterRssKb = 1000 + c.minorFaults;
    r.hiwaterVmKb = 5000 + c.minorFaults;
    r.cpuDelayMaxNs = c.cpuDelayCount * 10;
    return r;
  }
}

function accounting(perProcess = false) {
  const telemetry = new RecordingTelemetry();
  const logger = new RecordingLogger();
  return { acc: new ProcessAccounting({ perProcess, telemetry, logger }), telemetry, logger };
}

/** Raw totals (TaskRecord units) of what a batch's samples add up to, per raw counter. */
function sums(batch: SampleBatch, where: (s: Sample) => boolean = () => true): Float64Array {
  const s = new Float64Array(RAW_COUNTERS);
  for (const sample of batch) {
    if (!where(sample)) continue;
    for (let i = 0; i < RAW_COUNTERS; i++) {
      assert.ok(sample.values[i]! >= 0, `negative growth at ${i}`);
      s[i]! += sample.values[i]! / RAW_SCALE[i]!;
    }
  }
  return s;
}

const RAW_OF: Record<(typeof ALL_FIELDS)[number], number> = {
  userUs: RAW.USER,
  systemUs: RAW.SYSTEM,
  cpuRunVirtualNs: RAW.RUN_TIME,
  voluntaryCtxSwitches: RAW.VOLUNTARY,
  involuntaryCtxSwitches: RAW.INVOLUNTARY,
  cpuDelayTotalNs: RAW.DELAY_TIME,
  cpuDelayCount: RAW.DELAY_COUNT,
  blkioDelayTotalNs: RAW.DELAY_TIME + 1,
  blkioDelayCount: RAW.DELAY_COUNT + 1,
  readBytes: RAW.DISK_READ,
  writeBytes: RAW.DISK_WRITE,
  minorFaults: RAW.MINOR,
  majorFaults: RAW.MAJOR,
  readCharBytes: RAW.CHAR_READ,
  writeCharBytes: RAW.CHAR_WRITE,
  readSyscalls: RAW.SYSCALL_READ,
  writeSyscalls: RAW.SYSCALL_WRITE,
  cancelledWriteBytes: RAW.CANCELLED_WRITE,
  coreMemMbUs: RAW.RSS_TIME,
  virtMemMbUs: RAW.VIRTUAL_TIME,
};

/**
 * User CPU of simulated threads, by the kernel's rule (cputime_adjust in kernel/sched/cputime.c:
 * stime = rtime * stime_ticks / (utime_ticks + stime_ticks), utime = rtime - stime) worked out by
 * hand: every SimProcess unit of work adds 1000 µs of user ticks and 2000 µs of system ticks, so
 * user is a third of the runtime.
 */
function userNsByKernelRule(t: ThreadCounters): number {
  assert.equal(t.systemUs, 2 * t.userUs, 'the simulation keeps user:system ticks at 1:2');
  return t.cpuRunVirtualNs / 3;
}
const near = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

function assertTotals(got: Float64Array, truth: ThreadCounters, label = ''): void {
  // CPU: user + system is exactly the scheduler's runtime; the split follows the tick ratio
  // (exactly here, because the simulated threads keep one ratio).
  const user = userNsByKernelRule(truth);
  assert.ok(
    near(got[RAW.USER]! + got[RAW.SYSTEM]!, truth.cpuRunVirtualNs),
    `${label}user+system ${got[RAW.USER]! + got[RAW.SYSTEM]!} ns, runtime ${truth.cpuRunVirtualNs} ns`,
  );
  assert.ok(near(got[RAW.USER]!, user), `${label}user ${got[RAW.USER]} ns, expected ${user}`);
  for (const f of ALL_FIELDS) {
    if (f === 'userUs' || f === 'systemUs') continue;
    const want = truth[f];
    const have = got[RAW_OF[f]]!;
    assert.ok(Math.abs(have - want) <= 1e-6 * Math.max(1, want), `${label}${f}: emitted ${have}, truth ${want}`);
  }
}

function exits(batch: SampleBatch): number {
  return batch.reduce((a, s) => a + s.values[VALUE.EXITS]!, 0);
}

describe('ProcessAccounting', () => {
  test('live readings then exit: growth adds up to the exit totals, nothing twice', () => {
    const { acc } = accounting();
    const out: SampleBatch = [];
    const p = new SimProcess(100, START).work(100, 3);
    acc.live(p.live(), p.info, T0, out);
    p.work(100, 2);
    acc.live(p.live(), p.info, T0 + 10_000, out);
    acc.live(p.live(), p.info, T0 + 20_000, out); // nothing new: a sample with zeros
    acc.endSweep(T0 + 20_000, out);
    p.work(100, 4);
    const [thread, group] = p.exit(100, 3);
    assert.equal(group, null);
    acc.exit(thread, group, infoOf(thread), T0 + 25_000, out);
    assert.equal(out.length, 4);
    assert.deepEqual(Array.from(out[2]!.values.subarray(0, RAW_COUNTERS)), new Array(RAW_COUNTERS).fill(0));
    assertTotals(sums(out), p.total());
    assert.equal(exits(out), 1);
    const last = out[3]!;
    assert.equal(last.final, true);
    assert.deepEqual(last.pointAttributes, { 'process.exit.code': 3 });
    // the exit sample holds exactly what was left since the last live reading
    const runGrowthS = 4 * 3 * 1e6 * 1e-9;
    assert.ok(near(last.values[RAW.USER]! + last.values[RAW.SYSTEM]!, runGrowthS));
    assert.ok(near(last.values[RAW.RUN_TIME]!, runGrowthS));
    assert.equal(acc.size, 0);
    // one attributes object for every sample of the workload
    assert.ok(out.every((s) => s.attributes === out[0]!.attributes));
    assert.deepEqual(out[0]!.attributes, { 'process.executable.name': 'work', 'process.linux.cgroup': '/test.slice' });
    assert.equal(out[0]!.schema, PROCESS_SCHEMA);
  });

  test("an idle reading (LivePoller's flag) gives the sample the full path gives, and a moved process still gets its new cgroup", () => {
    for (const perProcess of [false, true]) {
      const runs = [false, true].map((idle) => {
        const { acc } = accounting(perProcess);
        const out: SampleBatch = [];
        const p = new SimProcess(100, START).work(100, 3);
        const rec = p.live();
        acc.live(rec, p.info, T0, out);
        acc.endSweep(T0, out);
        acc.live(rec, p.info, T0 + 10_000, out, idle); // repeated reading: nothing grew
        acc.endSweep(T0 + 10_000, out);
        // Moved to another cgroup while asleep: the counters repeat, the metadata does not.
        acc.live(rec, { ...p.info, cgroup: '/other.slice' }, T0 + 20_000, out, idle);
        acc.endSweep(T0 + 20_000, out);
        p.work(100, 1);
        const [thread, group] = p.exit(100);
        acc.exit(thread, group, infoOf(thread), T0 + 25_000, out);
        return { out, size: acc.size };
      });
      const [full, idle] = runs;
      const plain = (b: SampleBatch) => b.map((x) => ({ ...x, values: Array.from(x.values) }));
      assert.deepEqual(plain(idle!.out), plain(full!.out), perProcess ? 'per-process' : 'aggregate');
      assert.equal(idle!.out[1]!.attributes, idle!.out[0]!.attributes);
      assert.ok(idle!.out.some((x) => x.attributes['process.linux.cgroup'] === '/other.slice' && !x.final));
      assert.equal(idle!.size, 0);
    }
  });

  test('an idle process allocates nothing: its zero sample is reused, every field set again after a processor changed it', () => {
    const { acc } = accounting();
    const p = new SimProcess(100, START).work(100, 3);
    const rec = p.live();
    const first: SampleBatch = [];
    acc.live(rec, p.info, T0, first);
    acc.endSweep(T0, first);
    const sweep = (t: number): Sample => {
      const out: SampleBatch = [];
      acc.live(rec, p.info, t, out, true);
      acc.endSweep(t, out);
      assert.equal(out.length, 1);
      return out[0]!;
    };
    const a = sweep(T0 + 10_000);
    // What a processor may do to a sample in its batch.
    a.attributes = { ...a.attributes, team: 'x' };
    a.values[RAW.USER] = 7;
    a.final = true;
    const b = sweep(T0 + 20_000);
    assert.equal(b, a);
    assert.equal(b.attributes, first[0]!.attributes);
    assert.deepEqual(Array.from(b.values), new Array(b.values.length).fill(0));
    assert.equal(b.final, false);
    assert.equal(b.timeMs, T0 + 20_000);
  });

  test('process.cpu.time is the exact scheduler runtime split by the tick ratio, monotonic per mode (cputime_adjust)', () => {
    const { acc } = accounting();
    const rec = (u: number, s: number, runNs: number, kind: 'live' | 'exit') => {
      const r = newTaskRecord();
      Object.assign(r, {
        kind,
        aggregate: kind === 'live' ? 'tgid' : 'pid',
        version: 16,
        pid: 42,
        tgid: 42,
        comm: 'c',
        startTimeSec: START,
        userUs: u,
        systemUs: s,
        cpuRunVirtualNs: runNs,
        flags: AGROUP,
        exitCode: 0,
      });
      return r;
    };
    const ms = (v: number) => Math.round(v * 1e6) / 1e3; // seconds -> ms, rounded to µs
    const out: SampleBatch = [];
    // A 3 ms process that no tick caught: all of it is user time (as the kernel does).
    acc.exit(rec(0, 0, 3e6, 'exit'), null, NO_PROCESS_INFO, T0, out);
    assert.deepEqual([ms(out[0]!.values[RAW.USER]!), ms(out[0]!.values[RAW.SYSTEM]!)], [3, 0]);
    // (Two sweeps later: a live reading of pid 42 with the same start is no longer taken for the
    // process that just ended.)
    acc.endSweep(T0, out);
    acc.endSweep(T0, out);
    // The ratio moves between readings: neither mode goes backwards, and the sum stays exact.
    out.length = 0;
    acc.live(rec(4000, 0, 10e6, 'live'), NO_PROCESS_INFO, T0, out); // user 10
    acc.live(rec(4000, 8000, 12e6, 'live'), NO_PROCESS_INFO, T0 + 1, out); // ratio says user 4, system 8: user stays 10, system 2
    acc.exit(rec(8000, 8000, 20e6, 'exit'), null, NO_PROCESS_INFO, T0 + 2, out); // half and half: user 10, system 10
    assert.deepEqual(
      out.map((s) => [ms(s.values[RAW.USER]!), ms(s.values[RAW.SYSTEM]!)]),
      [
        [10, 0],
        [0, 2],
        [0, 8],
      ],
    );
    // A kernel without the scheduler runtime: the ticks as they are.
    out.length = 0;
    acc.exit(rec(4000, 8000, 0, 'exit'), null, NO_PROCESS_INFO, T0, out);
    assert.deepEqual([ms(out[0]!.values[RAW.USER]!), ms(out[0]!.values[RAW.SYSTEM]!)], [4, 8]);
  });

  test('a process never seen live is counted whole at its exit', () => {
    const { acc } = accounting();
    const out: SampleBatch = [];
    const p = new SimProcess(200, START, 'true').work(200, 1);
    const [thread, group] = p.exit(200, 0);
    acc.exit(thread, group, infoOf(thread), T0, out);
    assert.equal(out.length, 1);
    assertTotals(sums(out), p.total());
    assert.equal(exits(out), 1);
    assert.equal(acc.size, 0);
    assert.equal(out[0]!.attributes['process.executable.name'], 'true');
  });

  for (const lacking of [false, true]) {
    test(`multi-threaded: thread exits, leader first, last worker with the group record${lacking ? ' (group record without utime/stime/ctx switches)' : ''}`, () => {
      const { acc } = accounting();
      const out: SampleBatch = [];
      const p = new SimProcess(300, START, 'java', '/app', 3);
      p.groupLacksCpuTimes = lacking;
      p.work(300, 1).work(301, 2).work(302, 3);
      acc.live(p.live(), p.info, T0, out);
      acc.endSweep(T0, out);
      p.work(301, 5);
      let [t, g] = p.exit(301); // a worker ends
      acc.exit(t, g, infoOf(t), T0 + 1000, out);
      assert.equal(out.length, 1, 'a thread exit emits nothing by itself');
      p.work(300, 1).work(302, 1);
      acc.live(p.live(), p.info, T0 + 10_000, out);
      acc.endSweep(T0 + 10_000, out);
      p.work(300, 2).work(302, 7);
      [t, g] = p.exit(300); // the leader ends before the last worker (exit_group)
      assert.equal(t.flags & AGROUP, 0);
      acc.exit(t, g, infoOf(t), T0 + 12_000, out);
      assert.equal(out.length, 2);
      assert.equal(acc.size, 1);
      [t, g] = p.exit(302, 1);
      assert.ok(g !== null && (t.flags & AGROUP) !== 0);
      acc.exit(t, g, infoOf(t), T0 + 12_001, out);
      assert.equal(out.length, 3);
      assertTotals(sums(out), p.total());
      assert.equal(exits(out), 1);
      assert.equal(acc.size, 0);
      // the worker's own name does not rename the process
      assert.equal(out[2]!.attributes['process.executable.name'], 'java');
    });
  }

  test('a short-lived multi-threaded process never seen live', () => {
    const { acc } = accounting();
    const out: SampleBatch = [];
    const p = new SimProcess(400, START, 'go-tool', '/x', 4);
    for (const pid of [400, 401, 402, 403]) p.work(pid, pid - 399);
    for (const pid of [401, 400, 403, 402]) {
      const [t, g] = p.exit(pid, 0);
      acc.exit(t, g, infoOf(t), T0, out);
    }
    assert.equal(out.length, 1);
    assertTotals(sums(out), p.total());
    assert.equal(out[0]!.attributes['process.executable.name'], 'go-tool');
    assert.equal(acc.size, 0);
  });

  test("pid reuse: a new start time is a new process; the old one's late exit still finds its state", () => {
    const { acc, telemetry } = accounting();
    const out: SampleBatch = [];
    const a = new SimProcess(500, START, 'old').work(500, 10);
    acc.live(a.live(), a.info, T0, out);
    acc.endSweep(T0, out);
    a.work(500, 1);
    const b = new SimProcess(500, START + 50, 'new').work(500, 2);
    acc.live(b.live(), b.info, T0 + 10_000, out); // a's exit not processed yet; b took the pid
    assert.equal(telemetry.counters.get('pid_reuses'), 1);
    assert.equal(acc.size, 2);
    const [t, g] = a.exit(500, 0);
    acc.exit(t, g, infoOf(t), T0 + 10_001, out);
    acc.endSweep(T0 + 10_001, out);
    b.work(500, 3);
    acc.live(b.live(), b.info, T0 + 20_000, out);
    acc.endSweep(T0 + 20_000, out);
    const [t2, g2] = b.exit(500, 0);
    acc.exit(t2, g2, infoOf(t2), T0 + 20_001, out);
    assertTotals(
      sums(out, (s) => s.attributes['process.executable.name'] === 'old'),
      a.total(),
      'old: ',
    );
    assertTotals(
      sums(out, (s) => s.attributes['process.executable.name'] === 'new'),
      b.total(),
      'new: ',
    );
    assert.equal(exits(out), 2);
    assert.equal(acc.size, 0);
    assert.equal(telemetry.counters.get('processes_lost') ?? 0, 0);
  });

  test('thread exits of an older process under a tracked tgid do not disturb the tracked one', () => {
    const { acc } = accounting();
    const out: SampleBatch = [];
    const newer = new SimProcess(550, START + 50, 'newer').work(550, 2);
    acc.live(newer.live(), newer.info, T0, out);
    const older = new SimProcess(550, START, 'older', '/x', 3); // its exit records arrive late
    older.work(550, 1).work(551, 2).work(552, 3);
    for (const pid of [551, 550, 552]) {
      const [t, g] = older.exit(pid, 0);
      acc.exit(t, g, infoOf(t), T0 + 1, out);
    }
    newer.work(550, 1);
    acc.live(newer.live(), newer.info, T0 + 10_000, out);
    const [t, g] = newer.exit(550, 0);
    acc.exit(t, g, infoOf(t), T0 + 10_001, out);
    assertTotals(
      sums(out, (s) => s.attributes['process.executable.name'] === 'older'),
      older.total(),
      'older: ',
    );
    assertTotals(
      sums(out, (s) => s.attributes['process.executable.name'] === 'newer'),
      newer.total(),
      'newer: ',
    );
    assert.equal(exits(out), 2);
    assert.equal(acc.size, 0);
  });

  test('pid reuse within the same second is recognised by CPU time going backwards', () => {
    const { acc } = accounting();
    const out: SampleBatch = [];
    const a = new SimProcess(600, START, 'same').work(600, 50);
    acc.live(a.live(), a.info, T0, out);
    const b = new SimProcess(600, START + 1, 'same').work(600, 1);
    acc.live(b.live(), b.info, T0 + 1000, out);
    // b's first sample holds all of b, not "negative growth" or nothing
    assertTotals(sums(out.slice(1)), b.total());
    assert.equal(acc.size, 2);
  });

  test('a reading lower than what was reported (zombie read as zeros) emits nothing and loses nothing', () => {
    const { acc } = accounting();
    const out: SampleBatch = [];
    const p = new SimProcess(700, START).work(700, 5);
    acc.live(p.live(), p.info, T0, out);
    const zombie = newTaskRecord();
    Object.assign(zombie, { kind: 'live', aggregate: 'tgid', version: 16, tgid: 700, pid: 700, comm: 'work', startTimeSec: START });
    INFO.set(zombie, p.info);
    acc.live(zombie, infoOf(zombie), T0 + 1000, out);
    p.work(700, 1);
    const [t, g] = p.exit(700, 0);
    acc.exit(t, g, infoOf(t), T0 + 1001, out);
    assertTotals(sums(out), p.total());
    assert.equal(acc.size, 0);
  });

  test('a lost exit: the process is forgotten at the end of the next sweep that misses it, and counted', () => {
    const { acc, telemetry } = accounting();
    const out: SampleBatch = [];
    const p = new SimProcess(800, START).work(800, 1);
    const q = new SimProcess(801, START).work(801, 1);
    acc.live(p.live(), p.info, T0, out);
    acc.live(q.live(), q.info, T0, out);
    acc.endSweep(T0, out);
    assert.equal(acc.size, 2);
    acc.live(q.live(), q.info, T0 + 10_000, out); // p ended, its exit record was lost
    acc.endSweep(T0 + 10_000, out);
    assert.equal(acc.size, 1);
    assert.equal(telemetry.counters.get('processes_lost'), 1);
    assert.equal(out.length, 3, 'aggregate mode adds no sample for a lost process');
    // A thread exit of a process not seen in a sweep yet survives one sweep.
    const r = new SimProcess(900, START, 'mt', '/x', 2).work(901, 1);
    const [t] = r.exit(901);
    acc.exit(t, null, infoOf(t), T0 + 10_500, out);
    assert.equal(acc.size, 2);
    acc.live(q.live(), q.info, T0 + 20_000, out);
    acc.endSweep(T0 + 20_000, out);
    assert.equal(acc.size, 2);
    acc.endSweep(T0 + 30_000, out);
    assert.equal(acc.size, 0);
    assert.equal(telemetry.counters.get('processes_lost'), 3);
  });

  test('a live reading of a process whose exit record was already handled (its teardown, a zombie) is not counted again', () => {
    const { acc, telemetry } = accounting();
    const out: SampleBatch = [];
    // Seen live, then its exit record, then a sweep that still finds it (tearing itself down: its
    // CPU a little above the record's).
    const p = new SimProcess(1400, START).work(1400, 2);
    acc.live(p.live(), p.info, T0, out);
    acc.endSweep(T0, out);
    const final = p.work(1400, 1).exit(1400);
    acc.exit(final[0], final[1], infoOf(final[0]), T0 + 500, out);
    const tearingDown = p.live();
    tearingDown.cpuRunVirtualNs = final[0].cpuRunVirtualNs + 150_000;
    acc.live(tearingDown, infoOf(tearingDown), T0 + 600, out);
    assertTotals(sums(out), p.total());
    assert.equal(acc.size, 0);
    // Never seen live: counted whole at its exit; a reading after it adds nothing, even a sweep later.
    const q = new SimProcess(1500, START).work(1500, 3);
    const [qt] = q.exit(1500);
    acc.exit(qt, null, infoOf(qt), T0 + 700, out);
    acc.endSweep(T0 + 1000, out);
    acc.live(q.live(), q.info, T0 + 1100, out);
    const both = zero();
    for (const t of [p.total(), q.total()]) for (const f of ALL_FIELDS) both[f] += t[f];
    assertTotals(sums(out), both);
    assert.equal(telemetry.counters.get('live_after_exit'), 2);
    assert.equal(acc.size, 0);
    // A new process under the tgid that started at another time is a new process: counted.
    const r = new SimProcess(1500, START + 30).work(1500, 1);
    acc.live(r.live(), r.info, T0 + 1200, out);
    assert.equal(acc.size, 1);
    assert.equal(telemetry.counters.get('live_after_exit'), 2);
    // Two sweeps after an end, the same tgid and start are a new process (pid reuse within a second).
    acc.endSweep(T0 + 2000, out);
    acc.endSweep(T0 + 3000, out);
    acc.live(q.live(), q.info, T0 + 3100, out);
    assert.equal(telemetry.counters.get('live_after_exit'), 2);
    assert.ok(acc.tracks(1500));
  });

  test('exits only: expireGone forgets a process whose final record was lost once it is gone or its pid names another process', () => {
    const { acc, telemetry } = accounting();
    const out: SampleBatch = [];
    // Three multi-threaded processes; a worker thread of each ends, their final records are lost.
    const gone = new SimProcess(1100, START, 'a', '/x', 2).work(1101, 1);
    const alive = new SimProcess(1200, START, 'b', '/x', 3).work(1201, 1);
    const reused = new SimProcess(1300, START, 'c', '/x', 2).work(1301, 1);
    for (const p of [gone, alive, reused]) acc.exit(p.exit(p.tgid + 1)[0], null, p.info, T0, out);
    assert.equal(acc.size, 3);
    const looked: number[] = [];
    // What each tgid names now: 1100 nothing, 1200 the same process (its start as /proc would give
    // it, within a second), 1300 a process started 60 s later (pid reuse).
    const startOf = (tgid: number) => {
      looked.push(tgid);
      return tgid === 1100 ? -1 : tgid === 1200 ? START + 1.5 : START + 60;
    };
    // Touched by a thread exit since the previous call: not even looked up.
    acc.expireGone(T0 + 1000, out, startOf);
    assert.deepEqual(looked, []);
    assert.equal(acc.size, 3);
    // Only worker threads were seen: the start time is unknown, bounded by the threads' starts
    // (START + 1 here): the 60 s younger process cannot be it, START + 1.5 can.
    acc.expireGone(T0 + 2000, out, startOf);
    assert.deepEqual(looked.sort(), [1100, 1200, 1300]);
    assert.equal(acc.size, 1);
    assert.ok(acc.tracks(1200));
    assert.equal(telemetry.counters.get('processes_lost'), 2);
    // A living process stays, however many collections pass; an unknown answer (-2) keeps it too.
    for (let i = 0; i < 5; i++) acc.expireGone(T0 + 3000 + i, out, startOf);
    acc.expireGone(T0 + 9000, out, () => -2);
    assert.ok(acc.tracks(1200));
    // Its leader's record told its start time: another process at that pid later is not it.
    acc.exit(alive.exit(1200)[0], null, alive.info, T0 + 10_000, out);
    assert.ok(acc.tracks(1200), 'the leader ended first; the process lives on in its other threads');
    acc.expireGone(T0 + 11_000, out, () => START + 0.5);
    acc.expireGone(T0 + 12_000, out, () => START + 0.5);
    assert.ok(acc.tracks(1200), 'the same start time: the same process');
    acc.expireGone(T0 + 13_000, out, () => START + 30);
    assert.equal(acc.size, 0);
    assert.equal(telemetry.counters.get('processes_lost'), 3);
    assert.equal(exits(out), 0, 'a forgotten process is not an exit');
  });

  test('per-process mode: pid and start time attributes, peak gauges, a final sample for lost processes', () => {
    const { acc } = accounting(true);
    const out: SampleBatch = [];
    const p = new SimProcess(1000, START, 'db', '/db').work(1000, 2);
    const q = new SimProcess(1001, START + 3, 'db', '/db').work(1001, 1);
    const live = p.live();
    INFO.set(live, { ...p.info, cmdline: 'db --port 1', exePath: '/usr/bin/db' });
    acc.live(live, infoOf(live), T0, out);
    acc.live(q.live(), q.info, T0, out);
    acc.endSweep(T0, out);
    assert.equal(out[0]!.schema, PROCESS_SCHEMA_PER_PROCESS);
    assert.deepEqual(out[0]!.attributes, {
      'process.executable.name': 'db',
      'process.linux.cgroup': '/db',
      'process.pid': 1000,
      'process.creation.time': new Date(START * 1000).toISOString().replace('.000Z', 'Z'),
    });
    assert.notEqual(out[0]!.attributes, out[1]!.attributes);
    assert.deepEqual(out[0]!.context, { 'process.pid': 1000, 'process.command_line': 'db --port 1', 'process.executable.path': '/usr/bin/db' });
    assert.equal(out[0]!.values[VALUE.PEAK_RSS], (1000 + p.total().minorFaults) * 1024);
    assert.equal(out[0]!.values[VALUE.PEAK_VIRTUAL], (5000 + p.total().minorFaults) * 1024);
    assert.equal(out[0]!.values[VALUE.DELAY_MAX], p.total().cpuDelayCount * 10 * 1e-9);
    assert.ok(Number.isNaN(out[0]!.values[VALUE.DELAY_MAX + 1]!), 'an unknown delay maximum is NaN');
    p.work(1000, 1);
    acc.live(p.live(), p.info, T0 + 10_000, out);
    assert.equal(out[2]!.attributes, out[0]!.attributes, 'a process keeps its attributes object');
    acc.endSweep(T0 + 10_000, out); // q lost
    assert.equal(out.length, 4);
    const lost = out[3]!;
    assert.equal(lost.final, true);
    assert.equal(lost.attributes['process.pid'], 1001);
    assert.ok(lost.values.subarray(0, RAW_COUNTERS).every((v) => v === 0));
    const [t, g] = p.exit(1000, 0, 9);
    acc.exit(t, g, infoOf(t), T0 + 11_000, out);
    assert.deepEqual(out[4]!.pointAttributes, { 'process.linux.exit.signal': 'SIGKILL' });
    assertTotals(
      sums(out, (s) => s.attributes['process.pid'] === 1000),
      p.total(),
    );
  });

  test('per-process mode: a process renamed by exec ends its old series (final sample), totals stay whole', () => {
    const { acc } = accounting(true);
    const stage = new MetricsStage({
      seriesLimit: 100,
      endedSeriesTtlMs: 0,
      resource: buildResource({}),
      telemetry: new RecordingTelemetry(),
      logger: new RecordingLogger(),
    });
    const p = new SimProcess(1200, START, 'sh', '/c').work(1200, 1);
    let out: SampleBatch = [];
    acc.live(p.live(), p.info, T0, out);
    stage.add(out);
    stage.collect(T0);
    p.comm = 'java';
    p.work(1200, 2);
    out = [];
    acc.live(p.live(), p.info, T0 + 10_000, out);
    assert.equal(out.length, 2);
    assert.equal(out[0]!.final, true);
    assert.equal(out[0]!.attributes['process.executable.name'], 'sh');
    assert.equal(out[1]!.attributes['process.executable.name'], 'java');
    stage.add(out);
    const c = stage.collect(T0 + 10_000).cumulative();
    const sh = valueOf(c, 'process.cpu.time', { 'process.executable.name': 'sh', 'cpu.mode': 'user' });
    const java = valueOf(c, 'process.cpu.time', { 'process.executable.name': 'java', 'cpu.mode': 'user' });
    assert.ok(Math.abs(sh + java - userNsByKernelRule(p.total()) / 1e9) < 1e-9);
    // the old series was exported a last time and is now gone
    assert.equal(valueOf(stage.collect(T0 + 20_000).cumulative(), 'process.cpu.time', { 'process.executable.name': 'sh' }), 0);
    assert.equal(stage.size, 1);
  });

  test('through the metrics stage: cumulative sums per workload equal the truth', () => {
    const { acc } = accounting();
    const stage = new MetricsStage({
      seriesLimit: 100,
      endedSeriesTtlMs: 60_000,
      resource: buildResource({}),
      telemetry: new RecordingTelemetry(),
      logger: new RecordingLogger(),
    });
    const procs = [new SimProcess(1100, START, 'nginx', '/web', 2), new SimProcess(1110, START, 'nginx', '/web'), new SimProcess(1120, START, 'sh', '/web')];
    const exited: SimProcess[] = [];
    let now = T0;
    for (let round = 0; round < 4; round++) {
      const batch: SampleBatch = [];
      for (const p of procs) for (const pid of p.threads.keys()) p.work(pid, round + 1);
      if (round === 2) {
        // the sh process ends, a worker of the first nginx ends, a short-lived one comes and goes
        const sh = procs.pop()!;
        const [t, g] = sh.exit(1120, 2);
        acc.exit(t, g, infoOf(t), now, batch);
        const [wt, wg] = procs[0]!.exit(1101);
        acc.exit(wt, wg, infoOf(wt), now, batch);
        const short = new SimProcess(1130, START, 'sh', '/web').work(1130, 9);
        const [st, sg] = short.exit(1130, 0);
        acc.exit(st, sg, infoOf(st), now, batch);
        exited.push(sh, short);
      }
      for (const p of procs) acc.live(p.live(), p.info, now, batch);
      acc.endSweep(now, batch);
      stage.add(batch);
      stage.collect(now);
      now += 10_000;
    }
    const rm = stage.collect(now).cumulative();
    const truthOf = (ps: SimProcess[]) => ps.reduce((a, p) => a + userNsByKernelRule(p.total()), 0) / 1e9;
    const nginx = { 'process.executable.name': 'nginx', 'process.linux.cgroup': '/web', 'cpu.mode': 'user' };
    const sh = { 'process.executable.name': 'sh', 'process.linux.cgroup': '/web', 'cpu.mode': 'user' };
    assert.ok(Math.abs(valueOf(rm, 'process.cpu.time', nginx) - truthOf(procs)) < 1e-9);
    assert.ok(Math.abs(valueOf(rm, 'process.cpu.time', sh) - truthOf(exited)) < 1e-9);
    assert.equal(
      valueOf(rm, 'process.disk.io', { 'process.executable.name': 'sh', 'disk.io.direction': 'read' }),
      exited.reduce((a, p) => a + p.total().readBytes, 0),
    );
    assert.equal(valueOf(rm, 'process.exits', { 'process.executable.name': 'sh' }), 2);
    assert.equal(valueOf(rm, 'process.exits', { 'process.exit.code': 2 }), 1);
    assert.equal(valueOf(rm, 'process.exits', { 'process.executable.name': 'nginx' }), 0);
  });
});
/** Exit records of a real 3-thread process (node with 2 workers, process.exit(3)) on Linux 6.18, from `taskstats-agent exits --json` (delays: cpu only). */
const REAL_EXITS_6_18 = [
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13119,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 47978,
    stime_us: 8000,
    cpu_run_real_ns: 55978390,
    cpu_run_virtual_ns: 56323177,
    minflt: 2271,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 3013602,
    virtmem_mb_us: 110160580,
    read_char: 5120,
    write_char: 99328,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 102400,
    cancelled_write_bytes: 0,
    nvcsw: 7,
    nivcsw: 27,
    cpu_delay: [35, 352544049],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13118,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 43871,
    stime_us: 20000,
    cpu_run_real_ns: 63871050,
    cpu_run_virtual_ns: 56183776,
    minflt: 2212,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 3488884,
    virtmem_mb_us: 126576084,
    read_char: 5120,
    write_char: 99328,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 102400,
    cancelled_write_bytes: 0,
    nvcsw: 4,
    nivcsw: 35,
    cpu_delay: [40, 356604975],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13009,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 0,
    stime_us: 0,
    cpu_run_real_ns: 0,
    cpu_run_virtual_ns: 1308861,
    minflt: 45,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 14,
    nivcsw: 1,
    cpu_delay: [16, 22162422],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13012,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 0,
    stime_us: 0,
    cpu_run_real_ns: 0,
    cpu_run_virtual_ns: 946433,
    minflt: 73,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 13,
    nivcsw: 0,
    cpu_delay: [14, 12179454],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13008,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 0,
    stime_us: 0,
    cpu_run_real_ns: 0,
    cpu_run_virtual_ns: 1210635,
    minflt: 70,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 14,
    nivcsw: 0,
    cpu_delay: [15, 17164812],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13013,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 0,
    stime_us: 0,
    cpu_run_real_ns: 0,
    cpu_run_virtual_ns: 1536066,
    minflt: 85,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 12,
    nivcsw: 1,
    cpu_delay: [14, 9248406],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13005,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778672,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 0,
    stime_us: 0,
    cpu_run_real_ns: 0,
    cpu_run_virtual_ns: 135252,
    minflt: 4,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 1,
    nivcsw: 0,
    cpu_delay: [2, 2912762],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 12686,
    tgid: 12686,
    comm: 'node',
    flags: 0,
    start_time: 1795778671,
    exit_status: 768,
    exit_code: 3,
    exit_signal: 0,
    utime_us: 111810,
    stime_us: 19926,
    cpu_run_real_ns: 131737481,
    cpu_run_virtual_ns: 138855921,
    minflt: 2330,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 3099407,
    virtmem_mb_us: 29162430,
    read_char: 249856,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 15,
    nivcsw: 53,
    cpu_delay: [69, 1115601256],
  },
  {
    kind: 'exit',
    aggregate: 'pid',
    version: 16,
    pid: 13108,
    tgid: 12686,
    comm: 'node',
    flags: 48,
    start_time: 1795778672,
    exit_status: 768,
    exit_code: 3,
    exit_signal: 0,
    utime_us: 0,
    stime_us: 0,
    cpu_run_real_ns: 0,
    cpu_run_virtual_ns: 25628,
    minflt: 1,
    majflt: 0,
    hiwater_rss_kb: 67324,
    hiwater_vm_kb: 2196872,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 1,
    nivcsw: 0,
    cpu_delay: [2, 12549003],
  },
  {
    kind: 'exit',
    aggregate: 'tgid',
    version: 16,
    pid: 12686,
    tgid: 12686,
    comm: '',
    flags: 0,
    start_time: 0,
    exit_status: 0,
    exit_code: 0,
    exit_signal: 0,
    utime_us: 203659,
    stime_us: 47926,
    cpu_run_real_ns: 251586921,
    cpu_run_virtual_ns: 256525749,
    minflt: 0,
    majflt: 0,
    hiwater_rss_kb: 0,
    hiwater_vm_kb: 0,
    coremem_mb_us: 0,
    virtmem_mb_us: 0,
    read_char: 0,
    write_char: 0,
    read_syscalls: 0,
    write_syscalls: 0,
    read_bytes: 0,
    write_bytes: 0,
    cancelled_write_bytes: 0,
    nvcsw: 81,
    nivcsw: 117,
    cpu_delay: [207, 1900967139],
  },
];

function fromJson(j: (typeof REAL_EXITS_6_18)[number]): TaskRecord {
  const r = newTaskRecord();
  Object.assign(r, {
    kind: j.kind,
    aggregate: j.aggregate,
    version: j.version,
    pid: j.pid,
    tgid: j.tgid,
    comm: j.comm,
    flags: j.flags,
    startTimeSec: j.start_time,
    exitStatus: j.exit_status,
    exitCode: j.exit_code,
    exitSignal: j.exit_signal,
    userUs: j.utime_us,
    systemUs: j.stime_us,
    cpuRunRealNs: j.cpu_run_real_ns,
    cpuRunVirtualNs: j.cpu_run_virtual_ns,
    minorFaults: j.minflt,
    majorFaults: j.majflt,
    hiwaterRssKb: j.hiwater_rss_kb,
    hiwaterVmKb: j.hiwater_vm_kb,
    coreMemMbUs: j.coremem_mb_us,
    virtMemMbUs: j.virtmem_mb_us,
    readCharBytes: j.read_char,
    writeCharBytes: j.write_char,
    readSyscalls: j.read_syscalls,
    writeSyscalls: j.write_syscalls,
    readBytes: j.read_bytes,
    writeBytes: j.write_bytes,
    cancelledWriteBytes: j.cancelled_write_bytes,
    voluntaryCtxSwitches: j.nvcsw,
    involuntaryCtxSwitches: j.nivcsw,
    cpuDelayCount: j.cpu_delay[0],
    cpuDelayTotalNs: j.cpu_delay[1],
  });
  INFO.set(r, { ...NO_PROCESS_INFO, cgroup: '/user.slice' });
  return r;
}

test('ProcessAccounting on exit records captured from Linux 6.18: one process end, CPU from the group record, per-thread fields summed', () => {
  const { acc } = accounting();
  const out: SampleBatch = [];
  const recs = REAL_EXITS_6_18.map(fromJson);
  const group = recs.find((r) => r.aggregate === 'tgid')!;
  const threads = recs.filter((r) => r.aggregate === 'pid');
  // The leader (pid = tgid) ended before the last worker, without AGROUP: not the end.
  const leader = threads.find((r) => r.pid === r.tgid)!;
  assert.equal(leader.flags & AGROUP, 0);
  assert.ok(threads.indexOf(leader) < threads.length - 1);
  for (const t of threads) acc.exit(t, t === threads[threads.length - 1] ? group : null, infoOf(t), T0, out);
  assert.equal(out.length, 1);
  const v = out[0]!.values;
  const sum = (f: keyof TaskRecord) => threads.reduce((a, r) => a + (r[f] as number), 0);
  // CPU: the group's exact runtime, split by its utime:stime ratio as cputime_adjust does, worked
  // out by hand: stime = 256525749 ns * 47926 / (203659 + 47926) = 48867194 ns (the kernel
  // truncates to whole ns), utime = 256525749 - 48867194 = 207658555 ns.
  assert.ok(Math.abs(v[RAW.USER]! + v[RAW.SYSTEM]! - 0.256525749) < 1e-12);
  assert.ok(Math.abs(v[RAW.SYSTEM]! - 0.048867194) < 1e-9);
  assert.ok(Math.abs(v[RAW.USER]! - 0.207658555) < 1e-9);
  assert.ok(Math.abs(v[RAW.RUN_TIME]! - group.cpuRunVirtualNs * 1e-9) < 1e-12);
  assert.equal(v[RAW.INVOLUNTARY], group.involuntaryCtxSwitches);
  assert.equal(v[RAW.MINOR], sum('minorFaults'));
  assert.equal(v[RAW.CHAR_WRITE], sum('writeCharBytes'));
  assert.equal(v[RAW.CHAR_READ], sum('readCharBytes'));
  assert.ok(Math.abs(v[RAW.RSS_TIME]! - sum('coreMemMbUs') * 1e-6) < 1e-9);
  assert.equal(v[VALUE.EXITS], 1);
  assert.deepEqual(out[0]!.pointAttributes, { 'process.exit.code': 3 });
  assert.deepEqual(out[0]!.attributes, { 'process.executable.name': 'node', 'process.linux.cgroup': '/user.slice' });
  assert.equal(acc.size, 0);
});

describe('exit distributions: one observation per ended process, from its final totals', () => {
  test("live samples observe nothing; the final sample observes the process's lifetime, whole CPU, peak RSS and CPU delay; the stage counts one per process", async () => {
    const { defaultExitDistributionsConfig } = await import('./exit-distributions.js');
    const telemetry = new RecordingTelemetry();
    const acc = new ProcessAccounting({
      perProcess: false,
      exitDistributions: { ...defaultExitDistributionsConfig(), enabled: true, all_delays: true },
      telemetry,
      logger: new RecordingLogger(),
    });
    const at = PROCESS_SCHEMA.metrics.length; // the distributions follow the sums
    assert.equal(acc.sampleSchema.metrics.length, at + 11);
    const out: SampleBatch = [];
    // A 3-thread process: live reading, the leader ends first, then two workers (the last with AGROUP).
    const p = new SimProcess(500, START, 'java', '/app', 3).work(500, 2).work(501, 3).work(502, 4);
    acc.live(p.live(), p.info, T0, out);
    assert.ok(
      out.every((s) => s.values.subarray(at).every((v) => Number.isNaN(v))),
      'a live sample observes nothing',
    );
    const truth = p.total();
    p.work(502, 1);
    for (const pid of [500, 501]) {
      const [t, g] = p.exit(pid);
      t.groupElapsedUs = 111_000;
      acc.exit(t, g, infoOf(t), T0 + 1, out);
    }
    const [last, group] = p.exit(502);
    last.elapsedUs = 90_000; // the worker's own life
    last.groupElapsedUs = 250_000; // since the leader started: the process's lifetime
    acc.exit(last, group, infoOf(last), T0 + 2, out);
    const final = out.filter((s) => s.final);
    assert.equal(final.length, 1, 'thread exits end nothing');
    const v = final[0]!.values;
    const whole = p.total();
    assert.ok(whole.cpuRunVirtualNs > truth.cpuRunVirtualNs);
    assert.equal(v[at], 0.25);
    assert.ok(Math.abs(v[at + 1]! - whole.cpuRunVirtualNs * 1e-9) < 1e-12, 'the whole CPU, not the remainder');
    assert.equal(v[at + 2], last.hiwaterRssKb * 1024);
    assert.ok(Math.abs(v[at + 3]! - whole.cpuDelayTotalNs * 1e-9) < 1e-12);
    assert.ok(Math.abs(v[at + 4]! - whole.blkioDelayTotalNs * 1e-9) < 1e-12, 'all_delays: blkio next');
    // Through the metrics stage: one observation in the workload's histogram.
    const stage = new MetricsStage({ seriesLimit: 10, endedSeriesTtlMs: 60_000, resource: buildResource({}), telemetry, logger: new RecordingLogger() });
    stage.add(out);
    const m = stage
      .collect(T0 + 3)
      .cumulative()
      .scopeMetrics[0]!.metrics.find((x) => x.descriptor.name === 'process.linux.lifetime')!;
    assert.equal(m.dataPoints.length, 1);
    assert.equal((m.dataPoints[0]!.value as { count: number }).count, 1);
    assert.deepEqual(m.dataPoints[0]!.attributes, { 'process.executable.name': 'java', 'process.linux.cgroup': '/app' });
  });

  test('without the option the schema and samples are as before (no distribution values)', () => {
    const { acc } = accounting();
    assert.equal(acc.sampleSchema, PROCESS_SCHEMA);
  });
});
