// test-requires: root taskstats libnl
/**
 * The repository's config.yaml as a newcomer meets it: without a backend the agent prints a
 * summary on stdout within one collection interval and the otlp exporter stays quiet (one info
 * line, no warnings or errors); with OTEL_EXPORTER_OTLP_ENDPOINT set, the same file sends OTLP to
 * that backend (a real VictoriaMetrics here).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startAgent, type AgentProcess, type ConfigDocument } from '../support/agent.js';
import { repoRoot, waitFor } from '../support/workload.js';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/victoriametrics.js';

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (taskstats needs CAP_NET_ADMIN)';
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) return 'the agent is not built (dist/src/cli.js)';
  return undefined;
}

/** config.yaml as a mapping (its ${env:...} references stay text: the agent expands them). */
function defaultConfig(): ConfigDocument {
  return parse(readFileSync(join(repoRoot, 'config.yaml'), 'utf8')) as ConfigDocument;
}

/**
 * A few short-lived processes every second while `until` is pending: on a quiet machine nothing
 * may end within a 10 s interval, and the summary's "Exits:" line and process.exits need exits.
 */
async function withExits<T>(until: Promise<T>): Promise<T> {
  let done = false;
  const timer = setInterval(() => {
    if (!done) for (let i = 0; i < 3; i++) spawnSync('/bin/true');
  }, 1000);
  try {
    return await until;
  } finally {
    done = true;
    clearInterval(timer);
  }
}

describe('the default config.yaml', { timeout: 120_000, skip: skipReason() }, () => {
  const agents: AgentProcess[] = [];
  let vm: VictoriaMetrics | undefined;
  after(async () => {
    for (const a of agents) await a.kill();
    await vm?.stop();
  });

  test('no backend: a summary on stdout within one interval, the otlp exporter idle and quiet', async () => {
    const env: Record<string, string> = { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: '' };
    const agent = await startAgent({ config: defaultConfig(), env });
    agents.push(agent);
    const started = Date.now();
    await waitFor('a debug summary on stdout', () => /^--- debug .*\nCPU: /m.test(agent.stdout), 25_000, 200);
    const tookMs = Date.now() - started;
    // The first summary (processes alive at start, since they started) and a regular one.
    await withExits(waitFor('a second summary', () => (agent.stdout.match(/^--- debug /gm) ?? []).length >= 2, 25_000, 200));
    assert.match(agent.stdout, /^--- debug .* interval \d+\.\d s /m);
    assert.match(agent.stdout, /^Exits: \d+/m);
    const records = agent.logRecords();
    const otlp = records.filter((r) => r.component === 'otlp');
    assert.equal(otlp.filter((r) => /idle/.test(r.msg ?? '')).length, 1, JSON.stringify(otlp));
    assert.deepEqual(
      otlp.filter((r) => r.level === 'warn' || r.level === 'error'),
      [],
    );
    assert.deepEqual(
      records.filter((r) => r.level === 'error'),
      [],
    );
    console.log(`default config: first summary ${tookMs} ms after the agent was ready`);
    const stop = await agent.stop();
    assert.equal(stop.code, 0);
  });

  test('OTEL_EXPORTER_OTLP_ENDPOINT set: the same file sends OTLP to the backend', async () => {
    vm = await startVictoriaMetrics();
    const agent = await startAgent({ config: defaultConfig(), env: { OTEL_EXPORTER_OTLP_ENDPOINT: vm.otlpEndpoint } });
    agents.push(agent);
    const series = await vm.waitFor(
      async () => {
        const s = await vm!.exportSeries('{__name__="process.cpu.time"}');
        return s.length > 0 ? s : undefined;
      },
      'process.cpu.time from the agent',
      40_000,
    );
    const labels = series[0]!.metric;
    assert.ok(labels['cpu.mode'] === 'user' || labels['cpu.mode'] === 'system');
    assert.ok(labels['process.executable.name']);
    assert.ok(labels['process.linux.cgroup']?.startsWith('/'));
    assert.ok(labels['service.name'], `resource attributes become labels: ${JSON.stringify(labels)}`);
    // Exits arrive with the first regular collection (10 s).
    await withExits(
      vm.waitFor(async () => ((await vm!.exportSeries('{__name__="process.exits"}')).length > 0 ? true : undefined), 'process.exits from the agent', 40_000),
    );
    const otlp = agent.logRecords().filter((r) => r.component === 'otlp');
    assert.ok(
      otlp.some((r) => r.msg === 'otlp exporter ready'),
      JSON.stringify(otlp),
    );
    assert.deepEqual(
      otlp.filter((r) => r.level === 'warn' || r.level === 'error'),
      [],
    );
    const stop = await agent.stop();
    assert.equal(stop.code, 0);
  });
});
