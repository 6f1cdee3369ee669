/**
 * The `debug` exporter: a human-readable summary of each collection on stdout, for a newcomer's
 * first look and for troubleshooting; in a logs pipeline, each event on a line of its own. It asks for delta temporality, so each export holds the
 * growth since the previous one; cumulative input (from a host that ignores the preference) is
 * turned into deltas here.
 *
 * It knows the taskstats catalogue (docs/metrics.md): process.cpu.time by cpu.mode,
 * process.exits, process.linux.delay.time by process.linux.delay.type, process.disk.io; any other
 * metric is still listed (by name, points and total growth), so other receivers print something
 * useful too.
 */
import type { ExponentialHistogram, Histogram } from '@opentelemetry/sdk-metrics';
import { AggregationTemporality, DataPointType, dataPointTypeName, severityText } from '../../src/api/index.js';
import type { Attributes, ComponentContext, Exporter, LogBatch, LogExporter, ResourceMetrics } from '../../src/api/index.js';
import type { DebugExporterConfig } from './config.js';

/** Attributes that split one workload's metric into parts (modes, directions, causes), not workloads. */
const DIMENSION_ATTRIBUTES = new Set([
  'cpu.mode',
  'disk.io.direction',
  'process.context_switch.type',
  'system.paging.fault.type',
  'process.linux.io.direction',
  'process.linux.delay.type',
  'process.exit.code',
  'process.linux.exit.signal',
]);

const KNOWN = new Set(['process.cpu.time', 'process.exits', 'process.linux.delay.time', 'process.disk.io']);

interface PointDelta {
  metric: string;
  unit: string;
  attributes: Attributes;
  /** Growth over the interval (sums) or the current value (gauges). */
  value: number;
  isSum: boolean;
}

interface Workload {
  label: string;
  cpuUser: number;
  cpuSystem: number;
  cpuOther: number;
  exits: number;
  failedExits: number;
  diskRead: number;
  diskWrite: number;
}

/**
 * The histogram points of one metric in an interval, merged. Exponential points are added bucket
 * by bucket into dense runs per scale, a point joining a run its buckets overlap (a host has
 * hundreds of workloads with ~100 buckets each; (bound, count) pairs sorted per quantile cost
 * ~17 ms per summary for 200 workloads). Points far apart (a workload with one observation stays
 * at scale 20, where neighbouring octaves are a million buckets apart) keep runs of their own.
 */
interface Distribution {
  unit: string;
  count: number;
  sum: number;
  max: number;
  /** Explicit buckets and zero counts: (upper bound, count). */
  buckets: Array<[number, number]>;
  /** Exponential positive buckets by scale: runs where counts[k] is bucket offset + k. */
  byScale: Map<number, Array<{ offset: number; counts: number[] }>>;
}

function addDistribution(d: Distribution, h: Histogram | ExponentialHistogram, count: number, sum: number): void {
  d.count += count;
  d.sum += sum;
  if (h.max !== undefined && h.max > d.max) d.max = h.max;
  if ('scale' in h) {
    if (h.zeroCount > 0) d.buckets.push([0, h.zeroCount]);
    const { offset, bucketCounts } = h.positive;
    const n = bucketCounts.length;
    if (n === 0) return;
    let runs = d.byScale.get(h.scale);
    if (runs === undefined) d.byScale.set(h.scale, (runs = []));
    let run = runs.find((r) => offset <= r.offset + r.counts.length && r.offset <= offset + n);
    if (run === undefined) runs.push((run = { offset, counts: new Array<number>(n).fill(0) }));
    if (offset < run.offset) {
      run.counts = [...new Array<number>(run.offset - offset).fill(0), ...run.counts];
      run.offset = offset;
    }
    const at = offset - run.offset;
    for (let k = run.counts.length; k < at + bucketCounts.length; k++) run.counts.push(0);
    for (let k = 0; k < bucketCounts.length; k++) run.counts[at + k]! += bucketCounts[k]!;
  } else {
    h.buckets.counts.forEach((n, k) => n > 0 && d.buckets.push([h.buckets.boundaries[k] ?? h.max ?? Infinity, n]));
  }
}

