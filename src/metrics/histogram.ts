/**
 * Histogram accumulators of the metrics stage: base-2 exponential (the OpenTelemetry
 * ExponentialHistogram data model, as the SDK's `ExponentialHistogramAggregation` makes it) and
 * explicit buckets. Non-negative observations only (the stage rejects others): the negative range
 * of an exponential histogram stays empty.
 *
 * Exponential buckets (specification, "ExponentialHistogram"): at scale s the base is
 * 2^(2^-s) and bucket i holds (base^i, base^(i+1)]; zero has its own count. The accumulator starts
 * at `maxScale` and lowers the scale (merging 2^k neighbours, which is exact: index at scale s-k is
 * index at s >> k) as soon as the observed range needs more than `maxSize` buckets, as the SDK
 * does. Delta temporality is computed from two cumulative snapshots: the older one is brought to
 * the newer one's scale (downscaling only ever merges) and subtracted, bucket by bucket.
 */
import type { HistogramAggregation } from '../api/index.js';

/** The SDK's defaults (ExponentialHistogramAggregation: maxSize 160, maxScale 20). */
export const EXPONENTIAL_DEFAULTS = { maxSize: 160, maxScale: 20 } as const;
/** Scales below this are not useful (base 2^1024 already spans every double in one bucket). */
export const MIN_SCALE = -10;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
// Little-endian hosts (x86-64, arm64): the high word (sign, exponent) is u32[1].
const HI = 1;
const LO = 0;

/**
 * Bucket index of v > 0 at `scale`: the i with base^i < v <= base^(i+1). Exact for powers of two
 * and, at scales <= 0, for every value (from the exponent bits); at scales > 0 through log2, whose
 * rounding can put a value within ~1e-15 relative of a boundary into the neighbour bucket (the
 * SDK's LogarithmMapping has the same property).
 */
export function bucketIndex(v: number, scale: number): number {
  return indexAt(v, scale, 2 ** scale);
}

/** bucketIndex with 2^scale given (the accumulator keeps it: no Math.pow per observation). */
function indexAt(v: number, scale: number, factor: number): number {
  f64[0] = v;
  const hi = u32[HI]!;
  const biased = (hi >>> 20) & 0x7ff;
  const mantissaZero = (hi & 0xfffff) === 0 && u32[LO] === 0;
  if (biased === 0) {
    // Subnormal: far below anything measured here; log2 is exact enough at that magnitude.
    const exact = Math.log2(v);
    return scale <= 0 ? (Math.ceil(exact) - 1) >> -scale : Math.ceil(exact * factor) - 1;
  }
  const exponent = biased - 1023;
  if (mantissaZero) {
    // v = 2^exponent: the upper boundary of bucket (exponent << scale) - 1.
    return scale >= 0 ? exponent * factor - 1 : (exponent - 1) >> -scale;
  }
  if (scale <= 0) return exponent >> -scale;
  const i = Math.floor(Math.log2(v) * factor);
  // Keep within the octave the exponent bits prove (log2 rounding at the octave's edges).
  const lo = exponent * factor;
  const hiIdx = lo + factor - 1;
  return i < lo ? lo : i > hiIdx ? hiIdx : i;
}

/** What a collection saw of one exponential histogram (cumulative since its start). */
export interface ExponentialSnapshot {
  readonly kind: 'exponential';
  readonly scale: number;
  readonly count: number;
  readonly sum: number;
  readonly zeroCount: number;
  readonly min: number;
  readonly max: number;
  /** Index of counts[0]. */
  readonly offset: number;
  readonly counts: number[];
  /** Min and max of the observations since the previous snapshot (Infinity / -Infinity: none). */
  readonly intervalMin: number;
  readonly intervalMax: number;
}

export interface ExplicitSnapshot {
  readonly kind: 'explicit';
  readonly boundaries: readonly number[];
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  /** boundaries.length + 1 counts: (-inf, b0], (b0, b1], ..., (b_last, +inf). */
  readonly counts: number[];
  readonly intervalMin: number;
  readonly intervalMax: number;
}

