/**
 * The agent's own metrics: what each component accepted, dropped (with a reason), sent and failed,
 * queue sizes, and the counters and gauges components register. Exported to every pipeline's
 * exporters as an extra scope (`taskstats-agent.self`) and served at /metrics in Prometheus text.
 *
 * Host counters are handed out as CounterSeries objects held by the code that counts, so counting
 * on the hot path is one addition with no lookup.
 */
import type { MetricData, ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { AggregationTemporality, DataPointType, prometheusMetricName, ValueType } from './api/index.js';
import type { Attributes, ComponentKind, ComponentTelemetry } from './api/index.js';

export const SELF_SCOPE_NAME = 'taskstats-agent.self';
export const METRIC_PREFIX = 'taskstats_agent';

/** Names of the metrics the host records (docs/self-telemetry.md describes each). */
export const SELF_METRICS = {
  receiverAccepted: `${METRIC_PREFIX}.receiver.accepted_samples`,
  processorIncoming: `${METRIC_PREFIX}.processor.incoming_samples`,
  processorOutgoing: `${METRIC_PREFIX}.processor.outgoing_samples`,
  dropped: `${METRIC_PREFIX}.component.dropped_items`,
  exporterSent: `${METRIC_PREFIX}.exporter.sent_points`,
  exporterFailed: `${METRIC_PREFIX}.exporter.failed_points`,
  exporterFailedExports: `${METRIC_PREFIX}.exporter.failed_exports`,
  pipelineCollections: `${METRIC_PREFIX}.pipeline.collections`,
  pipelineQueue: `${METRIC_PREFIX}.pipeline.queue_size`,
  receiverAcceptedLogs: `${METRIC_PREFIX}.receiver.accepted_log_records`,
  processorIncomingLogs: `${METRIC_PREFIX}.processor.incoming_log_records`,
  processorOutgoingLogs: `${METRIC_PREFIX}.processor.outgoing_log_records`,
  exporterSentLogs: `${METRIC_PREFIX}.exporter.sent_log_records`,
  exporterFailedLogs: `${METRIC_PREFIX}.exporter.failed_log_records`,
  pipelineLogBatches: `${METRIC_PREFIX}.pipeline.log_batches`,
  pipelineBatchPending: `${METRIC_PREFIX}.pipeline.batch_pending_records`,
  uptime: `${METRIC_PREFIX}.process.uptime`,
  rss: `${METRIC_PREFIX}.process.memory.rss`,
  cpu: `${METRIC_PREFIX}.process.cpu.time`,
  uncaughtErrors: `${METRIC_PREFIX}.uncaught_errors`,
} as const;

const HOST_METRIC_NAMES: ReadonlySet<string> = new Set(Object.values(SELF_METRICS));

export class CounterSeries {
  value = 0;
  constructor(readonly attributes: Attributes) {}
  add(n: number): void {
    if (n > 0) this.value += n;
  }
}

interface GaugeReader {
  attributes: Attributes;
  read: () => number;
}

export class MetricFamily {
  readonly series = new Map<string, CounterSeries>();
  readonly gauges: GaugeReader[] = [];
  constructor(
    readonly name: string,
    readonly description: string,
    readonly unit: string,
    readonly kind: 'counter' | 'gauge',
    readonly valueType: 'int' | 'double',
  ) {}
}

export interface SnapshotPoint {
  attributes: Attributes;
  value: number;
}
export interface FamilySnapshot {
  family: MetricFamily;
  points: SnapshotPoint[];
}

function attributesKey(a: Attributes): string {
  const keys = Object.keys(a).sort();
  let s = '';
  for (const k of keys) s += `${k}\0${String(a[k])}\0`;
  return s;
}

function toHrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** Remembers what one consumer (a delta exporter) was last sent, to hand it differences. */
export class DeltaState {
  readonly last = new Map<string, number>();
  lastTimeMs: number;
  constructor(startMs: number) {
    this.lastTimeMs = startMs;
  }
}

export class SelfTelemetry {
  private readonly families = new Map<string, MetricFamily>();
  readonly startTimeMs = Date.now();

  constructor(readonly version: string) {
    this.gauge(SELF_METRICS.uptime, 'Time since the agent started.', 's', {}, () => (Date.now() - this.startTimeMs) / 1000, 'double');
    this.gauge(SELF_METRICS.rss, 'Resident memory of the agent process.', 'By', {}, () => process.memoryUsage.rss());
    const cpu = this.family(SELF_METRICS.cpu, 'CPU time used by the agent process.', 's', 'gauge', 'double');
    cpu.gauges.push({ attributes: { 'cpu.mode': 'user' }, read: () => process.cpuUsage().user / 1e6 });
    cpu.gauges.push({ attributes: { 'cpu.mode': 'system' }, read: () => process.cpuUsage().system / 1e6 });
  }

  /** The family of that name, created on first use (first description wins). */
  family(name: string, description: string, unit: string, kind: 'counter' | 'gauge', valueType: 'int' | 'double' = 'int'): MetricFamily {
    let f = this.families.get(name);
    if (!f) {
      f = new MetricFamily(name, description, unit, kind, valueType);
      this.families.set(name, f);
    }
    return f;
  }

  /** A counter series of a family, created on first use. */
  counter(name: string, description: string, unit: string, attributes: Attributes, valueType: 'int' | 'double' = 'int'): CounterSeries {
    const f = this.family(name, description, unit, 'counter', valueType);
    if (f.kind !== 'counter') throw new Error(`self-metric ${name} is already registered as a gauge`);
    const key = attributesKey(attributes);
    let s = f.series.get(key);
    if (!s) {
      s = new CounterSeries(attributes);
      f.series.set(key, s);
    }
    return s;
  }

  gauge(name: string, description: string, unit: string, attributes: Attributes, read: () => number, valueType: 'int' | 'double' = 'int'): void {
    const f = this.family(name, description, unit, 'gauge', valueType);
    if (f.kind !== 'gauge') throw new Error(`self-metric ${name} is already registered as a counter`);
    f.gauges.push({ attributes, read });
  }

  dropped(attributes: Attributes & { 'component.id': string; reason: string }): CounterSeries {
    return this.counter(SELF_METRICS.dropped, 'Items (samples or points) dropped, by component and reason.', '{item}', attributes);
  }

  /** The ComponentTelemetry handed to one component (`base` holds component.id and, for processors, pipeline.id). */
  forComponent(kind: ComponentKind | 'pipeline', base: Attributes & { 'component.id': string }): ComponentTelemetry {
    const droppedByReason = new Map<string, CounterSeries>();
    const valid = /^[a-z][a-z0-9_]*$/;
    const checkName = (n: string): string => {
      if (!valid.test(n)) throw new Error(`${base['component.id']}: self-metric name "${n}" must be snake_case ([a-z][a-z0-9_]*)`);
      const full = `${METRIC_PREFIX}.${kind}.${n}`;
      if (HOST_METRIC_NAMES.has(full)) throw new Error(`${base['component.id']}: self-metric name "${n}" is reserved for the host's own ${full}`);
      return full;
    };
    return {
      dropped: (count: number, reason: string, attributes?: Attributes) => {
        const key = attributes ? `${reason}\0${attributesKey(attributes)}` : reason;
        let s = droppedByReason.get(key);
        if (!s) {
          s = this.dropped({ ...attributes, ...base, 'component.kind': kind, reason });
          droppedByReason.set(key, s);
        }
        s.add(count);
      },
      counter: (name: string, description: string, unit = '') => {
        const full = checkName(name);
        const plain = this.counter(full, description, unit, base, 'double');
        const cache = new Map<string, CounterSeries>();
        return {
          add: (value: number, attributes?: Attributes) => {
            if (!(value > 0)) return;
            if (!attributes) {
              plain.value += value;
              return;
            }
            const key = attributesKey(attributes);
            let s = cache.get(key);
            if (!s) {
              s = this.counter(full, description, unit, { ...attributes, ...base }, 'double');
              cache.set(key, s);
            }
            s.value += value;
          },
        };
      },
      gauge: (name: string, description: string, read: () => number, unit = '', attributes?: Attributes) => {
        this.gauge(checkName(name), description, unit, attributes ? { ...attributes, ...base } : base, read, 'double');
      },
    };
  }

  /** Reads every counter and gauge (gauge readers that throw or return non-numbers are skipped). */
  snapshot(): FamilySnapshot[] {
    const out: FamilySnapshot[] = [];
    for (const f of this.families.values()) {
      const points: SnapshotPoint[] = [];
      for (const s of f.series.values()) points.push({ attributes: s.attributes, value: s.value });
      for (const g of f.gauges) {
        let v: number;
        try {
          v = g.read();
        } catch {
          continue;
        }
        if (typeof v === 'number' && Number.isFinite(v)) points.push({ attributes: g.attributes, value: v });
      }
      if (points.length > 0) out.push({ family: f, points });
    }
    return out;
  }

  /**
   * The self-metrics as one ScopeMetrics of the sdk-metrics data model. With a DeltaState, sums
   * are the growth since that state's previous call (for delta exporters).
   */
  toScopeMetrics(nowMs: number, delta?: DeltaState): ScopeMetrics {
    const metrics: MetricData[] = [];
    const start = toHrTime(delta ? delta.lastTimeMs : this.startTimeMs);
    const end = toHrTime(nowMs);
    for (const { family: f, points } of this.snapshot()) {
      const descriptor = { name: f.name, description: f.description, unit: f.unit, valueType: f.valueType === 'int' ? ValueType.INT : ValueType.DOUBLE };
      if (f.kind === 'counter') {
        const dataPoints = points.map((p) => {
          let value = p.value;
          if (delta) {
            const key = f.name + '\0' + attributesKey(p.attributes);
            value = p.value - (delta.last.get(key) ?? 0);
            delta.last.set(key, p.value);
          }
          return { startTime: start, endTime: end, attributes: p.attributes, value };
        });
        metrics.push({
          descriptor,
          aggregationTemporality: delta ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints,
        });
      } else {
        metrics.push({
          descriptor,
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.GAUGE,
          dataPoints: points.map((p) => ({ startTime: end, endTime: end, attributes: p.attributes, value: p.value })),
        });
      }
    }
    if (delta) delta.lastTimeMs = nowMs;
    return { scope: { name: SELF_SCOPE_NAME, version: this.version }, metrics };
  }

  /** Prometheus text exposition format 0.0.4. */
  toPrometheus(): string {
    const lines: string[] = [];
    for (const { family: f, points } of this.snapshot()) {
      let name = prometheusName(prometheusMetricName(f.name, f.unit, f.kind === 'gauge'));
      if (f.kind === 'counter' && !name.endsWith('_total')) name += '_total';
      lines.push(`# HELP ${name} ${f.description.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      lines.push(`# TYPE ${name} ${f.kind}`);
      for (const p of points) {
        const labels = Object.entries(p.attributes)
          .map(([k, v]) => `${prometheusName(k)}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
          .join(',');
        lines.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(p.value)}`);
      }
    }
    return lines.join('\n') + '\n';
  }
}

export function prometheusName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