/** Upper bounds of the buckets holding each quantile of `qs` (0..1, ascending), capped at the maximum seen. */
function quantilesOf(d: Distribution, qs: number[]): number[] {
  const all = d.buckets.slice();
  for (const [scale, runs] of d.byScale) {
    const base = 2 ** (2 ** -scale);
    for (const run of runs) run.counts.forEach((n, k) => n > 0 && all.push([base ** (run.offset + k + 1), n]));
  }
  all.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  let seen = 0;
  let i = 0;
  for (const q of qs) {
    while (i < all.length && seen + all[i]![1] < q * d.count) seen += all[i++]![1];
    out.push(i < all.length ? Math.min(all[i]![0], d.max) : d.max);
  }
  return out;
}

function hrToMs(t: [number, number]): number {
  return t[0] * 1000 + t[1] / 1e6;
}

function attributesKey(attributes: Attributes): string {
  const keys = Object.keys(attributes).sort();
  let s = '';
  for (const k of keys) s += `${k}\u0000${String(attributes[k])}\u0001`;
  return s;
}

/** How a workload is shown: pod first when Kubernetes attributes are there, else name and cgroup. */
function workloadOf(attributes: Attributes): { key: string; label: string } {
  const rest: Attributes = {};
  for (const [k, v] of Object.entries(attributes)) if (!DIMENSION_ATTRIBUTES.has(k)) rest[k] = v;
  const parts: string[] = [];
  const ns = rest['k8s.namespace.name'];
  const pod = rest['k8s.pod.name'];
  if (pod !== undefined) parts.push(`${ns !== undefined ? `${ns}/` : ''}${pod}`);
  if (rest['k8s.container.name'] !== undefined) parts.push(`[${rest['k8s.container.name']}]`);
  if (rest['process.executable.name'] !== undefined) parts.push(String(rest['process.executable.name']));
  if (rest['process.pid'] !== undefined) parts.push(`pid ${rest['process.pid']}`);
  if (pod === undefined && rest['process.linux.cgroup'] !== undefined) parts.push(String(rest['process.linux.cgroup']));
  const shown = new Set([
    'k8s.namespace.name',
    'k8s.pod.name',
    'k8s.container.name',
    'process.executable.name',
    'process.pid',
    'process.linux.cgroup',
    'k8s.pod.uid',
    'process.creation.time',
  ]);
  for (const [k, v] of Object.entries(rest)) if (!shown.has(k)) parts.push(`${k}=${v}`);
  return { key: attributesKey(rest), label: parts.length ? parts.join(' ') : '(no attributes)' };
}

function fmt(n: number, digits = 2): string {
  if (n !== 0 && Math.abs(n) < 10 ** -digits) return n.toExponential(1);
  return n.toFixed(digits);
}

function fmtCores(n: number): string {
  if (n === 0) return '0.00';
  if (n < 0.001) return '<0.001';
  return n < 0.1 ? n.toFixed(3) : n.toFixed(2);
}

function fmtCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function pad(s: string, width: number): string {
  return s.length >= width ? s : s + ' '.repeat(width - s.length);
}

function padLeft(s: string, width: number): string {
  return s.length >= width ? s : ' '.repeat(width - s.length) + s;
}

function fmtAttributes(attributes: Attributes): string {
  const parts = Object.entries(attributes).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `{${parts.join(', ')}}`;
}

export interface SummaryState {
  /** Last cumulative value per series, to turn cumulative input into deltas. */
  previous: Map<string, number>;
  lastEndMs: number | undefined;
  /** Summaries rendered so far. */
  summaries: number;
}

