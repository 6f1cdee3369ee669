import type { ConfigSchema } from '../../src/api/index.js';

export type DebugVerbosity = 'basic' | 'normal' | 'detailed';

export interface DebugExporterConfig {
  /** basic: top workloads by CPU, exits/s, largest delays. normal: more rows and more metrics. detailed: also every data point. */
  verbosity: DebugVerbosity;
  /** Rows per table; 0 = the verbosity's default (5 for basic, 10 otherwise). */
  top: number;
}

export function defaultDebugConfig(): DebugExporterConfig {
  return { verbosity: 'basic', top: 0 };
}

export const debugConfigSchema: ConfigSchema = {
  type: 'object',
  properties: {
    verbosity: { type: 'string', enum: ['basic', 'normal', 'detailed'] },
    top: { type: 'integer', minimum: 0, maximum: 1000 },
  },
};
