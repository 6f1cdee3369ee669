/**
 * The host's metrics stage: samples in, OpenTelemetry `ResourceMetrics` (the
 * @opentelemetry/sdk-metrics data model) out. Generic: it knows schemas, attributes and numbers,
 * nothing about where samples come from.
 *
 * Semantics (see docs/metrics.md, "The metrics stage"):
 *  - A series is (schema, attribute content). Counter values of samples are growth and are summed
 *    into cumulative sums whose start time is the series' creation; gauges keep the last value
 *    (a NaN gauge value means "unknown" and leaves the previous value in place).
 *  - Histogram descriptors: each sample value is one observation (NaN: none), aggregated per
 *    series into an exponential (base 2, bounded size) or explicit-bucket histogram (histogram.ts).
 *  - Descriptors sharing a name are one metric; their `pointAttributes` tell the points apart.
 *  - A descriptor's `samplePointAttributes` split that metric (only) into sub-series keyed by the
 *    named `Sample.pointAttributes` values (e.g. `process.exits` by `process.exit.code`).
 *  - At most `seriesLimit` series per schema; samples of further attribute sets go to one overflow
 *    series carrying `otel.metric.overflow: true`, like the OTel SDK's cardinality limit.
 *  - Expiry at collect time: a series whose last sample was final and that has received nothing
 *    for `endedSeriesTtlMs` is dropped; so is any series idle for `idleSeriesTtlMs` (a safety net
 *    for sources that vanish without a final sample, e.g. when a processor changed the attributes
 *    of the last sample).
 *  - `collect()` snapshots every series once; `cumulative()` and `delta()` build their
 *    ResourceMetrics lazily from that snapshot, so either may be called any time later.
 *
 * Hot path: sources share one attributes object among all samples of a workload, so the series
 * is found through a WeakMap keyed by the object itself; only a new object pays for a canonical
 * key (sorted keys) to find or create its series. `add()` allocates nothing per sample.
 */
import type { HrTime } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { DataPoint, ExponentialHistogram, Histogram, MetricData, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { AggregationTemporality, DataPointType, DropReason, ValueType } from '../api/index.js';
import type { Attributes, ComponentTelemetry, HistogramAggregation, Logger, MetricDescriptor, Sample, SampleBatch, SampleSchema } from '../api/index.js';
import { EXPONENTIAL_DEFAULTS, MIN_SCALE, deltaOf, newAccumulator, type HistogramAccumulator, type HistogramSnapshot } from './histogram.js';

export interface MetricsStageOptions {
  /** Maximum number of series (attribute sets) per schema; more go to the overflow series. */
  seriesLimit: number;
  /** How long a series whose last sample was final is kept after that sample. */
  endedSeriesTtlMs: number;
  resource: Resource;
  telemetry: ComponentTelemetry;
  logger: Logger;
  /**
   * How long a series that received no sample at all is kept (default: the larger of one hour and
   * 10 x endedSeriesTtlMs). Sources that sample every live workload at each collection refresh
   * their series far more often.
   */
  idleSeriesTtlMs?: number;
}

/** The instrumentation scope of everything the stage produces. */
export const METRICS_SCOPE = { name: 'taskstats-agent' } as const;
/** Attribute of the overflow series (the same key the OpenTelemetry SDK uses). */
export const OVERFLOW_ATTRIBUTE = 'otel.metric.overflow';
const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ [OVERFLOW_ATTRIBUTE]: true });

/** One collection: `cumulative()` and `delta()` are built on first call and memoized. */
export interface Collection {
  cumulative(): ResourceMetrics;
  delta(): ResourceMetrics;
}

// ---------------------------------------------------------------------------------------------

/** A metric name as exported (several descriptors may feed it). */
interface MetricSlot {
  readonly name: string;
  readonly unit: string;
  readonly description: string;
  readonly instrument: 'counter' | 'gauge' | 'histogram';
  readonly valueType: ValueType;
  /** Histograms: the aggregation, defaults filled in. */
  readonly histogram: HistogramAggregation | undefined;
}

