/**
 * cgroup path parsing and ProcessMetadata's caches: real files (a fake /proc tree for the v1-only
 * host case, the real /proc otherwise) and real processes in test cgroups (root).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseCgroupSelector, detectCgroupMounts, listV1Hierarchies, parseCgroupMounts, parseProcCgroup, parseProcCgroupBytes } from './cgroup-path.js';
import { ProcessMetadata } from './process-metadata.js';
import { EXEC_RESULT_CGROUP, EXEC_RESULT_DETAILS } from './exec-result-ring.js';
import { ProcReader } from './proc-reader.js';
import { newTaskRecord, type TaskRecord } from './record.js';
import { cgroupTestSkipReason, createTestCgroup, type TestCgroup } from '../../test/support/cgroup.js';
import type { ComponentTelemetry, Logger } from '../../src/api/index.js';

const HYBRID = `9:name=systemd:/user.slice/session-1.scope
8:pids:/
4:memory:/process_api/6d7a
2:cpu,cpuacct:/docker/abc:def
0::/system.slice/foo.service
`;
const V1_ONLY = `12:cpuset:/kubepods/pod1/c1
3:cpu,cpuacct:/kubepods/burstable/pod1/c1
1:name=systemd:/kubepods/burstable/pod1/c1`;

const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
function telemetry(counters = new Map<string, number>()): ComponentTelemetry {
  return {
    dropped() {},
    counter(name) {
      return {
        add(v: number) {
          counters.set(name, (counters.get(name) ?? 0) + v);
        },
      };
    },
    gauge() {},
  };
}

describe('cgroup-path', () => {
  test('the v2 line, and v1 hierarchies by controller or name', () => {
    assert.equal(parseProcCgroup(HYBRID, { kind: 'v2' }), '/system.slice/foo.service');
    assert.equal(parseProcCgroup(HYBRID, { kind: 'v1', hierarchy: 'cpuacct' }), '/docker/abc:def', 'co-mounted controllers; ":" inside the path');
    assert.equal(parseProcCgroup(HYBRID, { kind: 'v1', hierarchy: 'cpu' }), '/docker/abc:def');
    assert.equal(parseProcCgroup(HYBRID, { kind: 'v1', hierarchy: 'name=systemd' }), '/user.slice/session-1.scope');
    assert.equal(parseProcCgroup(HYBRID, { kind: 'v1', hierarchy: 'cpuac' }), undefined, 'whole names only');
    assert.equal(parseProcCgroup(V1_ONLY, { kind: 'v2' }), undefined);
    assert.equal(parseProcCgroup(V1_ONLY, { kind: 'v1', hierarchy: 'name=systemd' }), '/kubepods/burstable/pod1/c1', 'last line without newline');
    assert.equal(parseProcCgroup('0::/gone (deleted)\n', { kind: 'v2' }), '/gone', 'a removed cgroup keeps its identity');
    assert.equal(parseProcCgroup('', { kind: 'v2' }), undefined);
    assert.equal(parseProcCgroup('garbage\n::\n', { kind: 'v2' }), undefined);
  });

  test('the byte parser agrees with the text parser (synthetic and real files)', () => {
    const selectors = [
      { kind: 'v2' as const },
      { kind: 'v1' as const, hierarchy: 'cpuacct' },
      { kind: 'v1' as const, hierarchy: 'name=systemd' },
      { kind: 'v1' as const, hierarchy: 'memory' },
    ];
    const real = readFileSync('/proc/self/cgroup', 'utf8');
    for (const text of [HYBRID, V1_ONLY, real, '0::/gone (deleted)', '1:a:\n0::']) {
      // Stale bytes after the end must be ignored.
      const buf = Buffer.concat([Buffer.from(text), Buffer.from('\n0::/stale\n5:cpuacct:/stale\n')]);
      for (const sel of selectors) {
        assert.equal(parseProcCgroupBytes(buf, Buffer.byteLength(text), sel), parseProcCgroup(text, sel), `${JSON.stringify(text)} ${JSON.stringify(sel)}`);
      }
    }
  });

  test('choosing the line: v2 when present, a configured v1 hierarchy, clear errors otherwise', () => {
    assert.deepEqual(chooseCgroupSelector(HYBRID), { kind: 'v2' });
    assert.deepEqual(chooseCgroupSelector(HYBRID, 'cpuacct'), { kind: 'v1', hierarchy: 'cpuacct' });
    assert.deepEqual(chooseCgroupSelector(V1_ONLY, 'name=systemd'), { kind: 'v1', hierarchy: 'name=systemd' });
    assert.throws(() => chooseCgroupSelector(V1_ONLY), /no cgroup v2 hierarchy.*cgroup_v1_hierarchy.*"name=systemd"/);
    assert.throws(() => chooseCgroupSelector(V1_ONLY, 'memory'), /"memory" does not exist.*cpuset, cpu, cpuacct, name=systemd/);
    assert.deepEqual(listV1Hierarchies(V1_ONLY), ['cpuset', 'cpu', 'cpuacct', 'name=systemd']);
  });

  test('cgroup mounts from mountinfo (escaped mount points, bind mounts of sub-trees skipped)', () => {
    const mountinfo = [
      '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
      '33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct',
      '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
      '41 31 0:38 / /sys/fs/cgroup/my\\040unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate',
      '50 23 0:38 /kubepods /var/lib/x rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n');
    const m = parseCgroupMounts(mountinfo);
    assert.equal(m.v2, '/sys/fs/cgroup/my unified');
    assert.equal(m.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(m.v1.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(m.v1.get('name=systemd'), '/sys/fs/cgroup/systemd');
    assert.equal(m.v1.has('xattr'), false);
    assert.equal(parseCgroupMounts(mountinfo.split('\n').slice(0, 3).join('\n')).v2, undefined);
    // This machine: the real cgroup2 mount (from /proc/mounts, a different file).
    const fromMounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[2] === 'cgroup2')
      ?.split(' ')[1];
    assert.equal(detectCgroupMounts().v2, fromMounts);
  });

  test('ProcReader: real files, growth past the buffer, missing files', () => {
    const r = new ProcReader();
    assert.equal(r.readText('/proc/self/cgroup'), readFileSync('/proc/self/cgroup', 'utf8'));
    const dir = mkdtempSync(join(tmpdir(), 'procreader-'));
    try {
      const big = 'x'.repeat(10_000);
      writeFileSync(join(dir, 'big'), big);
      assert.equal(r.readText(join(dir, 'big')), big);
      assert.equal(r.readBytes(join(dir, 'big'), 100), 100, 'bounded read');
      assert.equal(r.readText(join(dir, 'missing')), undefined);
      assert.equal(r.readLink('/proc/self/exe'), process.execPath);
      assert.equal(r.readLink(join(dir, 'missing')), '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A fake /proc tree (real files) with pids whose cgroup, exe and cmdline the test writes. */
