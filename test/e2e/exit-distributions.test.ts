// test-requires: root taskstats libnl cgroup2 cc
/**
 * Distributions from exit records, end to end: `bin/taskstats-agent run` (taskstats receiver,
 * histograms on by default, otlp exporter over http/json to a local receiver) while known
 * processes run: 20 that live 100 ms, 20 that live 400 ms (both sleeping), 10 that burn 50 ms of
 * CPU after touching 16 MB. The truth is a second listener (test/support/exit-fields.c, the
 * kernel's own struct taskstats header, no code of the agent's): for each group the exported
 * histograms of process.linux.lifetime, process.linux.exit.cpu.time,
 * process.linux.exit.memory.peak and process.linux.exit.delay.cpu must have the count and sum of
 * the group's records, and each process's value in the bucket the OpenTelemetry specification
 * gives it at the exported scale: (base^i, base^(i+1)], base = 2^(2^-scale).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { compileC, createCgroup, repoRoot, waitFor, type TestCgroup } from '../support/workload.js';
import { startExitFields, type ExitFields, type ExitFieldsRecord } from '../support/exit-fields.js';
import { runTsload } from '../support/workload.js';

const TAG = String(process.pid % 10000);
const GROUPS = [
  { name: `hs1${TAG}`, n: 20, burnUs: 0, sleepUs: 100_000, mb: 0 },
  { name: `hs4${TAG}`, n: 20, burnUs: 0, sleepUs: 400_000, mb: 0 },
  { name: `hb${TAG}`, n: 10, burnUs: 50_000, sleepUs: 0, mb: 16 },
];

// lives N BURN_US SLEEP_US MB NAME: N children at once, each named NAME, touching MB megabytes,
// burning BURN_US of CPU, then sleeping SLEEP_US; the parent waits for all of them.
const LIVES_C = String.raw`
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long cpu_us(void) { struct timespec ts; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000; }
int main(int argc, char **argv) {
  if (argc < 6) return 64;
  long n = atol(argv[1]); long long burn = atoll(argv[2]); long sleep_us = atol(argv[3]); long mb = atol(argv[4]);
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      prctl(PR_SET_NAME, argv[5], 0, 0, 0);
      if (mb > 0) { volatile char *m = malloc((size_t)mb << 20); for (size_t j = 0; m && j < ((size_t)mb << 20); j += 4096) m[j] = 1; }
      long long end = cpu_us() + burn; volatile unsigned long x = 0;
      while (cpu_us() < end) for (int k = 0; k < 1000; k++) x += k;
      if (sleep_us > 0) usleep(sleep_us);
      _exit(0);
    }
  }
  while (wait(NULL) > 0) {}
  return 0;
}
`;

interface JsonHistogram {
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  count: string | number;
  sum: number;
  scale: number;
  zeroCount: string | number;
  positive?: { offset?: number; bucketCounts?: Array<string | number> };
}
interface JsonMetric {
  name: string;
  exponentialHistogram?: { dataPoints: JsonHistogram[] };
}
interface JsonRequest {
  resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: JsonMetric[] }> }>;
}

function exeName(p: JsonHistogram): unknown {
  const a = p.attributes.find((x) => x.key === 'process.executable.name');
  return a ? Object.values(a.value)[0] : undefined;
}

/** The bucket index of v > 0 at `scale` by the specification's definition (not the agent's code). */
function specIndex(v: number, scale: number): number {
  return Math.ceil(Math.log2(v) * 2 ** scale) - 1;
}

const METRICS: Array<{ metric: string; of: (r: ExitFieldsRecord) => number }> = [
  { metric: 'process.linux.lifetime', of: (r) => r.groupElapsedUs / 1e6 },
  { metric: 'process.linux.exit.cpu.time', of: (r) => r.runVirtualNs / 1e9 },
  { metric: 'process.linux.exit.memory.peak', of: (r) => r.hiwaterRssKb * 1024 },
  { metric: 'process.linux.exit.delay.cpu', of: (r) => r.cpuDelayNs / 1e9 },
];

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (taskstats needs CAP_NET_ADMIN; the test creates cgroups)';
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) return 'the agent is not built (dist/src/cli.js)';
  return undefined;
}

