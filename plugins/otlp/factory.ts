import { defineExporter, type ExporterFactory } from '../../src/api/index.js';
import { defaultOtlpConfig, otlpConfigSchema, OtlpConfigError, resolveOtlpSettings, validateOtlpConfig, type OtlpExporterConfig } from './config.js';

export const otlpExporterFactory: ExporterFactory<OtlpExporterConfig> = defineExporter<OtlpExporterConfig>({
  type: 'otlp',
  kind: 'exporter',
  description: 'Sends metrics over OTLP (http/protobuf, http/json or grpc) with a bounded queue and retries',
  stability: 'beta',
  defaultConfig: defaultOtlpConfig,
  configSchema: otlpConfigSchema,
  validate(config) {
    const problems = validateOtlpConfig(config);
    if (problems.length > 0) return problems;
    // Environment variables that the config leaves in charge must be valid too.
    try {
      resolveOtlpSettings(config);
    } catch (error) {
      if (error instanceof OtlpConfigError) return [{ path: '', message: error.message }];
      throw error;
    }
    return [];
  },
  // The implementation (and through it the OpenTelemetry exporter packages) is loaded when a
  // config uses it (agent start-up memory: docs/deploy.md).
  async create(ctx, config) {
    const settings = resolveOtlpSettings(config);
    const { OtlpExporter } = await import('./exporter.js');
    return new OtlpExporter(ctx, settings);
  },
});
