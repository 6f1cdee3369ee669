import { definePlugin } from '../../src/api/index.js';
import { otlpExporterFactory } from './factory.js';

export { OtlpExporter, type OtlpExporterStats } from './exporter.js';
export { resolveOtlpSettings, type OtlpExporterConfig, type ResolvedOtlpSettings } from './config.js';

export default definePlugin({ factories: [otlpExporterFactory] });
