// test-requires: root taskstats libnl
/**
 * The whole agent with the otlp exporter in its other modes, against a local OTLP/JSON receiver
 * (VictoriaMetrics refuses JSON): protocol http/json, temporality delta, gzip and headers taken
 * from the OTEL_EXPORTER_OTLP_* environment. Delta sums summed over every request must give the
 * workload's exact totals: nothing counted twice, nothing lost between exports.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { createCgroup, forkedInCgroup, repoRoot, waitFor, type TestCgroup } from '../support/workload.js';

const PROCESSES = 50;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (taskstats needs CAP_NET_ADMIN; the test creates cgroups)';
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) return 'the agent is not built (dist/src/cli.js)';
  return undefined;
}

interface JsonPoint {
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  asDouble?: number;
  asInt?: string | number;
}

/** An OTLP/JSON export request, as far as this test reads it (every level may be absent). */
interface JsonRequest {
  resourceMetrics?: Array<{
    scopeMetrics?: Array<{ metrics?: Array<{ name: string; sum?: { aggregationTemporality?: number; dataPoints?: JsonPoint[] } }> }>;
  }>;
}

function attr(p: JsonPoint, key: string): unknown {
  const a = p.attributes.find((x) => x.key === key);
  return a ? Object.values(a.value)[0] : undefined;
}

describe('agent -> OTLP/JSON receiver, delta temporality, settings from the environment', { timeout: 120_000, skip: skipReason() }, () => {
  let agent: AgentProcess | undefined;
  let cg: TestCgroup | undefined;
  let server: http.Server | undefined;
  after(async () => {
    await cg?.remove().catch(() => undefined);
    await agent?.kill();
    server?.closeAllConnections();
    server?.close();
  });

  test('delta exits and CPU over all requests add up to the workload exactly', async () => {
    const requests: Array<{ headers: http.IncomingHttpHeaders; body: JsonRequest }> = [];
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let raw = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') raw = zlib.gunzipSync(raw);
        requests.push({ headers: req.headers, body: JSON.parse(raw.toString()) as JsonRequest });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;

    agent = await startAgent({
      config: {
        receivers: { taskstats: { collection_interval: '1s' } },
        exporters: { otlp: {} }, // everything from the environment
        service: { pipelines: { metrics: { receivers: ['taskstats'], exporters: ['otlp'] } } },
      },
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-scope-orgid=tenant%201,authorization=Bearer%20E2E-SECRET',
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
      },
    });
    cg = createCgroup('ts-e2e-json');
    const t0 = Date.now();
    await forkedInCgroup(cg, PROCESSES, 20_000, 'jsonburn');
    const kernelCpuS = cg.usageUsec() / 1e6;
    const processesRun = PROCESSES + 1; // and the launcher

    const totals = () => {
      let exits = 0;
      let cpu = 0;
      let nonDelta = 0;
      for (const r of requests) {
        for (const rm of r.body.resourceMetrics ?? []) {
          for (const sm of rm.scopeMetrics ?? []) {
            for (const m of sm.metrics ?? []) {
              if (m.name !== 'process.exits' && m.name !== 'process.cpu.time') continue;
              if (m.sum?.aggregationTemporality !== 1) nonDelta++;
              for (const p of m.sum?.dataPoints ?? []) {
                if (attr(p, 'process.linux.cgroup') !== cg!.path) continue;
                const v = p.asDouble ?? Number(p.asInt ?? 0);
                if (m.name === 'process.exits') exits += v;
                else cpu += v;
              }
            }
          }
        }
      }
      return { exits, cpu, nonDelta };
    };
    await waitFor('every exit of the workload in the delta requests', () => totals().exits >= processesRun, 30_000, 200);
    await new Promise((r) => setTimeout(r, 2500)); // later deltas must add nothing for the ended group
    const t = totals();
    console.log(
      `delta e2e: ${requests.length} requests in ${Date.now() - t0} ms; exits ${t.exits}/${processesRun}; CPU ${t.cpu.toFixed(4)} s vs cpu.stat ${kernelCpuS.toFixed(4)} s (${((100 * t.cpu) / kernelCpuS).toFixed(2)}%)`,
    );
    assert.equal(t.nonDelta, 0, 'every sum is delta (AGGREGATION_TEMPORALITY_DELTA = 1)');
    assert.equal(t.exits, processesRun, 'delta exits add up to the processes run');
    assert.ok(Math.abs(t.cpu / kernelCpuS - 1) <= 0.03, `delta CPU ${t.cpu} s vs cpu.stat ${kernelCpuS} s`);

    const last = requests[requests.length - 1]!;
    assert.equal(last.headers['content-type'], 'application/json');
    assert.equal(last.headers['content-encoding'], 'gzip');
    assert.equal(last.headers['x-scope-orgid'], 'tenant 1');
    assert.equal(last.headers.authorization, 'Bearer E2E-SECRET');
    assert.ok(!agent.logs.includes('E2E-SECRET'), 'header values never logged');
  });
});
