import { definePlugin } from '../../src/api/index.js';
import { otlpExporterFactory } from './factory.js';

// Implementation classes are not re-exported here: importing this module (as the agent does at
// start) must not load them; create() loads them when a config uses the component.
export type { OtlpExporter, OtlpExporterStats } from './exporter.js';
export { resolveOtlpSettings, type OtlpExporterConfig, type ResolvedOtlpSettings } from './config.js';

export default definePlugin({ factories: [otlpExporterFactory] });
