/**
 * CgroupReconciler against real cgroup v2 groups (created under the v2 mount, e.g.
 * /sys/fs/cgroup/unified here) and real processes in them: the truth is each group's own cpu.stat
 * and *.pressure files, read by the test. The receiver's samples are the module's input, given
 * here as the samples the receiver would have produced.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { ATTR, type Sample, type SampleBatch } from '../../src/api/index.js';
import { RecordingLogger, RecordingTelemetry } from '../../src/metrics/testing.js';
import { cgroupTestSkipReason, cgroupV2Root, createTestCgroup, type TestCgroup } from '../../test/support/cgroup.js';
import { runTsload, sleep } from '../../test/support/workload.js';
import { CGROUP_PRESSURE_SCHEMA, CGROUP_UNACCOUNTED_SCHEMA, CgroupReconciler, UNACCOUNTED, UNACCOUNTED_NAME } from './cgroup-reconcile.js';
import { PROCESS_SCHEMA, RAW, VALUE } from './schema.js';
import { defaultExitDistributionsConfig, withExitDistributions } from './exit-distributions.js';

const SCHEMA = withExitDistributions(PROCESS_SCHEMA, defaultExitDistributionsConfig());

function cpuStat(dir: string): { usage: number; user: number; system: number } {
  const t = readFileSync(join(dir, 'cpu.stat'), 'utf8');
  const f = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(t)![1]) / 1e6;
  return { usage: f('usage_usec'), user: f('user_usec'), system: f('system_usec') };
}

/** What the receiver would emit for a process of `cgroup` that used `user` + `system` seconds. */
function processSample(cgroup: string, user: number, system: number): Sample {
  const values = new Float64Array(SCHEMA.metrics.length);
  values[RAW.USER] = user;
  values[RAW.SYSTEM] = system;
  values[RAW.RUN_TIME] = user + system;
  values[VALUE.EXITS] = 1;
  return { schema: SCHEMA, attributes: { [ATTR.EXECUTABLE_NAME]: 'tsload', [ATTR.CGROUP]: cgroup }, values, final: true, timeMs: Date.now() };
}

function reconciler(config = { reconcile: true, pressure: true }, maxOpenFiles?: number) {
  const telemetry = new RecordingTelemetry();
  const r = new CgroupReconciler({ root: cgroupV2Root()!, config, processSchema: SCHEMA, logger: new RecordingLogger(), telemetry, maxOpenFiles });
  const cycle = (): SampleBatch => {
    r.read();
    const out: SampleBatch = [];
    r.emit(Date.now(), out);
    return out;
  };
  return { r, telemetry, cycle };
}

const unaccounted = (out: SampleBatch, cgroup: string) => out.filter((s) => s.schema === CGROUP_UNACCOUNTED_SCHEMA && s.attributes[ATTR.CGROUP] === cgroup);

