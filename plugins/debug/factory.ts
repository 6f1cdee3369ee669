import { defineExporter } from '../../src/api/index.js';
import { debugConfigSchema, defaultDebugConfig, type DebugExporterConfig } from './config.js';
import { DebugExporter } from './exporter.js';

export const debugExporterFactory = defineExporter<DebugExporterConfig>({
  type: 'debug',
  kind: 'exporter',
  description: 'Prints a human-readable summary on stdout at each collection: top workloads by CPU, exits/s, largest delays',
  stability: 'beta',
  defaultConfig: defaultDebugConfig,
  configSchema: debugConfigSchema,
  create: (ctx, config) => new DebugExporter(ctx, config, (text) => process.stdout.write(text)),
});
