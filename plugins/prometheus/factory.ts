import { defineExporter } from '../../src/api/index.js';
import {
  defaultPrometheusConfig,
  prometheusConfigSchema,
  validatePrometheusConfig,
  type PrometheusExporterConfig,
} from './config.js';
import { PrometheusExporter } from './exporter.js';

export const prometheusExporterFactory = defineExporter<PrometheusExporterConfig>({
  type: 'prometheus',
  kind: 'exporter',
  description: 'Serves the latest metrics in Prometheus text format at http://<endpoint>/metrics (pull)',
  stability: 'beta',
  defaultConfig: defaultPrometheusConfig,
  configSchema: prometheusConfigSchema,
  validate: validatePrometheusConfig,
  create: (ctx, config) => new PrometheusExporter(ctx, config),
});