/** The aggregation of a histogram descriptor with defaults filled in; throws when invalid. */
function histogramAggregation(d: MetricDescriptor, where: string): HistogramAggregation {
  const h = d.histogram ?? { kind: 'exponential' };
  if (h.kind === 'explicit') {
    // Plugins may be plain JavaScript: check what the types promise.
    const b: unknown = h.boundaries;
    if (!Array.isArray(b) || !(b as unknown[]).every((x, i) => typeof x === 'number' && Number.isFinite(x) && (i === 0 || x > (b as number[])[i - 1]!))) {
      throw new Error(`${where}: ${d.name}: explicit histogram boundaries must be finite and strictly ascending`);
    }
    return { kind: 'explicit', boundaries: Object.freeze((b as number[]).slice()) };
  }
  if ((h.kind as string) !== 'exponential') throw new Error(`${where}: ${d.name}: histogram kind must be "exponential" or "explicit"`);
  const maxSize = h.maxSize ?? EXPONENTIAL_DEFAULTS.maxSize;
  const maxScale = h.maxScale ?? EXPONENTIAL_DEFAULTS.maxScale;
  if (!Number.isInteger(maxSize) || maxSize < 2) throw new Error(`${where}: ${d.name}: histogram maxSize must be an integer >= 2`);
  if (!Number.isInteger(maxScale) || maxScale < MIN_SCALE || maxScale > EXPONENTIAL_DEFAULTS.maxScale) {
    throw new Error(`${where}: ${d.name}: histogram maxScale must be an integer from ${MIN_SCALE} to ${EXPONENTIAL_DEFAULTS.maxScale}`);
  }
  return { kind: 'exponential', maxSize, maxScale };
}

/** Per-schema state, built the first time a schema is seen. */
interface SchemaState {
  readonly schema: SampleSchema;
  readonly size: number;
  /** Exported metric of each descriptor. */
  readonly slots: MetricSlot[];
  readonly isCounter: Uint8Array;
  readonly isHistogram: Uint8Array;
  /** Indices of histogram descriptors. */
  readonly histograms: Int32Array;
  /** Indices of counters and gauges without samplePointAttributes (summed on the series itself). */
  readonly plain: Int32Array;
  /** Indices of descriptors with samplePointAttributes (sub-series). */
  readonly split: Int32Array;
  readonly byObject: WeakMap<Attributes, Series>;
  readonly byKey: Map<string, Series>;
  overflow: Series | null;
  /** Series count, the overflow series excluded. */
  count: number;
  overflowLoggedAtMs: number;
}

interface SubSeries {
  /** Exported point attributes: series + descriptor point attributes + the sample's values. */
  readonly pointAttributes: Attributes;
  readonly startMs: number;
  value: number;
  collected: number;
}

class Series {
  /** Cumulative sums (counters) / last values (gauges, NaN until set). */
  readonly values: Float64Array;
  /** Values at the previous collect(), for delta temporality. */
  collected: Float64Array | null = null;
  /** Descriptor index -> attributes of its points (series attributes merged with the descriptor's). */
  readonly pointAttributes: (Attributes | undefined)[];
  /** Sub-series of descriptors with samplePointAttributes, by descriptor index, then by key. */
  readonly subSeries: (Map<string, SubSeries> | undefined)[];
  /** Histogram accumulators by descriptor index (made by the first observation). */
  readonly histograms: (HistogramAccumulator | undefined)[];
  /** The last snapshot of each accumulator (reused while nothing was observed; delta's base). */
  readonly histogramSnapshots: (HistogramSnapshot | undefined)[];
  lastUpdateMs: number;
  /** Last sample was final (its source ended). */
  ended = false;
  /** Gauges set since the previous collect (bit per gauge would do; a counter is simpler). */
  gaugeUpdates = 0;
  removed = false;

