// test-requires: root taskstats libnl cgroup2 cc
/**
 * Per-pod totals that equal the kernel's cgroup accounting, end to end: `bin/taskstats-agent run`
 * (default receiver settings: cgroups.reconcile on) exporting over OTLP to a real VictoriaMetrics,
 * while a kubepods-style hierarchy this test creates under the cgroup v2 mount
 * (kubepods-*.slice/kubepods-*-pod*.slice/cri-containerd-*.scope) runs known work:
 *  - container A: 200 short-lived processes of 10 ms CPU (forked one after another), one process
 *    burning 2 s (alive across collections), one process of 4 threads burning 200 ms each;
 *  - container B: short-lived processes, then, between two collections, a last burst and the
 *    removal of the cgroup (what a pod deletion does).
 * The truth is each container cgroup's own cpu.stat (usage_usec), read by the test after its work
 * (for B just before the removal). What VictoriaMetrics holds for the cgroup, process.cpu.time
 * summed over every series of it (each command and the [cgroup-unaccounted] series) must be
 * 99.5-100.5% of it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { cgroupTestSkipReason, cgroupV2Root } from '../support/cgroup.js';
import { compileC, repoRoot, runTsload, sleep, tsloadAs } from '../support/workload.js';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/victoriametrics.js';

const TAG = String(process.pid % 100000);
const KUBEPODS = `kubepods-workload${TAG}.slice`;
const POD = `kubepods-workload${TAG}-pod0f1e2d3c.slice`;
const INTERVAL_MS = 2000;

// threads N BURN_US: N threads each burning BURN_US of its own CPU time, joined.
const THREADS_C = String.raw`
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
static long long burn_us;
static long long thread_cpu_us(void) { struct timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000; }
static void *burn(void *a) { (void)a; long long end = thread_cpu_us() + burn_us; volatile unsigned long x = 0; while (thread_cpu_us() < end) for (int i = 0; i < 1000; i++) x += i; return 0; }
int main(int argc, char **argv) {
  if (argc < 3) return 64;
  int n = atoi(argv[1]); burn_us = atoll(argv[2]);
  pthread_t t[64];
  for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], 0, burn, 0);
  for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], 0);
  return 0;
}
`;

interface Container {
  readonly dir: string;
  /** As /proc/PID/cgroup shows it. */
  readonly path: string;
  readonly procsFile: string;
  usageS(): number;
  remove(): Promise<void>;
}

function container(root: string, id: string): Container {
  const path = `/${KUBEPODS}/${POD}/cri-containerd-${id}.scope`;
  const dir = join(root, path);
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    path,
    procsFile: join(dir, 'cgroup.procs'),
    usageS: () => Number(/^usage_usec (\d+)$/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))![1]) / 1e6,
    async remove() {
      for (let i = 0; i < 200 && existsSync(dir); i++) {
        try {
          if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() !== '') writeFileSync(join(dir, 'cgroup.kill'), '1');
          rmdirSync(dir);
        } catch {
          await sleep(25);
        }
      }
    },
  };
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (taskstats needs CAP_NET_ADMIN; the test creates cgroups)';
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) return 'the agent is not built (dist/src/cli.js)';
  return cgroupTestSkipReason();
}

/** Latest value of every series of `name` for the cgroup, summed, and per executable name. */
async function cpuOf(vm: VictoriaMetrics, name: string, cgroupPath: string): Promise<{ total: number; byName: Map<string, number> }> {
  const byName = new Map<string, number>();
  let total = 0;
  for (const s of await vm.exportSeries(`{__name__="${name}","process.linux.cgroup"="${cgroupPath}"}`)) {
    const v = s.values[s.values.length - 1]!;
    total += v;
    const n = s.metric['process.executable.name'] ?? '?';
    byName.set(n, (byName.get(n) ?? 0) + v);
  }
  return { total, byName };
}