export type HistogramSnapshot = ExponentialSnapshot | ExplicitSnapshot;

export interface HistogramAccumulator {
  record(v: number): void;
  /** Observations since the last snapshot(). */
  readonly pending: number;
  /** A snapshot of everything so far; resets the interval's min/max. */
  snapshot(): HistogramSnapshot;
}

export class ExponentialAccumulator implements HistogramAccumulator {
  scale: number;
  /** 2^scale. */
  private factor: number;
  count = 0;
  sum = 0;
  zeroCount = 0;
  min = Infinity;
  max = -Infinity;
  pending = 0;
  private intervalMin = Infinity;
  private intervalMax = -Infinity;
  /** counts[k] is bucket indexStart + k; used: [0, indexEnd - indexStart]. */
  private readonly counts: Float64Array;
  private indexStart = 0;
  private indexEnd = -1;
  private empty = true;

  constructor(
    private readonly maxSize: number,
    maxScale: number,
  ) {
    this.scale = maxScale;
    this.factor = 2 ** maxScale;
    this.counts = new Float64Array(maxSize);
  }

  record(v: number): void {
    this.count++;
    this.sum += v;
    this.pending++;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (v < this.intervalMin) this.intervalMin = v;
    if (v > this.intervalMax) this.intervalMax = v;
    if (v === 0) {
      this.zeroCount++;
      return;
    }
    const idx = indexAt(v, this.scale, this.factor);
    // Nearly every observation lands in the range already held: one increment.
    if (idx >= this.indexStart && idx <= this.indexEnd) this.counts[idx - this.indexStart]!++;
    else this.widen(idx);
  }

  /** Count an observation outside the held range: extend it, downscaling when it would exceed maxSize. */
  private widen(idx: number): void {
    if (this.empty) {
      this.empty = false;
      this.indexStart = this.indexEnd = idx;
      this.counts[0] = 1;
      return;
    }
    const lo = idx < this.indexStart ? idx : this.indexStart;
    const hi = idx > this.indexEnd ? idx : this.indexEnd;
    if (hi - lo + 1 > this.maxSize) {
      let shift = 1;
      while ((hi >> shift) - (lo >> shift) + 1 > this.maxSize) shift++;
      this.downscale(shift);
      idx >>= shift;
    }
    if (idx < this.indexStart) {
      const by = this.indexStart - idx;
      const used = this.indexEnd - this.indexStart + 1;
      this.counts.copyWithin(by, 0, used);
      this.counts.fill(0, 0, by);
      this.indexStart = idx;
    } else if (idx > this.indexEnd) {
      this.indexEnd = idx;
    }
    this.counts[idx - this.indexStart]!++;
  }

  /** Merge 2^shift neighbouring buckets (scale - shift). */
  private downscale(shift: number): void {
    const start = this.indexStart;
    const newStart = start >> shift;
    const used = this.indexEnd - start + 1;
    const c = this.counts;
    for (let k = 0; k < used; k++) {
      const to = ((start + k) >> shift) - newStart;
      if (to === k) continue;
      c[to]! += c[k]!;
      c[k] = 0;
    }
    this.indexStart = newStart;
    this.indexEnd = this.indexEnd >> shift;
    this.scale -= shift;
    this.factor = 2 ** this.scale;
  }

  snapshot(): ExponentialSnapshot {
    const used = this.empty ? 0 : this.indexEnd - this.indexStart + 1;
    const s: ExponentialSnapshot = {
      kind: 'exponential',
      scale: this.scale,
      count: this.count,
      sum: this.sum,
      zeroCount: this.zeroCount,
      min: this.min,
      max: this.max,
      offset: this.empty ? 0 : this.indexStart,
      counts: countsOf(this.counts, used),
      intervalMin: this.intervalMin,
      intervalMax: this.intervalMax,
    };
    this.pending = 0;
    this.intervalMin = Infinity;
    this.intervalMax = -Infinity;
    return s;
  }
}

