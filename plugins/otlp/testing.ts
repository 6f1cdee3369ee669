/**
 * Test helpers shared by the exporter tests (otlp, debug, prometheus, end-to-end): a component
 * context that records what a component logs and counts, and real sdk-metrics ResourceMetrics.
 * Not part of the plugin's runtime.
 */
import { MeterProvider, MetricReader, AggregationTemporality, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Meter } from '@opentelemetry/api';
import type { Attributes, ComponentContext } from '../../src/api/index.js';

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields?: Record<string, unknown>;
}

export interface RecordingContext extends ComponentContext {
  logs: LogEntry[];
  dropped: Record<string, number>;
  counters: Record<string, Array<{ value: number; attributes?: Attributes }>>;
  gauges: Record<string, () => number>;
  counterTotal(name: string, match?: Attributes): number;
}

export function recordingContext(id = 'otlp'): RecordingContext {
  const logs: LogEntry[] = [];
  const dropped: Record<string, number> = {};
  const counters: RecordingContext['counters'] = {};
  const gauges: RecordingContext['gauges'] = {};
  const log = (level: LogEntry['level']) => (msg: string, fields?: Record<string, unknown>) => {
    logs.push({ level, msg, fields });
  };
  return {
    id,
    logs,
    dropped,
    counters,
    gauges,
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    telemetry: {
      dropped(count, reason) {
        dropped[reason] = (dropped[reason] ?? 0) + count;
      },
      counter(name) {
        const entries = (counters[name] ??= []);
        return { add: (value, attributes) => void entries.push({ value, attributes }) };
      },
      gauge(name, _description, read) {
        gauges[name] = read;
      },
    },
    counterTotal(name, match) {
      return (counters[name] ?? [])
        .filter((e) => !match || Object.entries(match).every(([k, v]) => e.attributes?.[k] === v))
        .reduce((sum, e) => sum + e.value, 0);
    },
  };
}

class ManualReader extends MetricReader {
  constructor(temporality: AggregationTemporality) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/**
 * Real ResourceMetrics from the OpenTelemetry SDK: `record` uses the meter, then one collection.
 * Returns a collector to take further collections (for deltas or growing cumulative sums).
 */
export function sdkMetrics(
  resourceAttributes: Attributes,
  temporality: 'cumulative' | 'delta' = 'cumulative',
): { meter: Meter; collect(): Promise<ResourceMetrics>; shutdown(): Promise<void> } {
  const reader = new ManualReader(temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE);
  const provider = new MeterProvider({ resource: resourceFromAttributes(resourceAttributes), readers: [reader] });
  return {
    meter: provider.getMeter('taskstats-agent-test'),
    async collect() {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length) throw errors[0];
      return resourceMetrics;
    },
    shutdown: () => provider.shutdown(),
  };
}
