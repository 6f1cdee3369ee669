// test-requires: root taskstats cc
/**
 * process.cpu.time's user/system split against the kernel's own: the kernel splits a task's exact
 * runtime by its utime:stime tick ratio (cputime_adjust) for /proc/PID/stat; the accounting must
 * give the same split from the exit record. The truth is the kernel twice over, with no code of
 * the agent: the exit record through the C listener (test/support/exit-fields.c) and the zombie's
 * /proc/PID/stat (utime, stime in clock ticks), read before its parent reaps it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { SampleBatch } from '../../src/api/index.js';
import { RecordingLogger, RecordingTelemetry } from '../../src/metrics/testing.js';
import { startExitFields } from '../../test/support/exit-fields.js';
import { ProcessAccounting } from './accounting.js';
import { newTaskRecord } from './record.js';
import { RAW } from './schema.js';

/** USER_HZ of /proc/PID/stat (100 on every Linux ABI the agent supports). */
const CLK_TCK = 100;

test('the user/system split of an exit equals the kernel’s own split in /proc/PID/stat (one clock tick)', { timeout: 60_000 }, async (t) => {
  const name = `split${process.pid % 100000}`;
  const fields = await startExitFields();
  try {
    // A child that burns user time and system time (times() is a system call), renames itself,
    // exits, and stays a zombie until the parent is told to reap it (a line on stdin).
    const perl = `
      $0 = "${name}";
      my $p = fork;
      if (!$p) { 1 while (times)[0] < 0.25; exit 0 }
      print "$p\\n"; $| = 1;
      <STDIN>; waitpid($p, 0);`;
    const parent = spawn('perl', ['-e', perl], { stdio: ['pipe', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    // Its exit record (comm is the name perl's $0 set through prctl).
    let rec = fields.all().find((r) => r.aggregate === 'pid' && r.pid === pid);
    const until = Date.now() + 20_000;
    while (rec === undefined && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      rec = fields.all().find((r) => r.aggregate === 'pid' && r.pid === pid);
    }
    assert.ok(rec, `the exit record of ${pid}`);
    // The zombie's /proc/PID/stat: fields 14 and 15 (after the parenthesised comm).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    assert.match(stat, /\) Z /, 'still a zombie');
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const procUser = Number(after[11]) / CLK_TCK;
    const procSystem = Number(after[12]) / CLK_TCK;
    parent.stdin.end('\n');
    await new Promise((r) => parent.once('exit', r));

    // The same record through the accounting.
    const r = newTaskRecord();
    Object.assign(r, {
      kind: 'exit',
      aggregate: 'pid',
      version: 16,
      pid,
      tgid: pid,
      flags: rec.flag,
      comm: rec.comm,
      exitCode: 0,
      userUs: rec.utimeUs,
      systemUs: rec.stimeUs,
      cpuRunVirtualNs: rec.runVirtualNs,
      cpuRunRealNs: (rec.utimeUs + rec.stimeUs) * 1000,
      elapsedUs: rec.elapsedUs,
    });
    const acc = new ProcessAccounting({ perProcess: false, telemetry: new RecordingTelemetry(), logger: new RecordingLogger() });
    const out: SampleBatch = [];
    acc.exit(r, null, { cgroup: '/test', exePath: '', cmdline: '' }, Date.now(), out);
    const user = out.reduce((s, x) => s + x.values[RAW.USER]!, 0);
    const system = out.reduce((s, x) => s + x.values[RAW.SYSTEM]!, 0);
    const line =
      `record: utime ${rec.utimeUs} us, stime ${rec.stimeUs} us, runtime ${rec.runVirtualNs} ns; ` +
      `/proc: user ${procUser} s, system ${procSystem} s; accounting: user ${user.toFixed(4)} s, system ${system.toFixed(4)} s`;
    t.diagnostic(line);
    assert.ok(procSystem > 0 && procUser > 0, `both modes used (${line})`);
    // /proc rounds down to whole ticks, and the zombie ran its teardown after the record (~0.1 ms).
    assert.ok(Math.abs(user - procUser) <= 1 / CLK_TCK, `user (${line})`);
    assert.ok(Math.abs(system - procSystem) <= 1 / CLK_TCK, `system (${line})`);
    assert.ok(Math.abs(user + system - rec.runVirtualNs / 1e9) <= 1e-6, `user + system is the runtime (${line})`);
  } finally {
    await fields.stop();
  }
});