  constructor(
    readonly state: SchemaState,
    readonly key: string,
    readonly attributes: Attributes,
    readonly startMs: number,
  ) {
    this.values = new Float64Array(state.size);
    for (let i = 0; i < state.size; i++) if (!state.isCounter[i]) this.values[i] = NaN;
    this.pointAttributes = new Array<Attributes | undefined>(state.size);
    this.subSeries = new Array<Map<string, SubSeries> | undefined>(state.size);
    this.histograms = new Array<HistogramAccumulator | undefined>(state.size);
    this.histogramSnapshots = new Array<HistogramSnapshot | undefined>(state.size);
    this.lastUpdateMs = startMs;
  }

  attributesFor(i: number): Attributes {
    let a = this.pointAttributes[i];
    if (a === undefined) {
      const fixed = this.state.schema.metrics[i]!.pointAttributes;
      a = fixed ? { ...this.attributes, ...fixed } : this.attributes;
      this.pointAttributes[i] = a;
    }
    return a;
  }
}

/** What collect() saw of one series. */
interface SeriesSnapshot {
  readonly series: Series;
  readonly values: Float64Array;
  readonly previous: Float64Array | null;
  readonly gaugesUpdated: boolean;
  readonly subs: SubSnapshot[] | null;
  readonly histograms: HistogramPointSnapshot[] | null;
}
interface HistogramPointSnapshot {
  readonly index: number;
  readonly now: HistogramSnapshot;
  /** The previous collection's snapshot (null: none); `now` itself when nothing was observed since. */
  readonly previous: HistogramSnapshot | null;
}
interface SubSnapshot {
  readonly index: number;
  readonly sub: SubSeries;
  readonly value: number;
  readonly previous: number;
}

const INVALID = Symbol('invalid attributes');

/** Same metrics in the same order (names, instruments, units, value types, attributes)? */
function sameLayout(a: SampleSchema, b: SampleSchema): boolean {
  if (!Array.isArray(b.metrics) || a.metrics.length !== b.metrics.length) return false;
  return a.metrics.every((x, i) => {
    const y = b.metrics[i]!;
    return (
      x.name === y.name &&
      x.unit === y.unit &&
      x.instrument === y.instrument &&
      x.valueType === y.valueType &&
      JSON.stringify(x.histogram ?? null) === JSON.stringify(y.histogram ?? null) &&
      JSON.stringify(x.pointAttributes ?? {}) === JSON.stringify(y.pointAttributes ?? {}) &&
      JSON.stringify(x.samplePointAttributes ?? []) === JSON.stringify(y.samplePointAttributes ?? [])
    );
  });
}

function toHrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/**
 * Canonical key of an attribute set: sorted keys, values tagged with their type so that
 * `1` and `"1"` are different series. Returns INVALID for values OTLP cannot carry here.
 */
function canonicalKey(attributes: Attributes): string | typeof INVALID {
  const keys = Object.keys(attributes).sort();
  let key = '';
  for (const k of keys) {
    const v = attributes[k];
    switch (typeof v) {
      case 'string':
        key += k + '\u0000s' + v + '\u0001';
        break;
      case 'number':
        key += k + '\u0000n' + String(v) + '\u0001';
        break;
      case 'boolean':
        key += k + '\u0000b' + (v ? '1' : '0') + '\u0001';
        break;
      default:
        return INVALID;
    }
  }
  return key;
}

export class MetricsStage {
  private readonly opts: MetricsStageOptions;
  private readonly idleTtlMs: number;
  /** Schema object -> its state (null: rejected). Weak: a source may build schema objects freely. */
  private readonly schemaByObject = new WeakMap<SampleSchema, SchemaState | null>();
  /** Accepted schemas by id: what collect() walks. Equal schemas under one id share a state. */
  private readonly schemaById = new Map<string, SchemaState>();
  /** Exported metrics by name, in order of first appearance. */
  private readonly slotsByName = new Map<string, MetricSlot>();
  private readonly overflowCounter: { add(value: number): void };
  private readonly expiredCounter: { add(value: number): void };
  private lastCollectMs: number | null = null;
  private lastSchema: SampleSchema | undefined;
  private lastSchemaState: SchemaState | null = null;
  private seriesCount = 0;

