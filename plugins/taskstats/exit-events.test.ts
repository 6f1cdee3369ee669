/**
 * Exit events without the kernel: the docs/events.md catalogue against the records the builder
 * makes (every kind, both outcomes), severities and bodies, and the volume control's budgets and
 * summaries. The kernel-backed proof is in exit-events-kernel.test.ts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ATTR, SeverityNumber, type LogRecord, type SampleBatch } from '../../src/api/index.js';
import { ProcessAccounting } from './accounting.js';
import { EVENT_ATTRIBUTES, EVENT_NAME, ExitEvents, iso } from './exit-events.js';
import { NO_PROCESS_INFO, newTaskRecord, type ProcessInfo, type TaskRecord } from './record.js';
import { ExitBudget } from './volume.js';

const docs = readFileSync(new URL('../../../docs/events.md', import.meta.url), 'utf8');

const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };

/** The metadata the receiver passes beside each record (ProcessMetadata's answer), by record. */
const INFO = new WeakMap<TaskRecord, ProcessInfo>();

function exitRecord({ cgroup = '', ...over }: Partial<TaskRecord> & { cgroup?: string }): TaskRecord {
  const r = Object.assign(newTaskRecord(), { kind: 'exit', aggregate: 'pid', version: 16, flags: 0x20, startTimeSec: 1_700_000_000, ...over });
  INFO.set(r, { ...NO_PROCESS_INFO, cgroup });
  return r;
}

/** Records through the real accounting (lastEnd) and builder; every budget unlimited. */
function build(threads: boolean, feed: (ev: (thread: TaskRecord, group: TaskRecord | null) => void) => void, budget?: ExitBudget): LogRecord[] {
  const accounting = new ProcessAccounting({ perProcess: false, logger, telemetry });
  const events = new ExitEvents({ threads, budget: budget ?? new ExitBudget({ failuresPerSecond: Infinity, successesPerSecond: Infinity, maxWorkloads: 10 }) });
  const out: SampleBatch = [];
  feed((thread, group) => {
    const info = INFO.get(thread) ?? NO_PROCESS_INFO;
    accounting.exit(thread, group, info, 1_700_000_100_000, out);
    events.exit(thread, info, accounting.lastEnd, 1_700_000_100_000);
  });
  return events.take() ?? [];
}