export class ExplicitAccumulator implements HistogramAccumulator {
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  pending = 0;
  private intervalMin = Infinity;
  private intervalMax = -Infinity;
  private readonly counts: Float64Array;

  constructor(private readonly boundaries: readonly number[]) {
    this.counts = new Float64Array(boundaries.length + 1);
  }

  record(v: number): void {
    this.count++;
    this.sum += v;
    this.pending++;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (v < this.intervalMin) this.intervalMin = v;
    if (v > this.intervalMax) this.intervalMax = v;
    // First boundary >= v (buckets are upper-inclusive, as in the OpenTelemetry data model).
    const b = this.boundaries;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (b[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]!++;
  }

  snapshot(): ExplicitSnapshot {
    const s: ExplicitSnapshot = {
      kind: 'explicit',
      boundaries: this.boundaries,
      count: this.count,
      sum: this.sum,
      min: this.min,
      max: this.max,
      counts: countsOf(this.counts, this.counts.length),
      intervalMin: this.intervalMin,
      intervalMax: this.intervalMax,
    };
    this.pending = 0;
    this.intervalMin = Infinity;
    this.intervalMax = -Infinity;
    return s;
  }
}

/**
 * The first n counts as a plain array: a loop, not Array.from (which iterates a typed array through
 * the iterator protocol: ~7 us for 160 buckets here, the largest part of a collection's histogram cost).
 */
function countsOf(c: Float64Array, n: number): number[] {
  const out = new Array<number>(n);
  for (let k = 0; k < n; k++) out[k] = c[k]!;
  return out;
}

export function newAccumulator(a: HistogramAggregation): HistogramAccumulator {
  return a.kind === 'explicit'
    ? new ExplicitAccumulator(a.boundaries)
    : new ExponentialAccumulator(a.maxSize ?? EXPONENTIAL_DEFAULTS.maxSize, a.maxScale ?? EXPONENTIAL_DEFAULTS.maxScale);
}

/** Bucket counts of `s` at a lower or equal `scale` (offset and counts), merging neighbours. */
export function countsAtScale(s: ExponentialSnapshot, scale: number): { offset: number; counts: number[] } {
  const shift = s.scale - scale;
  if (shift <= 0 || s.counts.length === 0) return { offset: s.offset, counts: s.counts };
  const offset = s.offset >> shift;
  const counts = new Array<number>(((s.offset + s.counts.length - 1) >> shift) - offset + 1).fill(0);
  for (let k = 0; k < s.counts.length; k++) counts[((s.offset + k) >> shift) - offset]! += s.counts[k]!;
  return { offset, counts };
}

/**
 * `now` minus `before` (an earlier snapshot of the same accumulator), as the data point value of
 * a delta histogram; min/max are the interval's own. Bucket counts keep their offset (leading and
 * trailing empty buckets trimmed).
 */
export function deltaOf(now: HistogramSnapshot, before: HistogramSnapshot | null): HistogramSnapshot {
  if (before === null) return now;
  if (now.kind === 'explicit' && before.kind === 'explicit') {
    return {
      ...now,
      count: now.count - before.count,
      sum: now.sum - before.sum,
      min: now.intervalMin,
      max: now.intervalMax,
      counts: now.counts.map((c, i) => c - (before.counts[i] ?? 0)),
    };
  }
  if (now.kind !== 'exponential' || before.kind !== 'exponential') return now;
  const old = countsAtScale(before, now.scale);
  const counts = now.counts.slice();
  for (let k = 0; k < old.counts.length; k++) counts[old.offset + k - now.offset]! -= old.counts[k]!;
  let first = 0;
  let last = counts.length - 1;
  while (first <= last && counts[first] === 0) first++;
  while (last >= first && counts[last] === 0) last--;
  return {
    ...now,
    count: now.count - before.count,
    sum: now.sum - before.sum,
    zeroCount: now.zeroCount - before.zeroCount,
    min: now.intervalMin,
    max: now.intervalMax,
    offset: first <= last ? now.offset + first : 0,
    counts: first <= last ? counts.slice(first, last + 1) : [],
  };
}