describe('per-pod CPU equal to cpu.stat at VictoriaMetrics (kubepods-style cgroups)', { timeout: 300_000, skip: skipReason() }, () => {
  let vm: VictoriaMetrics | undefined;
  let agent: AgentProcess | undefined;
  let a: Container | undefined;
  let b: Container | undefined;
  let truthA = 0;
  let truthB = 0;

  before(async () => {
    const root = cgroupV2Root()!;
    vm = await startVictoriaMetrics();
    agent = await startAgent({
      config: {
        receivers: { taskstats: { collection_interval: `${INTERVAL_MS}ms` } },
        exporters: { otlp: { endpoint: vm.otlpEndpoint, retry_on_failure: { initial_interval: '200ms', max_interval: '1s' } } },
        service: { pipelines: { metrics: { receivers: ['taskstats'], exporters: ['otlp'] } } },
      },
    });
    a = container(root, `a${TAG}`);
    b = container(root, `b${TAG}`);
    const threads = compileC(THREADS_C, 'threads', ['-lpthread']);
    await Promise.all([
      runTsload(['fork', '200', '10000', '', `rcs${TAG}`], { cgroupProcs: a.procsFile, bin: tsloadAs(`rcl${TAG}`), timeoutMs: 120_000 }),
      runTsload(['burn', '2000000'], { cgroupProcs: a.procsFile, bin: tsloadAs(`rcg${TAG}`), timeoutMs: 120_000 }),
      runTsload(['4', '200000'], { cgroupProcs: a.procsFile, bin: threads, timeoutMs: 60_000 }),
      // B: work the agent reads at a collection or two...
      runTsload(['fork', '100', '5000', '', `rbs${TAG}`], { cgroupProcs: b.procsFile, bin: tsloadAs(`rbl${TAG}`), timeoutMs: 120_000 }),
    ]);
    await sleep(INTERVAL_MS + 500);
    // ... then a last burst and the removal, between two collections.
    await runTsload(['fork', '50', '5000', '', `rbs${TAG}`], { cgroupProcs: b.procsFile, bin: tsloadAs(`rbl${TAG}`), timeoutMs: 60_000 });
    truthB = b.usageS();
    // A container runtime removes the cgroup after it has handled the task's exit (tens of ms and
    // more); the agent reads cpu.stat when cgroup.events says `populated 0`, in between.
    await sleep(100);
    await b.remove();
    assert.ok(!existsSync(b.dir), 'container B removed');
    truthA = a.usageS();
    // Two more collections: the last records and remainders reach the backend.
    await sleep(2 * INTERVAL_MS + 1000);
    await vm.flush();
  });

  after(async () => {
    await a?.remove();
    await b?.remove();
    const root = cgroupV2Root();
    if (root) {
      for (const d of [join(root, KUBEPODS, POD), join(root, KUBEPODS)]) {
        try {
          rmdirSync(d);
        } catch {
          /* already gone */
        }
      }
    }
    await agent?.kill();
    await vm?.stop();
  });

  test('container A (short-lived, long-lived and multi-threaded processes): process.cpu.time over all its series is 99.5-100.5% of cpu.stat', async () => {
    const cpu = await cpuOf(vm!, 'process.cpu.time', a!.path);
    const run = await cpuOf(vm!, 'process.linux.cpu.run_time', a!.path);
    const line =
      `container A: cpu.stat ${truthA.toFixed(4)} s, backend process.cpu.time ${cpu.total.toFixed(4)} s (${((100 * cpu.total) / truthA).toFixed(3)}%), ` +
      `run_time ${run.total.toFixed(4)} s; by name: ${[...cpu.byName].map(([n, v]) => `${n} ${v.toFixed(4)}`).join(', ')}`;
    console.log(line);
    assert.ok(cpu.byName.has('[cgroup-unaccounted]'), `the unaccounted series is there: ${line}`);
    assert.ok(cpu.total / truthA >= 0.995 && cpu.total / truthA <= 1.005, line);
    assert.ok(run.total / truthA >= 0.995 && run.total / truthA <= 1.005, line);
    // The work is all there: 200 x 10 ms + 2 s + 4 x 200 ms.
    assert.ok(truthA >= 4.8, line);
  });

  test('container B, removed between two collections, loses nothing its cpu.stat had shown (99.5-100.5%), and the removal is counted', async () => {
    const cpu = await cpuOf(vm!, 'process.cpu.time', b!.path);
    const line = `container B (removed): cpu.stat before removal ${truthB.toFixed(4)} s, backend ${cpu.total.toFixed(4)} s (${((100 * cpu.total) / truthB).toFixed(3)}%); by name: ${[...cpu.byName].map(([n, v]) => `${n} ${v.toFixed(4)}`).join(', ')}`;
    console.log(line);
    assert.ok(cpu.total / truthB >= 0.995 && cpu.total / truthB <= 1.005, line);
    const m = await agent!.metrics();
    assert.ok(
      m.sum('taskstats_agent_receiver_cgroups_vanished_total') >= 1,
      `cgroups_vanished: ${m
        .select(/cgroups/)
        .map((s) => `${s.name}=${s.value}`)
        .join(' ')}`,
    );
    assert.ok(!agent!.logs.includes('"level":"error"'), `no error logged:\n${agent!.logs.slice(-2000)}`);
  });
});