/** `sinceMs`: start of the first interval (the exporter's start); else the points' earliest start time. */
export function newSummaryState(sinceMs?: number): SummaryState {
  return { previous: new Map(), lastEndMs: sinceMs, summaries: 0 };
}

/** Renders one collection. Pure apart from `state` (previous values), so tests call it directly. */
export function summarize(metrics: ResourceMetrics, config: DebugExporterConfig, state: SummaryState, id = 'debug'): string {
  const top = config.top > 0 ? config.top : config.verbosity === 'basic' ? 5 : 10;
  const points: PointDelta[] = [];
  let endMs = 0;
  let startMs = Number.POSITIVE_INFINITY;
  const detailLines: string[] = [];
  const skippedKinds = new Set<string>();
  const distributions = new Map<string, Distribution>();

  const selfTotals = new Map<string, number>();
  for (const scope of metrics.scopeMetrics) {
    // The host appends its own telemetry as a separate scope (`taskstats-agent.self`): kept out
    // of the workload tables, summarized on one line.
    const isSelf = scope.scope.name.endsWith('.self');
    for (const m of scope.metrics) {
      const name = m.descriptor.name;
      const unit = m.descriptor.unit;
      const isSum = m.dataPointType === DataPointType.SUM;
      const cumulative = isSum && m.aggregationTemporality === AggregationTemporality.CUMULATIVE;
      if (!isSelf && (m.dataPointType === DataPointType.HISTOGRAM || m.dataPointType === DataPointType.EXPONENTIAL_HISTOGRAM)) {
        // Histograms arrive as deltas (this exporter asks for them): one line per metric.
        const d = (distributions.get(name) ?? distributions.set(name, { unit, count: 0, sum: 0, max: -Infinity, buckets: [], byScale: new Map() }).get(name))!;
        const cumulativeHistogram = m.aggregationTemporality === AggregationTemporality.CUMULATIVE;
        for (const dp of m.dataPoints) {
          const h = dp.value;
          if (cumulativeHistogram) {
            // Growth of count and sum since the previous summary (quantiles stay those since start).
            const key = `${name}\u0002${attributesKey(dp.attributes as Attributes)}`;
            const before = state.previous.get(key) ?? 0;
            const beforeSum = state.previous.get(`${key}\u0002sum`) ?? 0;
            state.previous.set(key, h.count);
            state.previous.set(`${key}\u0002sum`, h.sum ?? 0);
            if (h.count <= before) continue;
            addDistribution(d, h, h.count - before, (h.sum ?? 0) - beforeSum);
          } else addDistribution(d, h, h.count, h.sum ?? 0);
          endMs = Math.max(endMs, hrToMs(dp.endTime));
          startMs = Math.min(startMs, hrToMs(dp.startTime));
          if (config.verbosity === 'detailed') detailLines.push(`  ${name}${fmtAttributes(dp.attributes as Attributes)} ${JSON.stringify(dp.value)}`);
        }
        continue;
      }
      if (m.dataPointType !== DataPointType.SUM && m.dataPointType !== DataPointType.GAUGE) {
        skippedKinds.add(`${name} (${dataPointTypeName(m.dataPointType)})`);
        if (config.verbosity === 'detailed') {
          for (const dp of m.dataPoints) detailLines.push(`  ${name}${fmtAttributes(dp.attributes as Attributes)} ${JSON.stringify(dp.value)}`);
        }
        continue;
      }
      for (const dp of m.dataPoints) {
        const raw = dp.value;
        if (typeof raw !== 'number') continue;
        endMs = Math.max(endMs, hrToMs(dp.endTime));
        startMs = Math.min(startMs, hrToMs(dp.startTime));
        const attributes = dp.attributes as Attributes;
        let value = raw;
        if (cumulative) {
          const key = `${name}\u0002${attributesKey(attributes)}`;
          const before = state.previous.get(key);
          state.previous.set(key, raw);
          // A value below the previous one means the series restarted: all of it is new growth.
          value = before === undefined || raw < before ? raw : raw - before;
        }
        if (isSelf) {
          // Keep drops apart by component and reason: "dropped 120 (otlp: no_endpoint)" says why.
          const reason = attributes['reason'];
          const key = reason === undefined ? name : `${name} (${attributes['component.id'] ?? '?'}: ${reason})`;
          selfTotals.set(key, (selfTotals.get(key) ?? 0) + value);
        } else {
          points.push({ metric: name, unit, attributes, value, isSum });
        }
        if (config.verbosity === 'detailed') {
          const shown = cumulative ? `${fmtCount(raw)} (+${fmtCount(value)})` : isSum ? `+${fmtCount(value)}` : fmtCount(value);
          detailLines.push(`  ${name}${fmtAttributes(attributes)} ${shown}${unit ? ` ${unit}` : ''}`);
        }
      }
    }
  }
  // No point at all: the interval's end is unknown, and the next summary spans both.
  if (endMs === 0) endMs = state.lastEndMs ?? Date.now();
  const fromMs = state.lastEndMs ?? (Number.isFinite(startMs) ? startMs : endMs);
  const intervalS = Math.max((endMs - fromMs) / 1000, 0.001);
  state.lastEndMs = endMs;
  // The first collection holds what processes alive at start used since they started: totals,
  // not growth over the interval, so it shows no rates.
  const first = state.summaries === 0;
  state.summaries++;
  const perSecond = (v: number, unit: string, digits = 2) => (first ? '' : `${fmt(v / intervalS, digits)}${unit}`);

  const workloads = new Map<string, Workload>();
  const workload = (attributes: Attributes): Workload => {
    const { key, label } = workloadOf(attributes);
    let w = workloads.get(key);
    if (!w) {
      w = { label, cpuUser: 0, cpuSystem: 0, cpuOther: 0, exits: 0, failedExits: 0, diskRead: 0, diskWrite: 0 };
      workloads.set(key, w);
    }
    return w;
  };
  const delays: Array<{ label: string; type: string; seconds: number }> = [];
  const others = new Map<string, { unit: string; points: number; total: number; isSum: boolean }>();
  let totalExits = 0;
  let sawCpu = false;
  let sawExits = false;
  let sawDelays = false;

  for (const p of points) {
    switch (p.metric) {
      case 'process.cpu.time': {
        sawCpu = true;
        const w = workload(p.attributes);
        const mode = p.attributes['cpu.mode'];
        if (mode === 'user') w.cpuUser += p.value;
        else if (mode === 'system') w.cpuSystem += p.value;
        else w.cpuOther += p.value;
        break;
      }
      case 'process.exits': {
        sawExits = true;
        const w = workload(p.attributes);
        w.exits += p.value;
        totalExits += p.value;
        const code = p.attributes['process.exit.code'];
        if ((code !== undefined && code !== 0 && code !== '0') || p.attributes['process.linux.exit.signal'] !== undefined) {
          w.failedExits += p.value;
        }
        break;
      }
      case 'process.linux.delay.time': {
        sawDelays = true;
        if (p.value > 0) {
          delays.push({ label: workloadOf(p.attributes).label, type: String(p.attributes['process.linux.delay.type'] ?? '?'), seconds: p.value });
        }
        break;
      }
      case 'process.disk.io': {
        const w = workload(p.attributes);
        if (p.attributes['disk.io.direction'] === 'write') w.diskWrite += p.value;
        else w.diskRead += p.value;
        break;
      }
      default: {
        let o = others.get(p.metric);
        if (!o) others.set(p.metric, (o = { unit: p.unit, points: 0, total: 0, isSum: p.isSum }));
        o.points++;
        o.total += p.value;
      }
    }
  }

  const out: string[] = [];
  const when = new Date(endMs).toISOString().replace(/\.\d+Z$/, 'Z');
  out.push(
    first
      ? `--- ${id} ${when}  first collection: totals since each process started  ${points.length} points  ${workloads.size} workloads`
      : `--- ${id} ${when}  interval ${fmt(intervalS, 1)} s  ${points.length} points  ${workloads.size} workloads`,
  );

  const list = [...workloads.values()];
  if (sawCpu) {
    const cpu = (w: Workload) => w.cpuUser + w.cpuSystem + w.cpuOther;
    const total = list.reduce((s, w) => s + cpu(w), 0);
    out.push(
      first ? `CPU: ${fmt(total, 3)} s in total; top workloads:` : `CPU: ${fmtCores(total / intervalS)} cores in total (${fmt(total, 3)} s); top workloads:`,
    );
    const busy = list
      .filter((w) => cpu(w) > 0)
      .sort((a, b) => cpu(b) - cpu(a))
      .slice(0, top);
    if (busy.length === 0) out.push('  (no CPU used)');
    for (const w of busy) {
      const cores = first ? '' : `${padLeft(fmtCores(cpu(w) / intervalS), 6)} cores  `;
      out.push(`  ${cores}user ${padLeft(fmt(w.cpuUser, 3), 8)} s  sys ${padLeft(fmt(w.cpuSystem, 3), 8)} s  ${w.label}`);
    }
  }
  if (sawExits) {
    const failed = list.reduce((s, w) => s + w.failedExits, 0);
    const rate = first ? '' : ` (${perSecond(totalExits, '/s', 1)})`;
    out.push(`Exits: ${fmtCount(totalExits)}${rate}, ${fmtCount(failed)} non-zero or by signal`);
    if (config.verbosity !== 'basic') {
      for (const w of list
        .filter((x) => x.exits > 0)
        .sort((a, b) => b.exits - a.exits)
        .slice(0, top)) {
        const r = first ? '' : ` (${padLeft(perSecond(w.exits, '/s', 1), 9)})`;
        out.push(`  ${padLeft(fmtCount(w.exits), 7)}${r}  failed ${padLeft(fmtCount(w.failedExits), 5)}  ${w.label}`);
      }
    }
  }
  if (sawDelays) {
    out.push(
      first
        ? 'Largest delays (time spent waiting, all threads):'
        : 'Largest delays (time spent waiting, all threads; per second = average number of tasks waiting):',
    );
    delays.sort((a, b) => b.seconds - a.seconds);
    if (delays.length === 0) out.push('  (none; delay accounting may be off: sysctl kernel.task_delayacct)');
    for (const d of delays.slice(0, top)) {
      const r = first ? '' : ` ${padLeft(perSecond(d.seconds, '/s'), 8)}`;
      out.push(`  ${padLeft(fmt(d.seconds, 3), 9)} s${r}  ${pad(d.type, 9)} ${d.label}`);
    }
  }
  if (config.verbosity !== 'basic') {
    const io = list.filter((w) => w.diskRead + w.diskWrite > 0).sort((a, b) => b.diskRead + b.diskWrite - (a.diskRead + a.diskWrite));
    if (io.length > 0) {
      out.push('Disk I/O (bytes):');
      for (const w of io.slice(0, top)) out.push(`  read ${padLeft(fmtCount(w.diskRead), 12)}  write ${padLeft(fmtCount(w.diskWrite), 12)}  ${w.label}`);
    }
  }
  if (others.size > 0) {
    const names = [...others.keys()].filter((n) => !KNOWN.has(n)).sort();
    if (config.verbosity === 'basic') {
      out.push(`Other metrics: ${names.map((n) => `${n} (${others.get(n)!.points})`).join(', ')}`);
    } else {
      out.push('Other metrics (growth over the interval for sums, latest for gauges):');
      for (const n of names) {
        const o = others.get(n)!;
        out.push(`  ${pad(n, 40)} ${padLeft(fmtCount(o.total), 14)} ${pad(o.unit, 10)} ${o.points} points`);
      }
    }
  }
  if (selfTotals.size > 0) {
    // basic: only what signals loss; otherwise every self metric's growth.
    const names = [...selfTotals.keys()].sort();
    // (An idle otlp exporter's no_endpoint drops are deliberate and announced once at start.)
    const shown =
      config.verbosity === 'basic'
        ? names.filter((n) => /drop|lost|fail|overflow|error/.test(n) && !n.endsWith(': no_endpoint)') && selfTotals.get(n)! > 0)
        : names;
    if (shown.length > 0) {
      out.push(
        `Agent: ${shown.map((n) => `${n.replace(/^taskstats_agent\./, '').replace(/ \(/, ` ${fmtCount(selfTotals.get(n)!)} (`)}${n.includes(' (') ? '' : ` ${fmtCount(selfTotals.get(n)!)}`}`).join(', ')}`,
      );
    }
  }
  if (distributions.size > 0) {
    out.push('Distributions (observations in the interval; quantiles are bucket upper bounds):');
    // Code-unit order, not localeCompare: ICU's collation data is ~2 MiB of the node binary's
    // pages that nothing else in a running agent touches (docs/deploy.md "Memory").
    for (const [name, d] of [...distributions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      if (d.count === 0) continue;
      const u = d.unit ? ` ${d.unit}` : '';
      const [p50, p99] = quantilesOf(d, [0.5, 0.99]) as [number, number];
      out.push(
        `  ${name}: ${fmtCount(d.count)} observed, mean ${fmt(d.sum / d.count, 4)}${u}, p50 <= ${fmt(p50, 4)}${u}, ` +
          `p99 <= ${fmt(p99, 4)}${u}, max ${fmt(d.max, 4)}${u}`,
      );
    }
  }
  if (skippedKinds.size > 0) out.push(`Not summarized (point type): ${[...skippedKinds].join(', ')}`);
  if (points.length === 0 && skippedKinds.size === 0 && selfTotals.size === 0) out.push('(no data points: nothing changed, or nothing matched the pipeline)');
  if (config.verbosity === 'detailed' && detailLines.length > 0) {
    out.push('Data points:');
    out.push(...detailLines);
  }
  return out.join('\n') + '\n';
}

/**
 * Renders a batch of log records: one line per record (`time SEVERITY event: body`); `normal`
 * appends the attributes on that line, `detailed` lists every attribute below it, one per line.
 */
export function formatLogs(batch: LogBatch, config: DebugExporterConfig): string {
  let out = '';
  for (const r of batch) {
    const when = new Date(r.timeMs).toISOString();
    const severity = r.severityText ?? severityText(r.severityNumber);
    out += `${when} ${pad(severity, 5)} ${r.eventName}: ${r.body}`;
    if (config.verbosity === 'normal') out += ` ${fmtAttributes(r.attributes)}`;
    out += '\n';
    if (config.verbosity === 'detailed') {
      for (const k of Object.keys(r.attributes).sort()) out += `    ${k}: ${JSON.stringify(r.attributes[k])}\n`;
    }
  }
  return out;
}

export class DebugExporter implements Exporter, LogExporter {
  /** Deltas are what a per-interval summary needs. */
  readonly temporality = 'delta' as const;
  private readonly state = newSummaryState();
  private closed = false;

  constructor(
    private readonly ctx: ComponentContext,
    private readonly config: DebugExporterConfig,
    private readonly write: (text: string) => void,
  ) {}

  start(): Promise<void> {
    this.state.lastEndMs ??= Date.now();
    return Promise.resolve();
  }

  export(metrics: ResourceMetrics): Promise<void> {
    if (!this.closed) this.write(summarize(metrics, this.config, this.state, this.ctx.id));
    return Promise.resolve();
  }

  exportLogs(batch: LogBatch): Promise<void> {
    if (!this.closed && batch.length > 0) this.write(formatLogs(batch, this.config));
    return Promise.resolve();
  }

  async forceFlush(): Promise<void> {}

  shutdown(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