describe('exit events', () => {
  const single = build(false, (ev) => {
    ev(
      exitRecord({ pid: 10, tgid: 10, ppid: 1, comm: 'ok', exitCode: 0, cgroup: '/a', elapsedUs: 12_000, cpuRunVirtualNs: 8e6, userUs: 4000, systemUs: 4000 }),
      null,
    );
    ev(
      exitRecord({ pid: 11, tgid: 11, ppid: 1, comm: 'three', exitCode: 3, exitStatus: 0x300, cgroup: '/a', blkioDelayCount: 2, blkioDelayTotalNs: 5e6 }),
      null,
    );
    ev(exitRecord({ pid: 12, tgid: 12, ppid: 1, comm: 'crash', exitCode: -1, exitSignal: 11, exitStatus: 0x8b, coreDumped: true, cgroup: '' }), null);
    ev(exitRecord({ pid: 13, tgid: 13, ppid: 1, comm: 'killed', exitCode: -1, exitSignal: 9, exitStatus: 9, cgroup: '/b' }), null);
  });
  // A 3-thread process whose leader ends first: two thread records, then the last worker's with the group record.
  const threaded = build(true, (ev) => {
    ev(exitRecord({ pid: 20, tgid: 20, ppid: 1, comm: 'leader', flags: 0, readCharBytes: 1024, cpuRunVirtualNs: 1e6, userUs: 1000 }), null);
    ev(exitRecord({ pid: 21, tgid: 20, ppid: 1, comm: 'worker', flags: 0, readCharBytes: 2048, cpuRunVirtualNs: 2e6, userUs: 2000 }), null);
    ev(exitRecord({ pid: 22, tgid: 20, ppid: 1, comm: 'worker', readCharBytes: 4096, cpuRunVirtualNs: 3e6, userUs: 3000 }), {
      ...exitRecord({ aggregate: 'tgid', pid: 0, tgid: 20, comm: '', cpuRunVirtualNs: 6e6, userUs: 6000 }),
    });
  });
  const suppressed = new ExitBudget({ failuresPerSecond: 0, successesPerSecond: 0, maxWorkloads: 1 });
  build(
    false,
    (ev) => {
      ev(exitRecord({ pid: 30, tgid: 30, comm: 'a', exitCode: 0, cgroup: '/x' }), null);
      ev(exitRecord({ pid: 31, tgid: 31, comm: 'b', exitCode: 1, cgroup: '/y' }), null);
    },
    suppressed,
  );
  const summaries = suppressed.summarize(1_700_000_160_000, 60);
  const all = [...single, ...threaded, ...summaries];

  test('every attribute a record carries has its docs/events.md row (type, unit, events), and every row is carried', () => {
    const rows = new Map<string, string>();
    for (const line of docs.split('\n')) {
      const m = /^\| `([a-z0-9_.]+)` \| (string|int|double|boolean) \| /.exec(line);
      if (m) rows.set(m[1]!, line);
    }
    const eventOf: Record<string, string> = { p: EVENT_NAME.PROCESS_EXIT, t: EVENT_NAME.THREAD_EXIT, s: EVENT_NAME.SUPPRESSED };
    for (const d of EVENT_ATTRIBUTES) {
      const row = rows.get(d.name);
      assert.ok(row, `docs/events.md has no row for ${d.name}`);
      const cells = row.split('|').map((c) => c.trim());
      assert.equal(cells[2], d.type, `${d.name}: type`);
      assert.equal(cells[3], d.unit === '' ? '-' : `\`${d.unit}\``, `${d.name}: unit`);
      const documented = [...cells[4]!.matchAll(/`([a-z.]+)`/g)].map((m) => m[1]).sort();
      assert.deepEqual(
        documented,
        d.events
          .split('')
          .map((e) => eventOf[e])
          .sort(),
        `${d.name}: events`,
      );
    }
    for (const name of rows.keys())
      assert.ok(
        EVENT_ATTRIBUTES.some((d) => d.name === name),
        `docs/events.md documents ${name}, which no record has`,
      );
    const table = new Map(EVENT_ATTRIBUTES.map((d) => [d.name, d]));
    const carried = new Set<string>();
    for (const r of all) {
      const letter = Object.entries(eventOf).find(([, n]) => n === r.eventName)![0];
      for (const [k, v] of Object.entries(r.attributes)) {
        const d = table.get(k);
        assert.ok(d, `${r.eventName} carries ${k}, which EVENT_ATTRIBUTES (and so docs/events.md) lacks`);
        assert.ok(d.events.includes(letter), `${k} on ${r.eventName} is not documented for it`);
        const type = typeof v === 'number' ? (d.type === 'int' ? Number.isInteger(v) : true) : typeof v === d.type;
        assert.ok(type, `${k} = ${String(v)} is not a ${d.type}`);
        carried.add(k);
      }
    }
    // The opt-in and delay-accounting attributes need their options; all others must be carried here.
    const optIn = new Set([
      ATTR.COMMAND_LINE,
      ATTR.EXECUTABLE_PATH,
      ...EVENT_ATTRIBUTES.filter((d) => /delay\.(swapin|freepages|thrashing|compact|wpcopy|irq)/.test(d.name)).map((d) => d.name),
    ]);
    for (const d of EVENT_ATTRIBUTES) if (!optIn.has(d.name)) assert.ok(carried.has(d.name), `no record carried ${d.name}`);
  });

  test('severity, exit code or signal, core dump and a one-line body per outcome', () => {
    const [ok, three, crash, killed] = single;
    assert.deepEqual(
      single.map((r) => [r.eventName, r.severityNumber, r.severityText]),
      [
        ['process.exit', SeverityNumber.INFO, 'INFO'],
        ['process.exit', SeverityNumber.WARN, 'WARN'],
        ['process.exit', SeverityNumber.ERROR, 'ERROR'],
        ['process.exit', SeverityNumber.ERROR, 'ERROR'],
      ],
    );
    assert.equal(ok!.attributes['process.exit.code'], 0);
    assert.equal(three!.attributes['process.exit.code'], 3);
    assert.equal(crash!.attributes['process.exit.code'], undefined);
    assert.equal(crash!.attributes['process.linux.exit.signal'], 'SIGSEGV');
    assert.equal(crash!.attributes['process.linux.exit.core_dumped'], true);
    assert.equal(killed!.attributes['process.linux.exit.signal'], 'SIGKILL');
    assert.equal(killed!.attributes['process.linux.exit.core_dumped'], false);
    assert.equal(
      ok!.body,
      'ok (pid 10) exited with code 0 after 12.0 ms: cpu 4.0 ms user + 4.0 ms system, peak RSS 0 B, disk read 0 B / written 0 B, cgroup /a',
    );
    assert.match(crash!.body, /^crash \(pid 12\) was killed by SIGSEGV \(core dumped\) after /);
    for (const r of all) assert.ok(!r.body.includes('\n'), 'one line');
    // creation = exit - elapsed (the leader's record); the exit time is the record's timestamp
    assert.equal(ok!.attributes['process.creation.time'], new Date(1_700_000_100_000 - 12).toISOString());
    assert.equal(ok!.attributes['process.exit.time'], new Date(1_700_000_100_000).toISOString());
    assert.equal(ok!.timeMs, 1_700_000_100_000);
    // delays: cpu always, blkio only when counted
    assert.equal(ok!.attributes['process.linux.delay.blkio.count'], undefined);
    assert.equal(three!.attributes['process.linux.delay.blkio.count'], 2);
    assert.equal(three!.attributes['process.linux.delay.blkio.time'], 0.005);
  });

  test("a multi-threaded process: thread records when asked, one process record with the totals and the leader's name", () => {
    assert.deepEqual(
      threaded.map((r) => [r.eventName, r.attributes['thread.id'] ?? r.attributes['process.pid']]),
      [
        ['process.thread.exit', 20],
        ['process.thread.exit', 21],
        ['process.exit', 20],
      ],
    );
    const p = threaded[2]!.attributes;
    assert.equal(p['process.executable.name'], 'leader');
    assert.equal(p['process.linux.threads'], 3);
    assert.equal(p['process.linux.io.read_chars'], 1024 + 2048 + 4096, 'I/O: the sum of the thread records (the group record has none)');
    const cpu = (p['process.linux.cpu.user_time'] as number) + (p['process.linux.cpu.system_time'] as number);
    assert.ok(Math.abs(cpu - 0.006) < 1e-12, `CPU: the group record's runtime (${cpu})`);
    // the leader ended first: the creation time comes from its ac_btime (whole seconds)
    assert.equal(p['process.creation.time'], new Date(1_700_000_000_000).toISOString());
  });

  test('budgets: at most N a second per class, failures apart from successes; the rest counted per workload', () => {
    const b = new ExitBudget({ failuresPerSecond: 3, successesPerSecond: 2, maxWorkloads: 2 });
    const kept = { s: 0, f: 0 };
    for (let i = 0; i < 100; i++) if (b.admit(false, 5_000 + i, 'ok', '/a')) kept.s++;
    for (let i = 0; i < 5; i++) if (b.admit(true, 5_500 + i, 'bad', '/a')) kept.f++;
    assert.deepEqual(kept, { s: 2, f: 3 }, 'a flood of successes does not use up the failure budget');
    assert.equal(b.admit(false, 6_000, 'ok', '/a'), true, 'a new second, a new budget');
    b.admit(false, 6_001, 'ok', '/a');
    b.admit(false, 6_002, 'other', '/c'); // a third workload: beyond maxWorkloads
    assert.deepEqual(b.totals, { keptSuccesses: 4, keptFailures: 3, suppressedSuccesses: 99, suppressedFailures: 2 });
    const s = b.summarize(7_000, 2);
    assert.deepEqual(
      s.map((r) => [r.eventName, r.severityNumber, r.attributes]),
      [
        [
          'process.exit.suppressed',
          SeverityNumber.INFO,
          {
            'process.executable.name': 'ok',
            'process.linux.cgroup': '/a',
            'process.linux.exit.suppressed.successes': 98,
            'process.linux.exit.suppressed.failures': 0,
            'process.linux.exit.suppressed.interval': 2,
          },
        ],
        [
          'process.exit.suppressed',
          SeverityNumber.WARN,
          {
            'process.executable.name': 'bad',
            'process.linux.cgroup': '/a',
            'process.linux.exit.suppressed.successes': 0,
            'process.linux.exit.suppressed.failures': 2,
            'process.linux.exit.suppressed.interval': 2,
          },
        ],
        [
          'process.exit.suppressed',
          SeverityNumber.INFO,
          {
            'process.linux.exit.suppressed.other_workloads': true,
            'process.linux.exit.suppressed.successes': 1,
            'process.linux.exit.suppressed.failures': 0,
            'process.linux.exit.suppressed.interval': 2,
          },
        ],
      ],
    );
    assert.deepEqual(b.summarize(8_000, 1), [], 'a fresh interval');
  });

  test('times as RFC 3339 with milliseconds, as Date.toISOString writes them', () => {
    const base = Date.UTC(2026, 11, 31, 23, 59, 58, 0);
    for (const ms of [0, 1, 9, 10, 99, 100, 999, 1000, 1999, 2000, 2001, base, base + 7, base + 1999, base + 2000, 1_700_000_000_123]) {
      assert.equal(iso(ms), new Date(ms).toISOString(), String(ms));
    }
  });

  test('"unlimited" keeps every exit', () => {
    const b = new ExitBudget({ failuresPerSecond: Infinity, successesPerSecond: Infinity, maxWorkloads: 1 });
    let kept = 0;
    for (let i = 0; i < 50_000; i++) if (b.admit(i % 7 === 0, 1000 + (i % 900), 'x', '/')) kept++;
    assert.equal(kept, 50_000);
  });
});
