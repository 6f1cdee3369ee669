// test-requires: root taskstats libnl cgroup2 cc
/**
 * Exit events against the real kernel: the receiver (built by its factory, in a logs pipeline
 * only) and known processes (exit 0, exit 3, SIGKILL, SIGSEGV with a core dump, 4 threads, a
 * 60 ms CPU burner, a 3 MiB reader, one that moves itself into a kubepods-style cgroup and execs).
 * The truth is the kernel's own exit records read by test/support/exit-truth.c: a raw netlink
 * socket and the kernel header's struct taskstats, nothing shared with the agent's parser.
 *
 * Then the volume control: a fork loop under the default budget keeps the budget, counts every
 * other exit of the loop (kept + held back = the loop's exact exit count) and loses no failure
 * within the failure budget.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeverityNumber, type LogRecord, type Receiver, type ReceiverContext } from '../../src/api/index.js';
import { taskstatsReceiverFactory } from './factory.js';
import { defaultTaskstatsConfig, type TaskstatsReceiverConfig } from './config.js';
import { cgroupTestSkipReason, cgroupV2Root } from '../../test/support/cgroup.js';
import { compileC, createCgroup, repoRoot, runTsload, waitFor } from '../../test/support/workload.js';
import { recordingContext } from '../../test/support/component-context.js';

interface Truth {
  aggregate: 'pid' | 'tgid';
  id: number;
  pid: number;
  tgid: number;
  ppid: number;
  uid: number;
  comm: string;
  exitcode: number;
  flag: number;
  etime_us: number;
  run_virtual_ns: number;
  read_char: number;
  write_char: number;
  read_bytes: number;
  nvcsw: number;
  nivcsw: number;
  minflt: number;
  hiwater_rss_kb: number;
  hiwater_vm_kb: number;
  cpu_count: number;
}

function harness() {
  const records: LogRecord[] = [];
  let samples = 0;
  const recorded = recordingContext('taskstats');
  const ctx: ReceiverContext = {
    ...recorded,
    // A logs pipeline only: `metrics` is absent, as the host gives it.
    logs: { consume: (b) => void records.push(...b) },
    next: {
      consume: (b) => void (samples += b.length),
      collectionDone() {},
    },
  };
  return { ctx, records, counters: recorded.counters, warnings: recorded.warnings, samples: () => samples };
}

const skip = cgroupTestSkipReason();

describe('exit events from the real kernel (root)', { skip, timeout: 180_000 }, () => {
  let cases = '';
  let truthBin = '';
  let truth: ChildProcess | undefined;
  const truthRecords: Truth[] = [];
  const work = mkdtempSync(join(tmpdir(), 'exit-events-'));

  before(async () => {
    cases = compileC(readFileSync(join(repoRoot, 'test/support/exit-cases.c'), 'utf8'), 'exit-cases', ['-pthread']);
    truthBin = compileC(readFileSync(join(repoRoot, 'test/support/exit-truth.c'), 'utf8'), 'exit-truth');
    truth = spawn(truthBin, [readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim(), String(process.pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    truth.stdout!.setEncoding('utf8');
    truth.stdout!.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        truthRecords.push(JSON.parse(buf.slice(0, i)) as Truth);
        buf = buf.slice(i + 1);
      }
    });
    let err = '';
    truth.stderr!.setEncoding('utf8');
    truth.stderr!.on('data', (d: string) => (err += d));
    await waitFor('exit-truth registered', () => err.includes('ready'), 15_000);
  });

  after(() => {
    truth?.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  });

  function run(args: string[], opts: { until?: 'ready'; signal?: NodeJS.Signals; cwd?: string } = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn(cases, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: opts.cwd });
      child.on('error', reject);
      if (opts.until === 'ready') child.stdout.once('data', () => child.kill(opts.signal));
      child.on('exit', () => resolve(child.pid!));
    });
  }

  test('each known process arrives with exact pid, parent, outcome, cgroup, CPU, I/O, memory and threads', async () => {
    // A kubepods-style cgroup (systemd driver names) below a group of this test's own.
    const root = cgroupV2Root()!;
    const top = join(root, `taskstats-test-events-receiver-${process.pid}`);
    const podUid = '0f9b2c1e_7a3d_4b8e_9c1f_2d3e4f5a6b7c';
    const containerId = 'ab'.repeat(32);
    const kube = ['kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${podUid}.slice`, `cri-containerd-${containerId}.scope`];
    const leaf = join(top, ...kube);
    mkdirSync(leaf, { recursive: true });
    const file = join(work, 'three-mib');
    writeFileSync(file, Buffer.alloc(3 * 1024 * 1024, 7));
    const coreDir = join(work, 'core');
    mkdirSync(coreDir);

    const h = harness();
    const config: TaskstatsReceiverConfig = {
      ...defaultTaskstatsConfig(),
      collection_interval: 1000,
      metadata: { command_line: true, executable_path: false },
      events: { ...defaultTaskstatsConfig().events, failures_per_second: 'unlimited', successes_per_second: 'unlimited', threads: true },
    };
    const receiver: Receiver = await taskstatsReceiverFactory.create(h.ctx, config);
    await receiver.start();
    const pids: Record<string, number> = {};
    try {
      pids.exit0 = await run(['exit', '0']);
      pids.exit3 = await run(['exit', '3']);
      pids.sigkill = await run(['wait'], { until: 'ready', signal: 'SIGKILL' });
      pids.segv = await run(['segv', coreDir]);
      pids.threads = await run(['threads', '4', '20000']);
      pids.burn = await run(['burn', '60000']);
      pids.read = await run(['read', file]);
      pids.moved = await run(['move', join(leaf, 'cgroup.procs'), '0']);
      const byPid = (pid: number) => h.records.find((r) => r.eventName === 'process.exit' && r.attributes['process.pid'] === pid);
      await waitFor('an event for every process', () => Object.values(pids).every((p) => byPid(p)), 10_000);
      await waitFor(
        'the kernel records of every process',
        () => Object.values(pids).every((p) => truthRecords.some((t) => t.tgid === p && t.flag & 0x20)),
        10_000,
      );
    } finally {
      await receiver.shutdown();
      for (let i = kube.length; i >= 0; i--) rmdirSync(join(top, ...kube.slice(0, i)));
    }
    assert.equal(h.samples(), 0, 'in logs pipelines only, no samples');

    const event = (pid: number) => h.records.find((r) => r.eventName === 'process.exit' && r.attributes['process.pid'] === pid)!.attributes;
    /** The kernel's records of a process: its threads' and, for several threads, the group's. */
    const kernel = (pid: number) => {
      const threads = truthRecords.filter((t) => t.aggregate === 'pid' && t.tgid === pid);
      const last = threads.find((t) => (t.flag & 0x20) !== 0)!;
      const group = truthRecords.find((t) => t.aggregate === 'tgid' && t.id === pid);
      return { last, threads, group };
    };

    for (const [name, pid] of Object.entries(pids)) {
      const e = event(pid);
      const { last } = kernel(pid);
      assert.equal(e['process.parent_pid'], process.pid, `${name}: parent`);
      assert.equal(e['process.parent_pid'], last.ppid, `${name}: parent as the kernel says`);
      assert.equal(e['process.real_user.id'], last.uid, `${name}: uid`);
      assert.equal(e['process.linux.memory.peak_rss'], last.hiwater_rss_kb * 1024, `${name}: peak RSS`);
      assert.equal(e['process.linux.memory.peak_virtual'], last.hiwater_vm_kb * 1024, `${name}: peak VM`);
      const signal = last.exitcode & 0x7f;
      if (signal === 0) assert.equal(e['process.exit.code'], (last.exitcode >> 8) & 0xff, `${name}: exit code`);
      else assert.equal(e['process.exit.code'], undefined, `${name}: no exit code after a signal`);
      assert.equal(e['process.linux.exit.core_dumped'], (last.exitcode & 0x80) !== 0, `${name}: core dumped`);
    }
    const records = (pid: number) => h.records.find((r) => r.eventName === 'process.exit' && r.attributes['process.pid'] === pid)!;

    assert.equal(records(pids.exit0).severityNumber, SeverityNumber.INFO);
    assert.equal(event(pids.exit0)['process.exit.code'], 0);
    assert.equal(records(pids.exit3).severityNumber, SeverityNumber.WARN);
    assert.equal(event(pids.exit3)['process.exit.code'], 3);
    // Opted in: read at the exec, while the process lives. A watcher the VM stalls past that half
    // millisecond misses it, which is counted, never silent.
    const commandLine = event(pids.exit3)['process.command_line'];
    if (commandLine === undefined) assert.ok((h.counters.get('exec_metadata_missed') ?? 0) > 0, 'command line absent without a counted miss');
    else assert.equal(commandLine, `${cases} exit 3`, 'command line (opted in)');
    assert.equal(records(pids.sigkill).severityNumber, SeverityNumber.ERROR);
    assert.equal(event(pids.sigkill)['process.linux.exit.signal'], 'SIGKILL');
    assert.equal(records(pids.segv).severityNumber, SeverityNumber.ERROR);
    assert.equal(event(pids.segv)['process.linux.exit.signal'], 'SIGSEGV');
    assert.match(records(pids.segv).body, /was killed by SIGSEGV/);
    const corePattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
    if (!corePattern.startsWith('|')) {
      assert.equal(event(pids.segv)['process.linux.exit.core_dumped'], true, `core_pattern "${corePattern}" writes a file: the kernel dumped core`);
      assert.match(records(pids.segv).body, /\(core dumped\)/);
    }

    // CPU: exactly the kernel's runtime (the precise scheduler runtime, split by the tick ratio).
    const cpu = (pid: number) => (event(pid)['process.linux.cpu.user_time'] as number) + (event(pid)['process.linux.cpu.system_time'] as number);
    const burn = kernel(pids.burn).last;
    assert.ok(Math.abs(cpu(pids.burn) - burn.run_virtual_ns / 1e9) < 1e-6, `burner CPU ${cpu(pids.burn)} s = the record's ${burn.run_virtual_ns / 1e9} s`);
    assert.ok(cpu(pids.burn) >= 0.06, 'the burner burned 60 ms');
    assert.ok(Math.abs((event(pids.burn)['process.linux.duration'] as number) - burn.etime_us / 1e6) < 1e-3, 'duration = ac_etime');

    // 4 threads: the group's runtime (the larger of the thread sum and the group record), 4 threads.
    const th = kernel(pids.threads);
    assert.ok(th.group, 'the kernel sent a thread group record');
    const threadRecords = th.threads;
    assert.equal(threadRecords.length, 4, 'the kernel reported 4 threads');
    const sum = threadRecords.reduce((s, t) => s + t.run_virtual_ns, 0);
    const groupCpu = Math.max(sum, th.group.run_virtual_ns) / 1e9;
    assert.ok(Math.abs(cpu(pids.threads) - groupCpu) < 1e-6, `4-thread CPU ${cpu(pids.threads)} s = the kernel's ${groupCpu} s`);
    assert.ok(cpu(pids.threads) >= 0.08, '4 x 20 ms');
    assert.equal(event(pids.threads)['process.linux.threads'], 4);
    // events.threads: one process.thread.exit per thread that ended before the last one, with its own tid and CPU
    const threadEvents = h.records.filter((r) => r.eventName === 'process.thread.exit' && r.attributes['process.pid'] === pids.threads);
    const workers = threadRecords.filter((t) => (t.flag & 0x20) === 0);
    assert.deepEqual(
      threadEvents.map((r) => r.attributes['thread.id']).sort(),
      workers.map((t) => t.pid).sort(),
      'a thread event per thread the kernel reported before the last',
    );
    for (const r of threadEvents) {
      const t = workers.find((w) => w.pid === r.attributes['thread.id'])!;
      const c = (r.attributes['process.linux.cpu.user_time'] as number) + (r.attributes['process.linux.cpu.system_time'] as number);
      assert.ok(Math.abs(c - t.run_virtual_ns / 1e9) < 1e-6, `thread ${t.pid}: CPU ${c} s = its record's ${t.run_virtual_ns / 1e9} s`);
    }
    assert.equal(
      event(pids.threads)['process.linux.context_switches.involuntary'],
      Math.max(
        threadRecords.reduce((s, t) => s + t.nivcsw, 0),
        th.group.nivcsw,
      ),
      'context switches over all threads',
    );

    // 3 MiB read: the kernel's read_char (rounded down to 1024 by the kernel), at least 3 MiB.
    const rd = kernel(pids.read).last;
    assert.equal(event(pids.read)['process.linux.io.read_chars'], rd.read_char);
    assert.ok(rd.read_char >= 3 * 1024 * 1024);
    assert.equal(event(pids.read)['process.linux.disk.read_bytes'], rd.read_bytes);
    assert.equal(event(pids.read)['process.linux.paging.faults.minor'], rd.minflt);

    // moved itself into the kubepods-style cgroup, then exec'd: that cgroup, the exec'd image's name.
    const cg = `/${join(`taskstats-test-events-receiver-${process.pid}`, ...kube)}`;
    assert.equal(event(pids.moved)['process.linux.cgroup'], cg);
    assert.equal(event(pids.moved)['process.exit.code'], 0);
    assert.match(records(pids.moved).body, new RegExp(`cgroup ${cg.replace(/[.]/g, '\\.')}$`));
  });

  test('volume control: a fork loop under the default budget keeps the budget, counts the rest, loses no failure', async () => {
    const h = harness();
    const config: TaskstatsReceiverConfig = {
      ...defaultTaskstatsConfig(),
      collection_interval: 1000,
      events: { ...defaultTaskstatsConfig().events, summary_interval: 1000 },
    };
    const defaults = defaultTaskstatsConfig().events;
    assert.equal(defaults.successes_per_second, 10);
    assert.equal(defaults.failures_per_second, 100);
    const cg = createCgroup('events-receiver-volume');
    const receiver: Receiver = await taskstatsReceiverFactory.create(h.ctx, config);
    await receiver.start();
    const failures: number[] = [];
    let children: number;
    try {
      const loop = runTsload(['loop', '3'], { cgroupProcs: cg.procsFile, timeoutMs: 60_000 });
      // 30 failures (exit 7) spread over the loop: 10 a second, within the failure budget.
      for (let i = 0; i < 30; i++) {
        failures.push(await run(['exit', '7']));
        await new Promise((r) => setTimeout(r, 90));
      }
      children = await loop;
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await receiver.shutdown(); // the last summary
      await cg.remove();
    }
    const exits = h.records.filter((r) => r.eventName === 'process.exit');
    // the budget: at most 10 successes a second (machine-wide: the budget is the node's)
    const perSecond = new Map<number, number>();
    for (const r of exits)
      if (r.attributes['process.exit.code'] === 0) perSecond.set(Math.floor(r.timeMs / 1000), (perSecond.get(Math.floor(r.timeMs / 1000)) ?? 0) + 1);
    for (const [sec, n] of perSecond) assert.ok(n <= 10, `${n} successes kept in second ${sec}`);
    // no failure lost within budget: the budget is the node's, so a failure may only be missing in a
    // second whose failure budget other processes of this machine used up
    const failuresPerSecond = new Map<number, number>();
    for (const r of exits)
      if (r.severityNumber > SeverityNumber.INFO)
        failuresPerSecond.set(Math.floor(r.timeMs / 1000), (failuresPerSecond.get(Math.floor(r.timeMs / 1000)) ?? 0) + 1);
    const missing = failures.filter((pid) => !exits.some((r) => r.attributes['process.pid'] === pid && r.attributes['process.exit.code'] === 7));
    const fullSeconds = [...failuresPerSecond.values()].filter((n) => n >= 100).length;
    assert.ok(missing.length === 0 || fullSeconds > 0, `failures without an event: ${missing.join(', ')} (no second reached the failure budget)`);
    if (missing.length > 0) console.log(`# ${missing.length} failures held back: other processes used up the failure budget in ${fullSeconds} second(s)`);
    // every exit of the loop's cgroup is either kept or counted as held back
    const inLoop = (a: Record<string, unknown>) => a['process.linux.cgroup'] === cg.path;
    const kept = exits.filter((r) => inLoop(r.attributes)).length;
    const summaries = h.records.filter((r) => r.eventName === 'process.exit.suppressed');
    const held = summaries
      .filter((r) => inLoop(r.attributes))
      .reduce(
        (s, r) => s + (r.attributes['process.linux.exit.suppressed.successes'] as number) + (r.attributes['process.linux.exit.suppressed.failures'] as number),
        0,
      );
    assert.ok(children > 1000, `the loop forked ${children} children`);
    assert.equal(kept + held, children + 1, `kept ${kept} + held back ${held} = the loop's ${children + 1} exits`);
    assert.ok(kept <= 10 * 5, `kept ${kept}: the budget, not the flood`);
    // self-telemetry and the log say it too
    const counted = (h.counters.get('exit_events_suppressed{"outcome":"success"}') ?? 0) + (h.counters.get('exit_events_suppressed{"outcome":"failure"}') ?? 0);
    const allHeld = summaries.reduce(
      (s, r) => s + (r.attributes['process.linux.exit.suppressed.successes'] as number) + (r.attributes['process.linux.exit.suppressed.failures'] as number),
      0,
    );
    assert.equal(counted, allHeld, 'exit_events_suppressed = what the summaries report');
    assert.ok(
      h.warnings.some((w) => w.startsWith('exit events over budget')),
      'a warning in the log',
    );
  });
});
