/**
 * Exits only (live: false): nothing but exit records and the per-collection expiry ends the state
 * the receiver keeps for a multi-threaded process. A process whose final (group) exit record is
 * lost (ENOBUFS) must not stay in the table for good.
 *
 * Against the real kernel, the loss is made exact with the listener's cpumask: the kernel sends an
 * exit record only to listeners registered for the CPU the task ends on. The test process's
 * worker threads end pinned to CPU A (heard: their state is kept), its last thread ends pinned to
 * CPU B (never heard, as if dropped). The receiver listens to CPU A only.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { compileC, waitFor } from '../../test/support/workload.js';
import { recordingContext } from '../../test/support/component-context.js';
import { TaskstatsReceiver, processStartSec, type ReceiverParts } from './receiver.js';
import { defaultReceiverParts } from './factory.js';
import { defaultTaskstatsConfig, parseCpulist, possibleCpus } from './config.js';
import { ProcessAccounting } from './accounting.js';
import { needs } from '../../test/support/caps.js';

const THREADS_THEN_LAST_ELSEWHERE = `
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static int cpuA, cpuB;
static void pin(int cpu) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s); if (sched_setaffinity(0, sizeof s, &s)) { perror("sched_setaffinity"); exit(3); } }
static void *work(void *x) { pin(cpuA); volatile long v = 0; for (long i = 0; i < 1000000; i++) v += i; return x; }
int main(int argc, char **argv) {
  cpuA = atoi(argv[1]); cpuB = atoi(argv[2]);
  pin(cpuB);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, work, NULL);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  printf("threads ended\\n"); fflush(stdout);
  char b[16];
  while (read(0, b, sizeof b) > 0) {}
  return 0; /* the last thread ends on cpuB */
}`;

function harness() {
  let cycles = 0;
  const ctx = {
    ...recordingContext('taskstats'),
    next: {
      consume() {},
      collectionDone: () => {
        cycles++;
      },
    },
  };
  return { ctx, counters: ctx.counters, cycles: () => cycles };
}

const cpus = parseCpulist(possibleCpus()) ?? [];

describe('taskstats receiver, exits only', { timeout: 60_000 }, () => {
  test('processStartSec: the start time of a live process matches its taskstats start time; -1 when gone', async () => {
    const me = processStartSec(process.pid);
    const uptime = process.uptime();
    assert.ok(Math.abs(me - (Date.now() / 1000 - uptime)) < 3, `start ${me}, expected about ${Date.now() / 1000 - uptime}`);
    const child = spawn('/bin/true');
    await new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(processStartSec(child.pid!), -1);
  });

  test(
    'a process whose final exit record is never heard is forgotten once it is gone, and counted as lost',
    { skip: needs('root', 'taskstats', 'libnl') || (cpus.length < 2 ? 'needs two CPUs' : false) },
    async () => {
      const [cpuA, cpuB] = [cpus[0]!, cpus[cpus.length - 1]!];
      const bin = compileC(THREADS_THEN_LAST_ELSEWHERE, 'threads-then-last', ['-pthread']);
      const h = harness();
      let acc: ProcessAccounting | undefined;
      const parts: ReceiverParts = {
        ...defaultReceiverParts,
        createAccounting: (o) => (acc = new ProcessAccounting(o)), // the default part, kept at hand
      };
      const r = new TaskstatsReceiver(h.ctx, { ...defaultTaskstatsConfig(), live: false, cpus: String(cpuA), collection_interval: 150 }, parts);
      await r.start();
      const child = spawn(bin, [String(cpuA), String(cpuB)], { stdio: ['pipe', 'pipe', 'inherit'] });
      try {
        await new Promise<void>((res, rej) => {
          child.stdout.on('data', (d) => String(d).includes('threads ended') && res());
          child.once('exit', (code) => rej(new Error(`test program ended early (${code})`)));
        });
        const pid = child.pid!;
        await waitFor("the worker threads' exits to be kept for the process", () => acc!.tracks(pid), 5000);
        // Still running: kept across several collections, whatever their number.
        const c0 = h.cycles();
        await waitFor('five collections', () => h.cycles() >= c0 + 5, 5000);
        assert.ok(acc!.tracks(pid), 'a living process is not expired');
        const lostBefore = h.counters.get('processes_lost') ?? 0;
        // The last thread ends on the CPU nobody listens to: its records are never heard.
        child.stdin.end();
        await new Promise((res) => (child.exitCode !== null ? res(null) : child.once('exit', res)));
        await waitFor('the ended process to be forgotten', () => !acc!.tracks(pid), 5000);
        assert.ok((h.counters.get('processes_lost') ?? 0) >= lostBefore + 1, 'counted in processes_lost');
      } finally {
        child.kill('SIGKILL');
        await r.shutdown();
      }
    },
  );
});
