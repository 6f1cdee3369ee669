/**
 * Agent configurations shared by the fault tests: the taskstats receiver feeding the otlp
 * exporter, with a short collection interval so that tests see data within seconds.
 */
import { after, before } from 'node:test';
import type { AgentProcess } from '../support/agent.js';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/victoriametrics.js';
import type { TestCgroup } from '../support/workload.js';

export interface FaultConfigOptions {
  /** OTLP/HTTP metrics URL (full, e.g. http://127.0.0.1:8428/opentelemetry/v1/metrics). */
  metricsUrl: string;
  collectionInterval?: string;
  /** Extra keys for the otlp exporter (retry_on_failure, sending_queue, timeout ...). */
  otlp?: Record<string, unknown>;
  /** Extra keys for the taskstats receiver. */
  taskstats?: Record<string, unknown>;
  seriesLimit?: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

/** A config document as YAML maps it; tests change its keys (also to wrong types) before writing it. */
export type FaultConfig = {
  receivers: { taskstats: Record<string, unknown> };
  processors?: Record<string, unknown>;
  exporters: { otlp: Record<string, unknown> };
  service: {
    telemetry: { logs: Record<string, unknown>; metrics?: Record<string, unknown> };
    pipelines: { metrics: Record<string, unknown> };
  };
};

export function faultConfig(o: FaultConfigOptions): FaultConfig {
  const pipeline: Record<string, unknown> = { receivers: ['taskstats'], exporters: ['otlp'] };
  if (o.seriesLimit !== undefined) pipeline.aggregation = { series_limit: o.seriesLimit };
  return {
    receivers: { taskstats: { collection_interval: o.collectionInterval ?? '1s', ...o.taskstats } },
    exporters: { otlp: { metrics_endpoint: o.metricsUrl, ...o.otlp } },
    service: {
      telemetry: { logs: { level: o.logLevel ?? 'info', encoding: 'json' } },
      pipelines: { metrics: pipeline },
    },
  };
}

/**
 * Sum over the series matching `match` of each one's newest value (for cumulative counters: the
 * total the backend holds), after making VictoriaMetrics' recent data searchable.
 */
export async function latestSum(vm: VictoriaMetrics, name: string, labels: Record<string, string>): Promise<{ total: number; series: number }> {
  await vm.flush();
  const sel = [`__name__="${name}"`, ...Object.entries(labels).map(([k, v]) => `"${k}"="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)].join(',');
  const all = await vm.exportSeries(`{${sel}}`);
  let total = 0;
  for (const s of all) {
    let last = 0;
    for (let i = 1; i < s.timestamps.length; i++) if (s.timestamps[i]! >= s.timestamps[last]!) last = i;
    total += s.values[last]!;
  }
  return { total, series: all.length };
}

/** process.exits the backend holds for one cgroup (every exit code). */
export async function exitsInBackend(vm: VictoriaMetrics, cgroupPath: string): Promise<number> {
  return (await latestSum(vm, 'process.exits', { 'process.linux.cgroup': cgroupPath })).total;
}

/** Wait until the backend holds exactly `expected` exits for the cgroup; returns the last value seen. */
export async function waitForExits(vm: VictoriaMetrics, cgroupPath: string, expected: number, timeoutMs = 30_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    try {
      last = await exitsInBackend(vm, cgroupPath);
    } catch {
      /* the backend may be starting */
    }
    if (last >= expected || Date.now() > until) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface BackendFixture {
  /** The VictoriaMetrics of the enclosing describe() (started before its tests). */
  readonly vm: VictoriaMetrics;
  /** The agent a test runs; killed after the tests if one is left (set it back to undefined once stopped). */
  agent: AgentProcess | undefined;
  /** Cgroups the tests made, removed after them. */
  readonly cgroups: TestCgroup[];
}

/** A real VictoriaMetrics for the tests of the enclosing describe(), and the cleanup after them. */
export function withVictoriaMetrics(): BackendFixture {
  let vm: VictoriaMetrics | undefined;
  const f: BackendFixture = {
    get vm(): VictoriaMetrics {
      if (vm === undefined) throw new Error('VictoriaMetrics did not start');
      return vm;
    },
    agent: undefined,
    cgroups: [],
  };
  before(async () => {
    vm = await startVictoriaMetrics();
  });
  after(async () => {
    await f.agent?.kill();
    for (const cg of f.cgroups) await cg.remove();
    await vm?.stop();
  });
  return f;
}
