/**
 * Distributions from exit records: one observation per ended process of its lifetime, CPU time,
 * peak RSS and CPU delay (other delays behind `all_delays`), as histogram metrics appended to the
 * receiver's sample schema. The final sample of a process carries the observations; every other
 * sample carries NaN there (no observation), so the metrics stage aggregates exactly one value per
 * ended process into the series of its workload: the same attribute set, processors and series
 * limit as the sums.
 */
import type { HistogramAggregation, MetricDescriptor, SampleSchema } from '../../src/api/index.js';
import type { TaskRecord } from './record.js';
import { DELAY_KINDS } from './record.js';
import { RAW } from './schema.js';

export interface ExitDistributionsConfig {
  enabled: boolean;
  aggregation: 'exponential' | 'explicit';
  /** Exponential: most buckets per histogram (the SDK's default 160). */
  max_size: number;
  /** Exponential: the starting (finest) scale, -10..20 (the SDK's default 20). */
  max_scale: number;
  /** Also one histogram per other delay kind (blkio, swapin, ...: zeros unless delay accounting is on). */
  all_delays: boolean;
  /** Explicit: upper bounds per metric family; defaults below. */
  boundaries: { lifetime?: number[]; cpu_time?: number[]; memory_peak?: number[]; delay?: number[] };
}

export const DEFAULT_BOUNDARIES = {
  /** seconds: 1 ms .. 1 day */
  lifetime: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400],
  /** seconds of CPU: 0.1 ms .. 1 h */
  cpu_time: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
  /** bytes: 1 MiB .. 64 GiB, x4 */
  memory_peak: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536].map((mib) => mib * 1024 * 1024),
  /** seconds waited: 10 us .. 10 s */
  delay: [0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
} as const;

export function defaultExitDistributionsConfig(): ExitDistributionsConfig {
  return { enabled: true, aggregation: 'exponential', max_size: 160, max_scale: 20, all_delays: false, boundaries: {} };
}

export const exitDistributionsConfigSchema = {
  type: 'object',
  description: 'Histograms of ended processes (lifetime, CPU time, peak RSS, CPU delay) per workload.',
  properties: {
    enabled: { type: 'boolean' },
    aggregation: {
      enum: ['exponential', 'explicit'],
      description: 'exponential (base 2, the default) or explicit buckets (for backends without exponential histograms).',
    },
    max_size: { type: 'integer', minimum: 2, maximum: 16384, description: 'exponential: most buckets per histogram (default 160).' },
    max_scale: { type: 'integer', minimum: -10, maximum: 20, description: 'exponential: finest scale (default 20).' },
    all_delays: { type: 'boolean', description: 'Also histograms of the other delay kinds (blkio, swapin, freepages, thrashing, compact, wpcopy, irq).' },
    boundaries: {
      type: 'object',
      description: 'explicit: ascending upper bounds per metric family (lifetime and cpu_time and delay in seconds, memory_peak in bytes).',
      properties: Object.fromEntries(
        ['lifetime', 'cpu_time', 'memory_peak', 'delay'].map((k) => [k, { type: 'array', items: { type: 'number', minimum: 0 }, minItems: 1 }]),
      ),
    },
  },
} as const;

/** Config paths (below `histograms`) of boundaries that are not strictly ascending. */
export function validateExitDistributions(c: ExitDistributionsConfig): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  for (const [k, b] of Object.entries(c.boundaries)) {
    if (!b.every((x, i) => i === 0 || x > b[i - 1]!)) {
      out.push({ path: `histograms.boundaries.${k}`, message: `boundaries must be strictly ascending, got [${b.join(', ')}]` });
    }
  }
  return out;
}

const D = {
  lifetime: 'Wall-clock life of each ended process, from its start to the end of its last thread (ac_tgetime; ac_etime before struct version 12).',
  cpu: 'CPU time (user + system) of each ended process over its whole life: the scheduler runtime (cpu_run_virtual_total), as process.cpu.time.',
  memory: 'Peak resident set size of each ended process (hiwater_rss).',
  delay: (kind: string) =>
    `Time each ended process waited, over its whole life, for ${kind === 'cpu' ? 'a CPU while runnable' : `${kind} (delay accounting)`} (${kind}_delay_total).`,
};

function histogram(name: string, unit: string, description: string, aggregation: HistogramAggregation): MetricDescriptor {
  return { name, unit, description, instrument: 'histogram', valueType: 'double', histogram: aggregation };
}

/** The histogram descriptors, in the order ExitObservations fills them. */
export function exitDistributionDescriptors(c: ExitDistributionsConfig): MetricDescriptor[] {
  const agg = (family: keyof typeof DEFAULT_BOUNDARIES): HistogramAggregation =>
    c.aggregation === 'explicit'
      ? { kind: 'explicit', boundaries: c.boundaries[family] ?? DEFAULT_BOUNDARIES[family] }
      : { kind: 'exponential', maxSize: c.max_size, maxScale: c.max_scale };
  const out = [
    histogram('process.linux.lifetime', 's', D.lifetime, agg('lifetime')),
    histogram('process.linux.exit.cpu.time', 's', D.cpu, agg('cpu_time')),
    histogram('process.linux.exit.memory.peak', 'By', D.memory, agg('memory_peak')),
    histogram('process.linux.exit.delay.cpu', 's', D.delay('cpu'), agg('delay')),
  ];
  if (c.all_delays) for (const k of DELAY_KINDS.slice(1)) out.push(histogram(`process.linux.exit.delay.${k}`, 's', D.delay(k), agg('delay')));
  return out;
}

/** FNV-1a of a string, as 8 hex digits: schema ids that differ when the aggregations differ. */
function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** `base` with the distributions appended (their values start at base.metrics.length). */
export function withExitDistributions(base: SampleSchema, c: ExitDistributionsConfig): SampleSchema {
  const extra = exitDistributionDescriptors(c);
  return Object.freeze({
    id: `${base.id}+exit_distributions.${shortHash(JSON.stringify(extra.map((d) => [d.name, d.histogram])))}`,
    metrics: Object.freeze([...base.metrics, ...extra]),
  });
}

/**
 * Writes one ended process's observations into its final sample's values from `offset` on.
 * `totals` holds the process's final raw counters (RAW order: the sum over its threads or the
 * group record, see accounting.ts), `last` the record of its last thread.
 */
export function fillExitObservations(values: Float64Array, offset: number, last: TaskRecord, totals: Float64Array, allDelays: boolean): void {
  const lifeUs = last.version >= 12 && last.groupElapsedUs > 0 ? last.groupElapsedUs : last.elapsedUs;
  values[offset] = lifeUs * 1e-6;
  const run = totals[RAW.RUN_TIME]!;
  // Without a scheduler runtime (old kernels) user + system, which accounting.ts leaves in ns.
  values[offset + 1] = (run > 0 ? run : totals[RAW.USER]! + totals[RAW.SYSTEM]!) * 1e-9;
  values[offset + 2] = last.hiwaterRssKb * 1024;
  values[offset + 3] = totals[RAW.DELAY_TIME]! * 1e-9;
  if (allDelays) for (let k = 1; k < DELAY_KINDS.length; k++) values[offset + 3 + k] = totals[RAW.DELAY_TIME + k]! * 1e-9;
}
