/**
 * The whole receiver, built by its factory with the real metadata and accounting parts, against
 * the real kernel: exits and live sweeps become samples, collection cycles are announced,
 * self-telemetry counts, and shutdown releases everything. Plus config checks and delay accounting.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATTR, type Receiver, type Sample } from '../../src/api/index.js';
import plugin from './index.js';
import { taskstatsReceiverFactory, defaultReceiverParts } from './factory.js';
import { TaskstatsReceiver, networkNamespaceWarning, type ReceiverParts } from './receiver.js';
import {
  defaultTaskstatsConfig,
  validateTaskstatsConfig,
  splitCpulist,
  formatCpulist,
  parseCpulist,
  possibleCpus,
  type TaskstatsReceiverConfig,
} from './config.js';
import { setupDelayAccounting } from './delayacct.js';
import { PROCESS_SCHEMA } from './schema.js';
import { needs } from '../../test/support/caps.js';
import { recordingContext } from '../../test/support/component-context.js';
import { waitFor } from '../../test/support/workload.js';

function harness() {
  const samples: Sample[] = [];
  let batches = 0;
  let cycles = 0;
  const recorded = recordingContext('taskstats');
  const ctx = {
    ...recorded,
    next: {
      consume(b: Sample[]) {
        batches++;
        samples.push(...b);
      },
      collectionDone() {
        cycles++;
      },
    },
  };
  return { ctx, samples, counters: recorded.counters, gauges: recorded.gauges, warnings: recorded.warnings, batches: () => batches, cycles: () => cycles };
}

describe('taskstats receiver', { timeout: 60_000, skip: needs('root', 'taskstats', 'libnl') }, () => {
  test('plugin module: the receiver factory and the pid/exits commands', () => {
    assert.deepEqual(
      plugin.factories.map((f) => `${f.kind}/${f.type}`),
      ['receiver/taskstats'],
    );
    assert.deepEqual(
      plugin.commands!.map((c) => c.name),
      ['pid', 'exits'],
    );
  });

  test('exits and live sweeps become samples; cycles; telemetry; clean shutdown', async () => {
    const h = harness();
    const config: TaskstatsReceiverConfig = { ...defaultTaskstatsConfig(), collection_interval: 400, per_process: true };
    const receiver: Receiver = await taskstatsReceiverFactory.create(h.ctx, config);
    await receiver.start();
    try {
      const child = spawn('/bin/sh', ['-c', 'exit 3'], { stdio: 'ignore' });
      await new Promise((r) => child.once('exit', r));
      await waitFor('the final sample of the exited shell', () => h.samples.some((s) => s.final && s.attributes[ATTR.PID] === child.pid), 5000);
      const fin = h.samples.find((s) => s.final && s.attributes[ATTR.PID] === child.pid)!;
      assert.equal(fin.attributes[ATTR.EXECUTABLE_NAME], 'sh');
      assert.equal(typeof fin.attributes[ATTR.CGROUP], 'string');
      // live: a sample for this very process after a sweep, and collection cycles
      await waitFor('two collection cycles', () => h.cycles() >= 2, 5000);
      assert.ok(
        h.samples.some((s) => !s.final && s.attributes[ATTR.PID] === process.pid),
        'a live sample of this process',
      );
      assert.ok((h.counters.get('exits_received') ?? 0) >= 1);
      assert.ok((h.counters.get('records_parsed') ?? 0) >= 1);
      assert.ok((h.counters.get('live_records') ?? 0) >= 10);
      assert.equal(h.counters.get('kernel_drops') ?? 0, 0);
      assert.ok(h.gauges.get('processes_tracked')!() > 0);
      assert.ok(h.gauges.get('live_sweep_duration')!() > 0);
    } finally {
      await receiver.shutdown();
    }
    const n = h.samples.length;
    const c = h.cycles();
    const child = spawn('/bin/sh', ['-c', 'exit 0'], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(h.samples.length, n, 'nothing consumed after shutdown');
    assert.equal(h.cycles(), c, 'no cycle after shutdown');
  });

  test('exit_listeners: 2 splits the CPUs over two sockets feeding one accounting table', async () => {
    const h = harness();
    const r = new TaskstatsReceiver(
      h.ctx,
      { ...defaultTaskstatsConfig(), live: false, per_process: true, exit_listeners: 2, collection_interval: 300 },
      defaultReceiverParts,
    );
    await r.start();
    try {
      const cpus = parseCpulist(possibleCpus())!;
      assert.equal(r.exitStats!.listeners, Math.min(2, cpus.length));
      // one shell pinned to the first CPU, one to the last: each socket hears its own
      const pids: number[] = [];
      for (const cpu of [cpus[0]!, cpus[cpus.length - 1]!]) {
        const c = spawn('taskset', ['-c', String(cpu), '/bin/sh', '-c', 'exit 4'], { stdio: 'ignore' });
        pids.push(c.pid!);
        await new Promise((res) => c.once('exit', res));
      }
      await waitFor('both final samples', () => pids.every((p) => h.samples.some((s) => s.final && s.attributes[ATTR.PID] === p)), 5000);
    } finally {
      await r.shutdown();
    }
  });

  test('exits only (live: false) still announces collection cycles', async () => {
    const h = harness();
    const receiver = await taskstatsReceiverFactory.create(h.ctx, { ...defaultTaskstatsConfig(), collection_interval: 200, live: false });
    await receiver.start();
    try {
      await waitFor('two cycles', () => h.cycles() >= 2, 3000);
    } finally {
      await receiver.shutdown();
    }
  });
});

describe('taskstats receiver: containment and warnings', { timeout: 90_000, skip: needs('root', 'taskstats', 'libnl') }, () => {
  test('an accounting part that throws costs the record, not the agent', async () => {
    const h = harness();
    const dropped: string[] = [];
    (h.ctx.telemetry as { dropped: (n: number, r: string) => void }).dropped = (_n, r) => void dropped.push(r);
    const parts: ReceiverParts = {
      createMetadata: (o) => defaultReceiverParts.createMetadata(o),
      createAccounting: () => ({
        live() {},
        exit(t) {
          if (t.comm === 'sh') throw new Error('boom');
        },
        endSweep() {},
        size: 0,
        sampleSchema: PROCESS_SCHEMA,
      }),
    };
    const r = new TaskstatsReceiver(h.ctx, { ...defaultTaskstatsConfig(), live: false, collection_interval: 200 }, parts);
    await r.start();
    try {
      const child = spawn('/bin/sh', ['-c', 'exit 3'], { stdio: 'ignore' });
      await new Promise((res) => child.once('exit', res));
      await waitFor('the contained error', () => dropped.includes('exit_record_error'), 5000);
      assert.ok(h.warnings.some((w) => /exit record of pid \d+ \(sh\) failed: boom/.test(w)));
      await waitFor('a cycle after the error', () => h.cycles() >= 1, 3000);
    } finally {
      await r.shutdown();
    }
  });

  test('kernel drops: counted, and a warning per incident (the host logger rate-limits it by key) that says how to avoid them', async () => {
    const h = harness();
    const r = new TaskstatsReceiver(
      h.ctx,
      { ...defaultTaskstatsConfig(), live: false, receive_buffer: 65536, collection_interval: 1000 },
      defaultReceiverParts,
    );
    await r.start();
    try {
      for (let storm = 0; storm < 2; storm++) {
        // A fork loop fills the 64 KiB buffer while this thread does not read: spawnSync blocks
        // the event loop until the loop's 3000 children have ended.
        spawnSync('perl', ['-e', 'use POSIX; for (1..3000) { $p=fork; if(!$p){ POSIX::_exit(0) } waitpid($p,0) }'], { stdio: 'ignore' });
        await waitFor(`drop ${storm + 1} counted`, () => (h.counters.get('kernel_drops') ?? 0) >= storm + 1, 10_000);
      }
      const warned = h.warnings.filter((w) => w.startsWith('the kernel dropped exit events'));
      assert.ok(warned.length >= 2, `a warning per incident, got ${warned.length}`);
      assert.match(warned[0]!, /bigger receive_buffer .* more exit_listeners/);
      assert.ok(r.exitStats!.kernelDrops >= 2);
    } finally {
      await r.shutdown();
    }
  });

  test("network namespace check: warns when ours differs from pid 1's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'netns-'));
    try {
      mkdirSync(join(dir, 'self', 'ns'), { recursive: true });
      mkdirSync(join(dir, '1', 'ns'), { recursive: true });
      symlinkSync('net:[4026531833]', join(dir, '1', 'ns', 'net'));
      symlinkSync('net:[4026531833]', join(dir, 'self', 'ns', 'net'));
      assert.equal(networkNamespaceWarning(dir), undefined);
      rmSync(join(dir, 'self', 'ns', 'net'));
      symlinkSync('net:[4026532999]', join(dir, 'self', 'ns', 'net'));
      assert.match(networkNamespaceWarning(dir)!, /not in the initial network namespace .*hostNetwork: true/);
      assert.equal(networkNamespaceWarning(join(dir, 'missing')), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('taskstats config', () => {
  test('cpulists split into consecutive shares', () => {
    assert.deepEqual(splitCpulist('0-7', 2), ['0-3', '4-7']);
    assert.deepEqual(splitCpulist('0-2,5,8-9', 3), ['0-1', '2,5', '8-9']);
    assert.deepEqual(splitCpulist('0-1', 4), ['0', '1']);
    assert.deepEqual(splitCpulist('3', 2), ['3']);
    assert.deepEqual(splitCpulist('0-3', 1), ['0-3']);
    assert.equal(formatCpulist([5, 0, 1, 2, 9]), '0-2,5,9');
  });

  test('cpulist checks', () => {
    const base = defaultTaskstatsConfig();
    assert.deepEqual(validateTaskstatsConfig(base), []);
    assert.deepEqual(validateTaskstatsConfig({ ...base, cpus: '0' }), []);
    assert.match(validateTaskstatsConfig({ ...base, cpus: '0-x' })[0]!.message, /invalid cpulist "0-x"/);
    assert.match(validateTaskstatsConfig({ ...base, cpus: '3-1' })[0]!.message, /end before start/);
    assert.match(validateTaskstatsConfig({ ...base, cpus: '0,4095' })[0]!.message, /names CPUs this machine does not have \(4095\); possible CPUs: /);
    assert.match(validateTaskstatsConfig({ ...base, exits: false, live: false })[0]!.message, /produce nothing/);
  });
});

describe('delay accounting', () => {
  const logger = (into: string[]) => ({ debug() {}, info() {}, warn: (m: string) => void into.push(m), error() {} });

  test('keep: one clear warning when the sysctl is 0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'delayacct-'));
    try {
      const path = join(dir, 'task_delayacct');
      writeFileSync(path, '0\n');
      const w: string[] = [];
      const st = setupDelayAccounting('keep', logger(w), path);
      assert.equal(st.enabled, false);
      assert.equal(w.length, 1);
      assert.match(w[0]!, /delays other than cpu .* stay zero/);
      assert.equal(readFileSync(path, 'utf8').trim(), '0', 'keep never writes');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('enable: writes 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'delayacct-'));
    try {
      const path = join(dir, 'task_delayacct');
      writeFileSync(path, '0\n');
      const w: string[] = [];
      const st = setupDelayAccounting('enable', logger(w), path);
      assert.equal(st.enabled, true);
      assert.equal(st.changed, true);
      assert.equal(readFileSync(path, 'utf8').trim(), '1');
      assert.equal(w.length, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('enable without CAP_SYS_ADMIN (the real sysctl, as nobody): one warning naming CAP_SYS_ADMIN', { skip: needs('root') }, (t) => {
    if (readFileSync('/proc/sys/kernel/task_delayacct', 'utf8').trim() !== '0') {
      t.skip('delay accounting is already on');
      return;
    }
    const mod = fileURLToPath(new URL('./delayacct.js', import.meta.url));
    const script = `import(${JSON.stringify(mod)}).then((m) => { const w = []; const st = m.setupDelayAccounting('enable', { debug() {}, info() {}, error() {}, warn: (x) => w.push(x) }); console.log(JSON.stringify({ st, w })); })`;
    const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const { st, w } = JSON.parse(r.stdout) as { st: { enabled: boolean }; w: string[] };
    assert.equal(st.enabled, false);
    assert.equal(w.length, 1);
    assert.match(w[0]!, /needs CAP_SYS_ADMIN/);
    assert.match(w[0]!, /delays other than cpu .* stay zero/);
    assert.equal(readFileSync('/proc/sys/kernel/task_delayacct', 'utf8').trim(), '0');
  });

  test('a kernel without the sysctl: one warning', () => {
    const w: string[] = [];
    const st = setupDelayAccounting('enable', logger(w), '/proc/sys/kernel/no_such_task_delayacct');
    assert.equal(st.enabled, false);
    assert.equal(w.length, 1);
    assert.match(w[0]!, /missing/);
  });

  test('the real sysctl is read', () => {
    const w: string[] = [];
    const st = setupDelayAccounting('keep', logger(w));
    const real = readFileSync('/proc/sys/kernel/task_delayacct', 'utf8').trim() !== '0';
    assert.equal(st.enabled, real);
    assert.equal(w.length, real ? 0 : 1);
  });
});
