import { defineExporter } from '../../src/api/index.js';
import { defaultPrometheusConfig, prometheusConfigSchema, type PrometheusExporterConfig } from './config.js';

export const prometheusExporterFactory = defineExporter<PrometheusExporterConfig>({
  type: 'prometheus',
  kind: 'exporter',
  description: 'Serves the latest metrics in Prometheus text format at http://<endpoint>/metrics (pull)',
  stability: 'beta',
  // A pull exporter of the latest metric values; events have no place in a scrape.
  signals: ['metrics'],
  defaultConfig: defaultPrometheusConfig,
  configSchema: prometheusConfigSchema,
  // The implementation (and @opentelemetry/exporter-prometheus) is loaded when a config uses it.
  async create(ctx, config) {
    const { PrometheusExporter } = await import('./exporter.js');
    return new PrometheusExporter(ctx, config);
  },
});