  constructor(o: MetricsStageOptions) {
    if (!Number.isInteger(o.seriesLimit) || o.seriesLimit < 1) {
      throw new Error(`metrics stage: seriesLimit must be a positive integer, got ${String(o.seriesLimit)}`);
    }
    if (!(o.endedSeriesTtlMs >= 0)) {
      throw new Error(`metrics stage: endedSeriesTtlMs must be >= 0, got ${String(o.endedSeriesTtlMs)}`);
    }
    this.opts = o;
    this.idleTtlMs = o.idleSeriesTtlMs ?? Math.max(3_600_000, 10 * o.endedSeriesTtlMs);
    this.overflowCounter = o.telemetry.counter(
      'series_overflow',
      'Samples routed to the overflow series because their schema reached the series limit',
      '{sample}',
    );
    this.expiredCounter = o.telemetry.counter('series_expired', 'Series dropped by expiry', '{series}');
    o.telemetry.gauge('series', 'Series held by the metrics stage', () => this.seriesCount, '{series}');
  }

  /** Number of series held (overflow series included). */
  get size(): number {
    return this.seriesCount;
  }

  /** Sum a batch into the series. Never throws: bad samples are counted as dropped and logged. */
  add(batch: SampleBatch): void {
    let invalid = 0;
    for (let b = 0; b < batch.length; b++) {
      const sample = batch[b]!;
      try {
        if (!this.addOne(sample)) invalid++;
      } catch (err) {
        // addOne validates what it reads; this is the last line of "never throws".
        invalid++;
        this.opts.logger.warn('metrics stage: invalid sample dropped', { key: 'invalid_sample', error: String(err) });
      }
    }
    if (invalid > 0) this.opts.telemetry.dropped(invalid, DropReason.INVALID_SAMPLE);
  }

