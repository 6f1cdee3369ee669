// The configuration the benchmarks run the agent with: the repository's default config.yaml (the
// full default pipeline a newcomer gets), with the otlp exporter pointed at the benchmark's
// VictoriaMetrics and the collection interval the benchmark needs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const root = new URL('../..', import.meta.url).pathname;

/**
 * @param {{ otlpMetricsUrl?: string, collectionInterval?: string, taskstats?: object, seriesLimit?: number }} o
 */
export function benchAgentConfig(o = {}) {
  const file = join(root, 'config.yaml');
  let config;
  if (existsSync(file)) {
    // ${env:...} references are left to the agent to expand.
    config = parse(readFileSync(file, 'utf8'));
  } else {
    config = { receivers: { taskstats: {} }, exporters: { otlp: {} }, service: { pipelines: { metrics: { receivers: ['taskstats'], exporters: ['otlp'] } } } };
  }
  config.receivers ??= {};
  config.receivers.taskstats ??= {};
  if (o.collectionInterval) config.receivers.taskstats.collection_interval = o.collectionInterval;
  Object.assign(config.receivers.taskstats, o.taskstats ?? {});
  config.exporters ??= {};
  if (o.otlpMetricsUrl) {
    config.exporters.otlp = { ...(config.exporters.otlp ?? {}), metrics_endpoint: o.otlpMetricsUrl };
    delete config.exporters.otlp.endpoint;
  }
  config.service ??= {};
  config.service.pipelines ??= { metrics: { receivers: ['taskstats'], exporters: [] } };
  for (const p of Object.values(config.service.pipelines)) {
    p.exporters ??= [];
    if (o.otlpMetricsUrl && !p.exporters.includes('otlp')) p.exporters.push('otlp');
    if (o.seriesLimit) p.aggregation = { ...(p.aggregation ?? {}), series_limit: o.seriesLimit };
  }
  config.service.telemetry ??= {};
  config.service.telemetry.logs = { ...(config.service.telemetry.logs ?? {}), encoding: 'json' };
  return config;
}