describe('exit distributions: histograms per workload exact to the kernel records', { timeout: 180_000, skip: skipReason() }, () => {
  let agent: AgentProcess | undefined;
  let truth: ExitFields | undefined;
  let cg: TestCgroup | undefined;
  let server: http.Server | undefined;
  /** Latest cumulative point per metric and executable name. */
  const latest = new Map<string, JsonHistogram>();

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as JsonRequest;
        for (const rm of body.resourceMetrics)
          for (const sm of rm.scopeMetrics)
            for (const m of sm.metrics) for (const p of m.exponentialHistogram?.dataPoints ?? []) latest.set(`${m.name}\u0000${String(exeName(p))}`, p);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    agent = await startAgent({
      config: {
        // The histograms are on by default: nothing to switch on.
        receivers: { taskstats: { collection_interval: '1s' } },
        exporters: { otlp: { endpoint: `http://127.0.0.1:${port}`, protocol: 'http/json' } },
        service: { pipelines: { metrics: { receivers: ['taskstats'], exporters: ['otlp'] } } },
      },
    });
    truth = await startExitFields();
    cg = createCgroup('workload-hist');
    const lives = compileC(LIVES_C, 'lives');
    for (const g of GROUPS) {
      await runTsload([String(g.n), String(g.burnUs), String(g.sleepUs), String(g.mb), g.name], { bin: lives, cgroupProcs: cg.procsFile, timeoutMs: 60_000 });
    }
    await waitFor(
      'every group ended in the exported histograms and in the truth listener',
      () => GROUPS.every((g) => Number(latest.get(`process.linux.lifetime\u0000${g.name}`)?.count ?? 0) >= g.n && truth!.ofComm(g.name).length >= g.n),
      30_000,
      200,
    ).catch(() => undefined);
  });

  after(async () => {
    await truth?.stop();
    await cg?.remove().catch(() => undefined);
    await agent?.kill();
    server?.closeAllConnections();
    server?.close();
  });

  for (const g of GROUPS) {
    for (const { metric, of } of METRICS) {
      test(`${metric} of ${g.n} processes (${g.sleepUs / 1000} ms asleep, ${g.burnUs / 1000} ms CPU): count, sum and each process's bucket`, () => {
        const records = truth!.ofComm(g.name);
        assert.equal(records.length, g.n, `the truth listener heard ${records.length} of ${g.n}`);
        const p = latest.get(`${metric}\u0000${g.name}`);
        assert.ok(p, `no ${metric} point for ${g.name}; agent log:\n${agent!.logs.slice(-1500)}`);
        const values = records.map(of);
        const sum = values.reduce((a, b) => a + b, 0);
        assert.equal(Number(p.count), g.n);
        assert.ok(Math.abs(p.sum - sum) <= 1e-9 * Math.max(1, sum), `${metric} sum ${p.sum} vs records ${sum}`);
        // Each process in its bucket: expected counts per index at the exported scale.
        const expected = new Map<number, number>();
        let zeros = 0;
        for (const v of values) {
          if (v === 0) zeros++;
          else expected.set(specIndex(v, p.scale), (expected.get(specIndex(v, p.scale)) ?? 0) + 1);
        }
        assert.equal(Number(p.zeroCount), zeros, 'zero bucket');
        const got = new Map<number, number>();
        (p.positive?.bucketCounts ?? []).forEach((c, k) => {
          if (Number(c) > 0) got.set((p.positive?.offset ?? 0) + k, Number(c));
        });
        assert.deepEqual(
          [...got].sort((a, b) => a[0] - b[0]),
          [...expected].sort((a, b) => a[0] - b[0]),
          `${metric} buckets at scale ${p.scale}`,
        );
        assert.ok((p.positive?.bucketCounts ?? []).length <= 160);
        if (metric === 'process.linux.lifetime') {
          // Sanity of the workload itself: each lived at least its sleep.
          for (const v of values) assert.ok(v >= g.sleepUs / 1e6, `lifetime ${v} s`);
        }
      });
    }
  }
});
