import { defineExporter, type Exporter, type LogExporter } from '../../src/api/index.js';
import { debugConfigSchema, defaultDebugConfig, type DebugExporterConfig } from './config.js';

export const debugExporterFactory = defineExporter<DebugExporterConfig, Exporter & LogExporter>({
  type: 'debug',
  kind: 'exporter',
  description: 'Prints a human-readable summary on stdout at each collection (top workloads by CPU, exits/s, largest delays), and events one per line',
  stability: 'beta',
  signals: ['metrics', 'logs'],
  defaultConfig: defaultDebugConfig,
  configSchema: debugConfigSchema,
  // The implementation is loaded when a config uses it (agent start-up memory: docs/deploy.md).
  async create(ctx, config) {
    const { DebugExporter } = await import('./exporter.js');
    return new DebugExporter(ctx, config, (text) => process.stdout.write(text));
  },
});