describe('cgroup reconciliation against real cgroups', { skip: cgroupTestSkipReason(), timeout: 60_000 }, () => {
  const groups: TestCgroup[] = [];
  after(async () => {
    for (const g of groups) await g.remove().catch(() => undefined);
  });

  test('reports cpu.stat usage minus what the samples held, split toward cpu.stat user/system; never negative', async () => {
    const cg = createTestCgroup('workload-reconcile');
    groups.push(cg);
    await runTsload(['burn', '200000'], { cgroupProcs: cg.procsFile });
    const truth = cpuStat(cg.dir);
    assert.ok(truth.usage > 0.19, `cpu.stat usage ${truth.usage}`);
    const { r, cycle } = reconciler();
    // The records held 0.15 s of the group's CPU (as the receiver's samples would say).
    r.observe([processSample(cg.cgroupPath, 0.1, 0.05)]);
    const first = unaccounted(cycle(), cg.cgroupPath);
    assert.equal(first.length, 1);
    const s = first[0]!;
    assert.equal(s.attributes[ATTR.EXECUTABLE_NAME], UNACCOUNTED_NAME);
    const got = s.values[UNACCOUNTED.USER]! + s.values[UNACCOUNTED.SYSTEM]!;
    assert.ok(Math.abs(got - (truth.usage - 0.15)) < 1e-9, `unaccounted ${got} vs cpu.stat ${truth.usage} - 0.15`);
    assert.ok(Math.abs(s.values[UNACCOUNTED.RUN_TIME]! - got) < 1e-12);
    assert.ok(s.values[UNACCOUNTED.USER]! >= 0 && s.values[UNACCOUNTED.SYSTEM]! >= 0);
    // The user part goes to what cpu.stat's user_usec lacks (0.1 s held by the records).
    assert.ok(Math.abs(s.values[UNACCOUNTED.USER]! - Math.min(got, Math.max(0, truth.user - 0.1))) < 1e-9);
    // The series moves only the CPU metrics, with the process schema's own descriptors.
    assert.deepEqual(
      CGROUP_UNACCOUNTED_SCHEMA.metrics,
      [RAW.USER, RAW.SYSTEM, RAW.RUN_TIME].map((i) => SCHEMA.metrics[i]),
    );
    // Nothing new: nothing reported.
    assert.equal(unaccounted(cycle(), cg.cgroupPath).length, 0);
    // Samples holding more than cpu.stat (a process that moved in brings its whole life): no
    // negative growth, and later work first fills the gap.
    r.observe([processSample(cg.cgroupPath, 1, 0)]);
    assert.equal(unaccounted(cycle(), cg.cgroupPath).length, 0);
    await runTsload(['burn', '50000'], { cgroupProcs: cg.procsFile });
    assert.ok(cpuStat(cg.dir).usage < truth.usage + 1);
    assert.equal(unaccounted(cycle(), cg.cgroupPath).length, 0);
  });

  // Files kept open and re-read (the default), and opened for each reading (beyond maxOpenFiles).
  for (const [mode, maxOpenFiles] of [
    ['files kept open', undefined],
    ['files opened per reading', 0],
  ] as const) {
    test(`a cgroup removed between two readings reports up to its cpu.stat when it became empty, then is counted and forgotten (${mode})`, async () => {
      const cg = createTestCgroup('workload-vanish');
      groups.push(cg);
      await runTsload(['burn', '30000'], { cgroupProcs: cg.procsFile });
      const { r, telemetry, cycle } = reconciler(undefined, maxOpenFiles);
      r.observe([processSample(cg.cgroupPath, 0.01, 0)]);
      const first = unaccounted(cycle(), cg.cgroupPath);
      assert.equal(first.length, 1);
      const reported = (b: SampleBatch) => b.reduce((t, x) => t + x.values[UNACCOUNTED.USER]! + x.values[UNACCOUNTED.SYSTEM]!, 0);
      // More work after that reading, then the group empties and is removed before the next one.
      await runTsload(['burn', '40000'], { cgroupProcs: cg.procsFile });
      r.observe([processSample(cg.cgroupPath, 0.035, 0)]);
      await sleep(200); // the cgroup.events watch fires on `populated 0`
      const final = cpuStat(cg.dir).usage;
      await cg.remove();
      const last = unaccounted(cycle(), cg.cgroupPath);
      assert.equal(last.length, 1, 'the final reading is reported');
      const total = reported(first) + reported(last);
      assert.ok(Math.abs(total - (final - 0.045)) < 1e-9, `reported ${total} vs final cpu.stat ${final} - records 0.045`);
      assert.equal(telemetry.counters.get('cgroups_vanished'), 1);
      assert.equal(r.size, 0);
      assert.equal(unaccounted(cycle(), cg.cgroupPath).length, 0);
      r.close();
    });

    test(`PSI: the cgroup's some/full stall totals, as seconds, equal its *.pressure files (${mode})`, async () => {
      const cg = createTestCgroup('workload-psi');
      groups.push(cg);
      // Three burners on this machine's cores: tasks of the group wait for a CPU (cpu some).
      await Promise.all([0, 1, 2].map(() => runTsload(['burn', '300000'], { cgroupProcs: cg.procsFile })));
      const { r, cycle } = reconciler({ reconcile: false, pressure: true }, maxOpenFiles);
      r.observe([processSample(cg.cgroupPath, 0.9, 0)]);
      const out = cycle();
      const totals = (file: string) => {
        const t = readFileSync(join(cg.dir, file), 'utf8');
        return [...t.matchAll(/total=(\d+)/g)].map((m) => Number(m[1]) / 1e6);
      };
      const expected = [...totals('cpu.pressure'), ...totals('memory.pressure'), ...totals('io.pressure')];
      const p = out.filter((s) => s.schema === CGROUP_PRESSURE_SCHEMA);
      assert.equal(p.length, 1);
      assert.deepEqual(p[0]!.attributes, { [ATTR.CGROUP]: cg.cgroupPath });
      assert.equal(p[0]!.values.length, expected.length);
      p[0]!.values.forEach((v, k) => assert.ok(Math.abs(v - expected[k]!) < 1e-9, `value ${k}: ${v} vs the file's ${expected[k]}`));
      assert.ok(expected[0]! > 0, `cpu some ${expected[0]} s: three burners on ${String(availableParallelism())} cores waited`);
      assert.equal(unaccounted(out, cg.cgroupPath).length, 0, 'reconcile off: no unaccounted series');
      // Growth only afterwards: nothing new, zeros.
      const again = cycle().filter((s) => s.schema === CGROUP_PRESSURE_SCHEMA);
      assert.ok(again.every((s) => s.values.every((v) => v === 0)));
      // More stalls: the next reading is the files' new content (re-read, not the first one).
      await Promise.all([0, 1, 2].map(() => runTsload(['burn', '200000'], { cgroupProcs: cg.procsFile })));
      const grown = cycle().filter((s) => s.schema === CGROUP_PRESSURE_SCHEMA);
      const now = [...totals('cpu.pressure'), ...totals('memory.pressure'), ...totals('io.pressure')];
      assert.equal(grown.length, 1);
      grown[0]!.values.forEach((v, k) =>
        assert.ok(Math.abs(v - (now[k]! - expected[k]!)) < 1e-9, `value ${k}: ${v} vs the file's growth ${now[k]! - expected[k]!}`),
      );
      assert.ok(grown[0]!.values[0]! > 0, 'cpu some grew');
      r.close();
    });
  }

  test('not reconciled: the root, unknown cgroups, and a cgroup with a reported descendant', async () => {
    const parent = createTestCgroup('workload-parent');
    groups.push(parent);
    const child = join(parent.dir, 'child');
    mkdirSync(child);
    try {
      await runTsload(['burn', '20000'], { cgroupProcs: join(child, 'cgroup.procs') });
      const { r, cycle } = reconciler();
      r.observe([processSample('/', 0, 0), processSample('', 0, 0), processSample(parent.cgroupPath, 0, 0), processSample(`${parent.cgroupPath}/child`, 0, 0)]);
      assert.equal(r.size, 2);
      const out = cycle();
      assert.equal(unaccounted(out, parent.cgroupPath).length, 0, "the parent's cpu.stat includes the child");
      assert.equal(unaccounted(out, `${parent.cgroupPath}/child`).length, 1);
    } finally {
      rmdirSync(child);
    }
  });
});
