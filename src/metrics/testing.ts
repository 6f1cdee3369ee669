/**
 * Test helpers for the metrics stage and its users: a ComponentTelemetry and a Logger that record
 * what they are told, and readers of ResourceMetrics. Not used by the agent itself.
 */
import type { DataPoint, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Attributes, ComponentTelemetry, Logger } from '../api/index.js';

export class RecordingTelemetry implements ComponentTelemetry {
  readonly droppedByReason = new Map<string, number>();
  readonly counters = new Map<string, number>();
  readonly gauges = new Map<string, () => number>();
  dropped(count: number, reason: string): void {
    this.droppedByReason.set(reason, (this.droppedByReason.get(reason) ?? 0) + count);
  }
  counter(name: string): { add(value: number, attributes?: Attributes): void } {
    return { add: (v: number) => this.counters.set(name, (this.counters.get(name) ?? 0) + v) };
  }
  gauge(name: string, _description: string, read: () => number): void {
    this.gauges.set(name, read);
  }
}

export class RecordingLogger implements Logger {
  readonly lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'debug', msg, fields });
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', msg, fields });
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', msg, fields });
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', msg, fields });
  }
  count(level: string, contains = ''): number {
    return this.lines.filter((l) => l.level === level && l.msg.includes(contains)).length;
  }
}

/** All data points of a metric name, optionally only those whose attributes include `where`. */
export function pointsOf(rm: ResourceMetrics, name: string, where: Attributes = {}): DataPoint<number>[] {
  const out: DataPoint<number>[] = [];
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.descriptor.name !== name) continue;
      for (const p of m.dataPoints as DataPoint<number>[]) {
        if (Object.entries(where).every(([k, v]) => p.attributes[k] === v)) out.push(p);
      }
    }
  }
  return out;
}

/** Sum of the values of `pointsOf(...)`. */
export function valueOf(rm: ResourceMetrics, name: string, where: Attributes = {}): number {
  return pointsOf(rm, name, where).reduce((a, p) => a + p.value, 0);
}