  private addOne(sample: Sample): boolean {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
    if (sample === null || typeof sample !== 'object') return this.reject('not an object', undefined);
    const state = this.schemaState(sample.schema);
    if (state === null) return false; // logged once when the schema was rejected
    const values = sample.values;
    if (!(values instanceof Float64Array) || values.length !== state.size) {
      return this.reject(`values must be a Float64Array of length ${state.size}`, state.schema.id);
    }
    // Validate before touching any sum, so that a bad sample changes nothing. A sample that adds
    // nothing (counters 0, no gauge value, no observation: most live processes sleep) only keeps
    // its series fresh, below.
    let adds = false;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (state.isCounter[i] ? !(v >= 0 && v < Infinity) : state.isHistogram[i] ? v < 0 || v === Infinity : v === Infinity || v === -Infinity) {
        return this.reject(`value of ${state.schema.metrics[i]!.name} is ${v}`, state.schema.id);
      }
      if (state.isCounter[i] ? v !== 0 : v === v) adds = true;
    }
    const attributes = sample.attributes;
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
    if (attributes === null || typeof attributes !== 'object') return this.reject('attributes missing', state.schema.id);
    let series = state.byObject.get(attributes);
    if (series === undefined || series.removed) {
      const found = this.lookup(state, attributes, sample.timeMs);
      if (found === null) return this.reject('attribute values must be strings, numbers or booleans', state.schema.id);
      series = found;
      state.byObject.set(attributes, series);
    }
    if (series === state.overflow) this.overflowCounter.add(1);
    if (adds) this.addValues(state, series, sample);
    const t = sample.timeMs;
    // A sample without a usable time still counts as activity now (else its series could expire).
    if (!(t <= series.lastUpdateMs)) series.lastUpdateMs = Number.isFinite(t) ? t : Date.now();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-boolean-literal-compare -- plugins are JavaScript too: the declared type is not checked at run time
    series.ended = sample.final === true;
    return true;
  }

  /** Sums a sample's counters, sets its gauges and records its observations into its series. */
  private addValues(state: SchemaState, series: Series, sample: Sample): void {
    const values = sample.values;
    const sums = series.values;
    const plain = state.plain;
    const isCounter = state.isCounter;
    for (let p = 0; p < plain.length; p++) {
      const i = plain[p]!;
      const v = values[i]!;
      if (isCounter[i]) sums[i]! += v;
      else if (v === v) {
        sums[i] = v;
        series.gaugeUpdates++;
      }
    }
    const split = state.split;
    for (let p = 0; p < split.length; p++) {
      const i = split[p]!;
      const v = values[i]!;
      // A sample without the point attributes and with nothing to add must not create a point.
      if (isCounter[i] ? v === 0 : v !== v) continue;
      const sub = this.subSeries(series, i, sample.pointAttributes, sample.timeMs);
      if (isCounter[i]) sub.value += v;
      else {
        sub.value = v;
        series.gaugeUpdates++;
      }
    }
    const hist = state.histograms;
    for (let p = 0; p < hist.length; p++) {
      const i = hist[p]!;
      const v = values[i]!;
      if (v !== v) continue; // no observation
      let acc = series.histograms[i];
      if (acc === undefined) series.histograms[i] = acc = newAccumulator(state.slots[i]!.histogram!);
      acc.record(v);
    }
  }

  private reject(reason: string, schemaId: string | undefined): false {
    // The host rate-limits identical messages; the reason is a field so the message stays identical.
    this.opts.logger.warn('metrics stage: invalid sample dropped', { key: 'invalid_sample', reason, schema: schemaId });
    return false;
  }

  /** Find or create the series of an attributes object that is not (or no longer) cached. */
  private lookup(state: SchemaState, attributes: Attributes, timeMs: number): Series | null {
    const key = canonicalKey(attributes);
    if (key === INVALID) return null;
    const existing = state.byKey.get(key);
    if (existing !== undefined) return existing;
    const start = Number.isFinite(timeMs) ? timeMs : Date.now();
    if (state.count >= this.opts.seriesLimit) {
      if (state.overflow === null || state.overflow.removed) {
        state.overflow = new Series(state, '', OVERFLOW_ATTRIBUTES, start);
        this.seriesCount++;
      }
      const now = Date.now();
      if (now - state.overflowLoggedAtMs >= 60_000) {
        state.overflowLoggedAtMs = now;
        this.opts.logger.warn('metrics stage: series limit reached, samples go to the overflow series', {
          key: 'series_overflow',
          schema: state.schema.id,
          seriesLimit: this.opts.seriesLimit,
          attribute: OVERFLOW_ATTRIBUTE,
        });
      }
      // Deliberately not remembered by key: the key map must stay bounded by the limit. The
      // WeakMap entry made by the caller lives as long as the attributes object.
      return state.overflow;
    }
    // Keep the caller's object: attributes are immutable by contract.
    const series = new Series(state, key, attributes, start);
    state.byKey.set(key, series);
    state.count++;
    this.seriesCount++;
    return series;
  }

  private subSeries(series: Series, index: number, pointAttributes: Attributes | undefined, timeMs: number): SubSeries {
    const names = series.state.schema.metrics[index]!.samplePointAttributes!;
    let map = series.subSeries[index];
    if (map === undefined) series.subSeries[index] = map = new Map();
    // Key: the values of the named attributes in descriptor order; '' for a missing one.
    // One name (the common case) needs no concatenation; small numbers' strings are cached by V8.
    let key: string;
    if (names.length === 1) {
      const v = pointAttributes?.[names[0]!];
      key = v === undefined ? '' : typeof v + ':' + String(v);
    } else {
      key = '';
      for (const n of names) {
        const v = pointAttributes?.[n];
        key += (v === undefined ? '' : typeof v + ':' + String(v)) + '\u0001';
      }
    }
    let sub = map.get(key);
    if (sub === undefined) {
      const attrs: Attributes = { ...series.attributesFor(index) };
      for (const n of names) {
        const v = pointAttributes?.[n];
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attrs[n] = v;
      }
      sub = { pointAttributes: attrs, startMs: Number.isFinite(timeMs) ? timeMs : Date.now(), value: 0, collected: 0 };
      map.set(key, sub);
    }
    return sub;
  }

  /** Validate a schema once; null (samples dropped) when it cannot be exported consistently. */
  private schemaState(schema: SampleSchema): SchemaState | null {
    // Samples of one batch nearly always share one schema object: skip the WeakMap for them.
    if (schema === this.lastSchema) return this.lastSchemaState;
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
    if (schema === null || typeof schema !== 'object') {
      this.reject('a sample has no schema (SampleSchema with a metrics array)', undefined);
      return null;
    }
    const known = this.schemaByObject.get(schema);
    if (known !== undefined) {
      this.lastSchema = schema;
      this.lastSchemaState = known;
      return known;
    }
    let state: SchemaState | null = null;
    try {
      const sameId = this.schemaById.get(schema.id);
      if (sameId !== undefined) {
        // Another object for a known id: the same state when it describes the same values.
        if (!sameLayout(sameId.schema, schema)) {
          throw new Error(`schema "${schema.id}": another schema with this id and different metrics is in use (ids must be unique)`);
        }
        state = sameId;
      } else {
        state = this.buildSchemaState(schema);
        this.schemaById.set(schema.id, state);
      }
    } catch (err) {
      this.opts.logger.error('metrics stage: schema rejected, its samples are dropped', {
        key: 'schema_rejected',
        schema: (schema as SampleSchema | undefined)?.id,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    this.schemaByObject.set(schema, state);
    return state;
  }

  private buildSchemaState(schema: SampleSchema): SchemaState {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
    if (schema === null || typeof schema !== 'object' || !Array.isArray(schema.metrics)) {
      throw new Error('a sample has no schema (SampleSchema with a metrics array)');
    }
    const where = `schema "${schema.id}"`;
    const slots: MetricSlot[] = [];
    const isCounter = new Uint8Array(schema.metrics.length);
    const isHistogram = new Uint8Array(schema.metrics.length);
    const histograms: number[] = [];
    const plain: number[] = [];
    const split: number[] = [];
    const pending = new Map<string, MetricSlot>();
    schema.metrics.forEach((d: MetricDescriptor, i: number) => {
      if (typeof d.name !== 'string' || d.name === '') throw new Error(`${where}: metric ${i} has no name`);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
      if (d.instrument !== 'counter' && d.instrument !== 'gauge' && d.instrument !== 'histogram') {
        throw new Error(`${where}: ${d.name}: instrument must be "counter", "gauge" or "histogram", got ${String(d.instrument)}`);
      }
      if (d.instrument === 'histogram' && d.samplePointAttributes && d.samplePointAttributes.length > 0) {
        throw new Error(`${where}: ${d.name}: a histogram cannot have samplePointAttributes`);
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
      if (d.valueType !== 'int' && d.valueType !== 'double') {
        throw new Error(`${where}: ${d.name}: valueType must be "int" or "double", got ${String(d.valueType)}`);
      }
      const slot: MetricSlot = {
        name: d.name,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
        unit: d.unit ?? '',
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
        description: d.description ?? '',
        instrument: d.instrument,
        valueType: d.valueType === 'int' ? ValueType.INT : ValueType.DOUBLE,
        histogram: d.instrument === 'histogram' ? histogramAggregation(d, where) : undefined,
      };
      const other = pending.get(d.name) ?? this.slotsByName.get(d.name);
      if (other !== undefined) {
        if (
          other.instrument !== slot.instrument ||
          other.unit !== slot.unit ||
          other.valueType !== slot.valueType ||
          JSON.stringify(other.histogram) !== JSON.stringify(slot.histogram)
        ) {
          throw new Error(
            `${where}: ${d.name} is declared as ${slot.instrument} ${d.valueType} "${slot.unit}" here and as ` +
              `${other.instrument} ${other.valueType === ValueType.INT ? 'int' : 'double'} "${other.unit}" elsewhere`,
          );
        }
        slots.push(other);
      } else {
        pending.set(d.name, slot);
        slots.push(slot);
      }
      isCounter[i] = d.instrument === 'counter' ? 1 : 0;
      isHistogram[i] = d.instrument === 'histogram' ? 1 : 0;
      if (d.instrument === 'histogram') histograms.push(i);
      else if (d.samplePointAttributes && d.samplePointAttributes.length > 0) split.push(i);
      else plain.push(i);
    });
    for (const [name, slot] of pending) this.slotsByName.set(name, slot);
    return {
      schema,
      size: schema.metrics.length,
      slots,
      isCounter,
      isHistogram,
      histograms: Int32Array.from(histograms),
      plain: Int32Array.from(plain),
      split: Int32Array.from(split),
      byObject: new WeakMap(),
      byKey: new Map(),
      overflow: null,
      count: 0,
      overflowLoggedAtMs: -Infinity,
    };
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Close a collection: snapshot every series, then expire ended and idle ones (they still appear
   * in this collection, so their last growth is exported). Call once per export cycle.
   */
  collect(nowMs: number = Date.now()): Collection {
    const previousCollectMs = this.lastCollectMs;
    this.lastCollectMs = nowMs;
    const snapshots: SeriesSnapshot[] = [];
    let expired = 0;
    for (const state of this.schemaById.values()) {
      for (const series of state.byKey.values()) {
        snapshots.push(this.snapshot(series));
        if (this.expires(series, nowMs)) {
          series.removed = true;
          state.byKey.delete(series.key);
          state.count--;
          this.seriesCount--;
          expired++;
        }
      }
      const overflow = state.overflow;
      if (overflow !== null) {
        snapshots.push(this.snapshot(overflow));
        if (this.expires(overflow, nowMs)) {
          overflow.removed = true;
          state.overflow = null;
          this.seriesCount--;
          expired++;
        }
      }
    }
    if (expired > 0) this.expiredCounter.add(expired);
    const build = (temporality: AggregationTemporality) => this.build(snapshots, temporality, nowMs, previousCollectMs);
    let cumulative: ResourceMetrics | undefined;
    let delta: ResourceMetrics | undefined;
    return {
      cumulative: () => (cumulative ??= build(AggregationTemporality.CUMULATIVE)),
      delta: () => (delta ??= build(AggregationTemporality.DELTA)),
    };
  }

  private expires(series: Series, nowMs: number): boolean {
    const idle = nowMs - series.lastUpdateMs;
    return series.ended ? idle >= this.opts.endedSeriesTtlMs : idle >= this.idleTtlMs;
  }

  private snapshot(series: Series): SeriesSnapshot {
    const values = series.values.slice();
    const previous = series.collected;
    series.collected = values;
    const gaugesUpdated = series.gaugeUpdates > 0;
    series.gaugeUpdates = 0;
    let subs: SubSnapshot[] | null = null;
    for (let i = 0; i < series.subSeries.length; i++) {
      const map = series.subSeries[i];
      if (map === undefined) continue;
      subs ??= [];
      for (const sub of map.values()) {
        subs.push({ index: i, sub, value: sub.value, previous: sub.collected });
        sub.collected = sub.value;
      }
    }
    let histograms: HistogramPointSnapshot[] | null = null;
    for (let i = 0; i < series.histograms.length; i++) {
      const acc = series.histograms[i];
      if (acc === undefined) continue;
      const before = series.histogramSnapshots[i] ?? null;
      // Unchanged since the previous collection: the same snapshot (no copy), no delta point.
      const now = acc.pending > 0 || before === null ? acc.snapshot() : before;
      series.histogramSnapshots[i] = now;
      (histograms ??= []).push({ index: i, now, previous: before });
    }
    return { series, values, previous, gaugesUpdated, subs, histograms };
  }

  private build(snapshots: SeriesSnapshot[], temporality: AggregationTemporality, nowMs: number, previousCollectMs: number | null): ResourceMetrics {
    const isDelta = temporality === AggregationTemporality.DELTA;
    const endTime = toHrTime(nowMs);
    const pointsBySlot = new Map<MetricSlot, DataPoint<number | Histogram | ExponentialHistogram>[]>();
    for (const slot of this.slotsByName.values()) pointsBySlot.set(slot, []);
    const startOf = (createdMs: number): HrTime =>
      toHrTime(isDelta && previousCollectMs !== null && previousCollectMs > createdMs ? previousCollectMs : createdMs);

    for (const snap of snapshots) {
      const { series, values, previous } = snap;
      const state = series.state;
      const seriesStart = startOf(series.startMs);
      for (let p = 0; p < state.plain.length; p++) {
        const i = state.plain[p]!;
        const slot = state.slots[i]!;
        let value = values[i]!;
        if (state.isCounter[i]) {
          if (isDelta) {
            value -= previous === null ? 0 : previous[i]!;
            if (value === 0) continue; // no growth: omitted from deltas
          }
        } else {
          if (value !== value) continue; // gauge never set
          if (isDelta && !snap.gaugesUpdated) continue;
        }
        pointsBySlot.get(slot)!.push({
          startTime: seriesStart,
          endTime,
          attributes: series.attributesFor(i),
          value: slot.valueType === ValueType.INT ? Math.round(value) : value,
        });
      }
      if (snap.subs !== null) {
        for (const s of snap.subs) {
          const slot = state.slots[s.index]!;
          let value = s.value;
          if (isDelta) {
            value -= state.isCounter[s.index] ? s.previous : 0;
            if (value === 0) continue;
          }
          pointsBySlot.get(slot)!.push({
            startTime: startOf(s.sub.startMs),
            endTime,
            attributes: s.sub.pointAttributes,
            value: slot.valueType === ValueType.INT ? Math.round(value) : value,
          });
        }
      }
      if (snap.histograms !== null) {
        for (const h of snap.histograms) {
          if (isDelta && h.now === h.previous) continue; // nothing observed in the interval
          const value = isDelta ? deltaOf(h.now, h.previous) : h.now;
          pointsBySlot.get(state.slots[h.index]!)!.push({
            startTime: seriesStart,
            endTime,
            attributes: series.attributesFor(h.index),
            value: histogramPointValue(value),
          });
        }
      }
    }

    const metrics: MetricData[] = [];
    for (const [slot, dataPoints] of pointsBySlot) {
      if (dataPoints.length === 0) continue;
      const descriptor = { name: slot.name, description: slot.description, unit: slot.unit, valueType: slot.valueType };
      if (slot.instrument === 'counter') {
        metrics.push({
          descriptor,
          aggregationTemporality: temporality,
          dataPointType: DataPointType.SUM,
          dataPoints: dataPoints as DataPoint<number>[],
          isMonotonic: true,
        });
      } else if (slot.instrument === 'gauge') {
        metrics.push({ descriptor, aggregationTemporality: temporality, dataPointType: DataPointType.GAUGE, dataPoints: dataPoints as DataPoint<number>[] });
      } else if (slot.histogram?.kind === 'explicit') {
        metrics.push({
          descriptor,
          aggregationTemporality: temporality,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: dataPoints as DataPoint<Histogram>[],
        });
      } else {
        metrics.push({
          descriptor,
          aggregationTemporality: temporality,
          dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM,
          dataPoints: dataPoints as DataPoint<ExponentialHistogram>[],
        });
      }
    }
    return { resource: this.opts.resource, scopeMetrics: [{ scope: { ...METRICS_SCOPE }, metrics }] };
  }
}

/** A histogram snapshot as the sdk-metrics data point value (min/max only when observed). */
function histogramPointValue(h: HistogramSnapshot): Histogram | ExponentialHistogram {
  const minMax = h.count > 0 ? { min: h.min, max: h.max } : {};
  if (h.kind === 'explicit') {
    return { buckets: { boundaries: [...h.boundaries], counts: h.counts }, sum: h.sum, count: h.count, ...minMax };
  }
  return {
    count: h.count,
    sum: h.sum,
    scale: h.scale,
    zeroCount: h.zeroCount,
    positive: { offset: h.offset, bucketCounts: h.counts },
    negative: { offset: 0, bucketCounts: [] },
    ...minMax,
  };
}