function fakeProc(selfCgroup: string): { root: string; add(pid: number, cgroup: string, exe?: string, cmdline?: string): void; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), 'fakeproc-'));
  mkdirSync(join(root, 'self'));
  writeFileSync(join(root, 'self', 'cgroup'), selfCgroup);
  return {
    root,
    add(pid, cgroup, exe = '/usr/bin/x', cmdline = 'x\0--flag\0') {
      const d = join(root, String(pid));
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d);
      writeFileSync(join(d, 'cgroup'), cgroup);
      symlinkSync(exe, join(d, 'exe'));
      writeFileSync(join(d, 'cmdline'), cmdline);
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A record, and beside it the metadata last given for it (as the receiver hands both to accounting). */
type Rec = TaskRecord & { cgroup: string; exePath: string; cmdline: string };

function record(pid: number, o: Partial<TaskRecord> = {}): Rec {
  const r = Object.assign(newTaskRecord(), { cgroup: '', exePath: '', cmdline: '' });
  r.pid = pid;
  r.tgid = pid;
  Object.assign(r, o);
  return r;
}

/** ProcessMetadata.live(), its answer kept beside the record. */
function fillLive(pm: ProcessMetadata, r: Rec): void {
  Object.assign(r, pm.live(r));
}

/** ProcessMetadata.exit(), its answer kept beside the record. */
function fillExit(pm: ProcessMetadata, r: Rec, processEnded: boolean): void {
  Object.assign(r, pm.exit(r, processEnded));
}

describe('ProcessMetadata on a fake /proc (v1-only host)', () => {
  test('the configured v1 hierarchy, exe and cmdline, cached per (pid, start time)', () => {
    const proc = fakeProc(V1_ONLY);
    try {
      assert.throws(
        () => new ProcessMetadata({ commandLine: false, executablePath: false, procRoot: proc.root, logger: quietLogger, telemetry: telemetry() }),
        /cgroup_v1_hierarchy/,
        'a v1-only host needs the hierarchy named',
      );
      const pm = new ProcessMetadata({
        cgroupV1Hierarchy: 'cpuacct',
        commandLine: true,
        executablePath: true,
        procRoot: proc.root,
        logger: quietLogger,
        telemetry: telemetry(),
      });
      proc.add(100, V1_ONLY.replace(/pod1\/c1/g, 'pod9/c9'), '/usr/bin/python3', 'python3\0app.py\0\0');
      const rec = record(100, { startTimeSec: 1_700_000_000 });
      fillLive(pm, rec);
      assert.deepEqual([rec.cgroup, rec.exePath, rec.cmdline], ['/kubepods/burstable/pod9/c9', '/usr/bin/python3', 'python3 app.py']);
      const reads = pm.stats.procReads;
      // The process moves: the cache is not re-read for the same process (the documented trade).
      proc.add(100, V1_ONLY.replace(/pod1\/c1/g, 'moved'), '/usr/bin/python3', 'python3\0app.py\0');
      const again = record(100, { startTimeSec: 1_700_000_001 }); // start times jitter by a second
      fillLive(pm, again);
      assert.equal(again.cgroup, '/kubepods/burstable/pod9/c9');
      assert.equal(pm.stats.procReads, reads, 'no /proc read after the first');
      // Another process with the same pid (different start time): read again.
      const reused = record(100, { startTimeSec: 1_700_000_100 });
      fillLive(pm, reused);
      assert.equal(reused.cgroup, '/kubepods/burstable/moved');
      assert.equal(pm.stats.procReads, reads + 3, 'cgroup, exe and cmdline of the new process');
      assert.equal(pm.size, 1);
    } finally {
      proc.remove();
    }
  });

  test('exit records: own entry, forked children via the parent, unknown, and forgetting ended processes', () => {
    const proc = fakeProc(HYBRID);
    try {
      const pm = new ProcessMetadata({
        commandLine: true,
        executablePath: true,
        procRoot: proc.root,
        logger: quietLogger,
        telemetry: telemetry(),
        cgroupRecheckMs: 60_000,
      });
      proc.add(200, '0::/parent.slice\n', '/bin/bash', 'bash\0-c\0loop\0');
      fillLive(pm, record(200));
      // A forked child that never exec'd: no /proc entry of its own, AFORK set, parent 200.
      const child = record(201, { ppid: 200, flags: 0x01 | 0x20 });
      const reads = pm.stats.procReads;
      fillExit(pm, child, true);
      assert.deepEqual([child.cgroup, child.exePath, child.cmdline], ['/parent.slice', '/bin/bash', 'bash -c loop']);
      assert.equal(pm.stats.procReads, reads + 1, "the parent's cgroup is re-read the first time it serves as a parent");
      // The parent moves: within the recheck interval its children keep the entry (no read per child).
      proc.add(200, '0::/elsewhere\n', '/bin/bash', 'bash\0-c\0loop\0');
      for (let i = 0; i < 100; i++) fillExit(pm, record(300 + i, { ppid: 200, flags: 0x01 }), true);
      assert.equal(pm.stats.procReads, reads + 1, 'no /proc read per forked child');
      assert.equal(pm.stats.exitParent, 101);
      // An exec'd process never seen (exited before its exec was read): its own /proc if still there.
      proc.add(400, '0::/own.scope\n');
      const own = record(400, { ppid: 200 });
      fillExit(pm, own, true);
      assert.equal(own.cgroup, '/own.scope');
      // Nothing known and nothing readable: empty, counted.
      const unknown = record(500, { ppid: 0 });
      unknown.cgroup = 'stale';
      fillExit(pm, unknown, true);
      assert.deepEqual([unknown.cgroup, unknown.exePath, unknown.cmdline], ['', '', '']);
      assert.equal(pm.stats.exitUnknown, 1);
      // The parent ends: forgotten.
      assert.equal(pm.size, 1);
      fillExit(pm, record(200, { ppid: 1 }), true);
      assert.equal(pm.size, 0);
    } finally {
      proc.remove();
    }
  });

  test('an exec result that arrives after its exit record was given another cgroup is counted and logged', () => {
    // The watcher (stubbed here; its timing is the real test's business in attribution.test.ts)
    // received execs of 600, 601 and 602 (numbers 10, 11, 9) but posted nothing yet; /proc no
    // longer has them, so each exit takes its parent's cgroup, and the late results tell.
    const proc = fakeProc(HYBRID);
    try {
      const counters = new Map<string, number>();
      const warnings: unknown[] = [];
      const logger: Logger = {
        ...quietLogger,
        warn(_m: string, f?: unknown) {
          warnings.push(f);
        },
      };
      const pm = new ProcessMetadata({ commandLine: false, executablePath: false, procRoot: proc.root, logger, telemetry: telemetry(counters) });
      const latest = new Map([
        [600, 10],
        [601, 11],
        [602, 12],
      ]);
      const stub = {
        drain() {},
        currentSeq: () => 12,
        priority: 'SCHED_FIFO 1',
        execAfter: (tgid: number) => latest.has(tgid),
        execSeen: (tgid: number) => latest.has(tgid),
        isLatestExec: (tgid: number, seq: number) => latest.get(tgid) === seq,
      };
      (pm as unknown as { watcher: typeof stub }).watcher = stub;
      proc.add(200, '0::/outer\n');
      for (const pid of [600, 601, 602]) {
        const r = record(pid, { ppid: 200 });
        fillExit(pm, r, true);
        assert.equal(r.cgroup, '/outer', 'exec seen, process gone: the parent is all that is left');
      }
      type OnExec = (tgid: number, seq: number, what: number, cgroup: string, exe: string, cmdline: string, capturedSec: number) => void;
      const onExec = (pm as unknown as { onExec: OnExec }).onExec.bind(pm);
      onExec(600, 10, EXEC_RESULT_CGROUP, '/target', '', '', Date.now() / 1000); // its last exec, another cgroup: wrong, counted
      onExec(601, 11, EXEC_RESULT_CGROUP, '/outer', '', '', Date.now() / 1000); // same cgroup: the exit was right
      onExec(602, 9, EXEC_RESULT_CGROUP, '/target', '', '', Date.now() / 1000); // an earlier exec of 602 (moved after it): says nothing
      onExec(600, 10, EXEC_RESULT_DETAILS, '', '/bin/x', 'x', Date.now() / 1000); // details of an ended process: nothing
      assert.equal(pm.stats.lateExecResults, 1);
      assert.equal(counters.get('exec_metadata_late'), 1);
      assert.equal(warnings.length, 1, 'one warning');
      assert.deepEqual((warnings[0] as { lateAndMisattributed: number }).lateAndMisattributed, 1);
      // The late results did not create entries a new process with the same pid could inherit.
      proc.add(600, '0::/new.scope\n');
      const again = record(600, { ppid: 200 });
      latest.clear();
      fillLive(pm, again);
      assert.equal(again.cgroup, '/new.scope');
    } finally {
      proc.remove();
    }
  });

  test('exec results: the cgroup, then the details of the same exec when the watcher read them apart', () => {
    const proc = fakeProc(HYBRID);
    try {
      const pm = new ProcessMetadata({ commandLine: true, executablePath: true, procRoot: proc.root, logger: quietLogger, telemetry: telemetry() });
      type OnExec = (tgid: number, seq: number, what: number, cgroup: string, exe: string, cmdline: string, capturedSec: number) => void;
      const onExec = (pm as unknown as { onExec: OnExec }).onExec.bind(pm);
      const now = Date.now() / 1000;
      // A burst: the watcher published the cgroup first, the executable and command line after.
      onExec(700, 5, EXEC_RESULT_CGROUP, '/burst', '', '', now);
      const before = record(700);
      fillLive(pm, before);
      assert.deepEqual([before.cgroup, before.exePath, before.cmdline], ['/burst', '', ''], 'no /proc read: the exec result stands');
      onExec(700, 4, EXEC_RESULT_DETAILS, '', '/bin/old', 'old', now); // an earlier exec's details: ignored
      onExec(700, 5, EXEC_RESULT_DETAILS, '', '/bin/x', 'x --y', now);
      const after = record(700);
      fillLive(pm, after);
      assert.deepEqual([after.cgroup, after.exePath, after.cmdline], ['/burst', '/bin/x', 'x --y']);
      // One exec at a time: everything in one result.
      onExec(701, 6, EXEC_RESULT_CGROUP | EXEC_RESULT_DETAILS, '/one', '/bin/one', 'one', now);
      const one = record(701);
      fillLive(pm, one);
      assert.deepEqual([one.cgroup, one.exePath, one.cmdline], ['/one', '/bin/one', 'one']);
      assert.equal(pm.stats.execEvents, 2, 'details results are not exec events');
      assert.equal(pm.stats.procReads, 0);
    } finally {
      proc.remove();
    }
  });

  test('a parent re-read after the recheck interval sees where it moved', async () => {
    const proc = fakeProc(HYBRID);
    try {
      const pm = new ProcessMetadata({
        commandLine: false,
        executablePath: false,
        procRoot: proc.root,
        logger: quietLogger,
        telemetry: telemetry(),
        cgroupRecheckMs: 30,
      });
      proc.add(200, '0::/before\n');
      const a = record(201, { ppid: 200, flags: 0x01 });
      fillExit(pm, a, true);
      assert.equal(a.cgroup, '/before');
      proc.add(200, '0::/after\n');
      await new Promise((r) => setTimeout(r, 40));
      const b = record(202, { ppid: 200, flags: 0x01 });
      fillExit(pm, b, true);
      assert.equal(b.cgroup, '/after');
    } finally {
      proc.remove();
    }
  });

  test('the cache is bounded: least recently used entries are evicted and counted', () => {
    const proc = fakeProc(HYBRID);
    try {
      const counters = new Map<string, number>();
      const pm = new ProcessMetadata({
        commandLine: false,
        executablePath: false,
        procRoot: proc.root,
        logger: quietLogger,
        telemetry: telemetry(counters),
        maxEntries: 32,
      });
      for (let pid = 1000; pid < 1100; pid++) proc.add(pid, `0::/g${pid % 7}\n`);
      for (let pid = 1000; pid < 1100; pid++) {
        fillLive(pm, record(pid));
        fillLive(pm, record(1000)); // keeps 1000 recently used
      }
      assert.ok(pm.size <= 32, `size ${pm.size}`);
      assert.equal(pm.stats.evictions, counters.get('process_metadata_evictions'));
      assert.ok(pm.stats.evictions >= 100 - 32);
      const reads = pm.stats.procReads;
      fillLive(pm, record(1000));
      assert.equal(pm.stats.procReads, reads, 'the recently used entry survived eviction');
    } finally {
      proc.remove();
    }
  });
});

const skip = cgroupTestSkipReason();

describe('ProcessMetadata with real processes (root)', { skip, timeout: 60_000 }, () => {
  let a: TestCgroup;
  let b: TestCgroup;
  let pm: ProcessMetadata;
  const children: ChildProcess[] = [];

  before(async () => {
    a = createTestCgroup('metadata-a');
    b = createTestCgroup('metadata-b');
    pm = new ProcessMetadata({ commandLine: true, executablePath: true, logger: quietLogger, telemetry: telemetry() });
    await pm.start();
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset when before() failed
    await pm?.shutdown();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset when before() failed
    await a?.remove();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset when before() failed
    await b?.remove();
  });

  function startIn(cg: TestCgroup, seconds: number): ChildProcess {
    const c = spawn('/bin/sh', ['-c', `echo $$ > ${cg.procsFile}; exec /bin/sleep ${seconds}`], { stdio: 'ignore' });
    children.push(c);
    return c;
  }

  async function until(cond: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  test('a process that moved itself before exec: its exec event gives its cgroup, exe and command line', async () => {
    const c = startIn(a, 30);
    await until(() => readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').startsWith('/bin/sleep'));
    const rec = record(c.pid!, { ppid: process.pid });
    await until(() => {
      fillLive(pm, rec);
      return rec.cmdline === '/bin/sleep 30';
    });
    assert.deepEqual([rec.cgroup, rec.exePath, rec.cmdline], [a.cgroupPath, '/usr/bin/sleep', '/bin/sleep 30']);
    // A live record costs no /proc read once known.
    const reads = pm.stats.procReads;
    for (let i = 0; i < 10; i++) fillLive(pm, rec);
    assert.equal(pm.stats.procReads, reads);
  });

  test('an exit record after the process ends: the metadata captured at exec, then forgotten', async () => {
    const c = startIn(b, 0.2);
    const pid = c.pid!;
    await new Promise((r) => c.once('exit', r));
    const rec = record(pid, { ppid: process.pid, kind: 'exit' });
    fillExit(pm, rec, true);
    assert.deepEqual([rec.cgroup, rec.exePath, rec.cmdline], [b.cgroupPath, '/usr/bin/sleep', '/bin/sleep 0.2']);
    assert.equal(pmHas(pm, pid), false, 'forgotten');
  });

  test('shutdown stops the watcher thread and clears the cache', async () => {
    const other = new ProcessMetadata({ commandLine: false, executablePath: false, logger: quietLogger, telemetry: telemetry() });
    await other.start();
    assert.ok(other.execWatcher!.threadId > 0);
    await other.shutdown();
    assert.equal(other.size, 0);
    assert.equal(other.execWatcher, undefined);
  });
});

/** Whether a pid has a (non-tombstone) entry: a live record for it would need no read. */
function pmHas(pm: ProcessMetadata, pid: number): boolean {
  const reads = pm.stats.procReads;
  fillLive(pm, record(pid));
  return pm.stats.procReads === reads;
}
