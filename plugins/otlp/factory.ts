import { AgentError, defineExporter, ErrorCode, type Exporter, type ExporterFactory, type LogExporter } from '../../src/api/index.js';
import { defaultOtlpConfig, otlpConfigSchema, resolveOtlpSettings, validateOtlpConfig, type OtlpExporterConfig } from './config.js';

export const otlpExporterFactory: ExporterFactory<OtlpExporterConfig, Exporter & LogExporter> = defineExporter<OtlpExporterConfig, Exporter & LogExporter>({
  type: 'otlp',
  kind: 'exporter',
  description: 'Sends metrics and logs over OTLP (http/protobuf, http/json or grpc) with a bounded queue and retries',
  stability: 'beta',
  signals: ['metrics', 'logs'],
  defaultConfig: defaultOtlpConfig,
  configSchema: otlpConfigSchema,
  validate(config) {
    const problems = validateOtlpConfig(config);
    if (problems.length > 0) return problems;
    // Environment variables that the config leaves in charge must be valid too.
    try {
      resolveOtlpSettings(config, process.env, 'metrics');
      resolveOtlpSettings(config, process.env, 'logs');
    } catch (error) {
      if (error instanceof AgentError && error.code === ErrorCode.BAD_CONFIG) return [{ path: '', message: error.message }];
      throw error;
    }
    return [];
  },
  // The implementation (and through it the OpenTelemetry exporter packages) is loaded when a
  // config uses it (agent start-up memory: docs/deploy.md).
  async create(ctx, config) {
    const { OtlpExporter } = await import('./exporter.js');
    return new OtlpExporter(ctx, config);
  },
});
