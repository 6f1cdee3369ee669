/**
 * ExportMetricsServiceRequest in OTLP/protobuf, written by hand for the export of every cycle
 * (http/protobuf and grpc). What it does that the library's serializer
 * (@opentelemetry/otlp-transformer's ProtobufMetricsSerializer) does not:
 *  - each attribute (key, value) pair is encoded once and its bytes reused at every export (see
 *    the pair cache below), where the library encodes every string of every point every time;
 *  - the request's size is known before it is written (a point's size is its attributes' bytes
 *    plus fixed fields), so it is written once, front to back, into a buffer of exactly that size,
 *    where the library runs a size-estimating pass and then moves each message longer than 127
 *    bytes to make room for its length.
 * The output decodes (by the official definitions) to what the library's does:
 * plugins/otlp/protobuf-metrics.test.ts; bench/otlp-encode/bench.mjs measures both.
 */
import type { HrTime } from '@opentelemetry/api';
import type { DataPoint, ExponentialHistogram, Histogram, MetricData, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { AggregationTemporality, DataPointType, ValueType } from '../../src/api/index.js';

type Attrs = Record<string, unknown>;

// ---- cold path: attributes, resource, scope, metric header (once per object or per metric) ----

/** Little-endian bytes of a protobuf message under construction (cold path only). */
class Bytes {
  private readonly parts: number[] = [];

  byte(b: number): this {
    this.parts.push(b);
    return this;
  }

  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v > 127n) {
      this.parts.push(Number(v & 127n) | 128);
      v >>= 7n;
    }
    this.parts.push(Number(v));
    return this;
  }

  bytes(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }

  /** Field `tag` (a length-delimited one) holding `body`. */
  field(tag: number, body: Uint8Array): this {
    return this.byte(tag).varint(body.length).bytes(body);
  }

  string(tag: number, s: string): this {
    return this.field(tag, Buffer.from(s, 'utf8'));
  }

  double(tag: number, v: number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(v);
    return this.byte(tag).bytes(b);
  }

  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const MAX_INT64 = 2 ** 63;

/** AnyValue: as the library maps a JavaScript value (integers in int64 range are int_value). */
function anyValue(value: unknown): Uint8Array {
  const out = new Bytes();
  if (typeof value === 'string') out.string(0x0a, value);
  else if (typeof value === 'boolean') out.byte(0x10).varint(value ? 1 : 0);
  else if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= -MAX_INT64 && value < MAX_INT64) out.byte(0x18).varint(BigInt(value));
    else out.double(0x21, value);
  } else if (value instanceof Uint8Array) out.field(0x3a, value);
  else if (Array.isArray(value)) {
    const array = new Bytes();
    for (const item of value as unknown[]) array.field(0x0a, anyValue(item));
    out.field(0x2a, array.done());
  } else if (typeof value === 'object' && value !== null) {
    out.field(0x32, keyValues(value as Attrs, 0x0a));
  }
  return out.done();
}

/** A KeyValue as varint(length) + message, any value (the field tag is the caller's). */
function keyValue(key: string, value: unknown): Uint8Array {
  const kv = new Bytes().string(0x0a, key).field(0x12, anyValue(value)).done();
  return new Bytes().varint(kv.length).bytes(kv).done();
}

/** Repeated KeyValue under field tag `tag`, in the object's key order. */
function keyValues(attributes: Attrs, tag: number): Uint8Array {
  const out = new Bytes();
  for (const key in attributes) {
    if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
    out.byte(tag).bytes(keyValue(key, attributes[key]));
  }
  return out.done();
}

// A point's attributes are written from one cached KeyValue per (key, value) pair, not per
// attributes object: the metrics stage merges a descriptor's point attributes into a new object
// per series and descriptor (33 per process series), and bytes per object would cost ~250 B per
// point of memory; pairs are bounded by the distinct values (pids, commands, cgroups). The cache
// starts over when it holds more than MIN_CACHED_PAIRS pairs and twice the pairs the previous
// batch used (a batch: one request, or the requests the exporter split it into): a node's churn
// of pids cannot grow it for good, and a big batch's pairs (50,000 series) still fit, instead of
// being encoded again at every export.
const MIN_CACHED_PAIRS = 65_536;
interface CachedPair {
  readonly bytes: Uint8Array;
  /** The last request that used it. */
  request: number;
}
let pairCache = new Map<string, Map<unknown, CachedPair>>();
let cachedPairs = 0;
/** The batch being encoded (CachedPair.request). */
let request = 0;
/** Distinct pairs used by the batch being encoded, and by the one before. */
let pairsUsed = 0;
let pairsUsedBefore = 0;
const NO_BYTES = new Uint8Array(0);

/**
 * A KeyValue as varint(length) + message, for a primitive value (the field tag is the caller's).
 * Written straight into its buffer: a node whose pairs outnumber the cache encodes them all again
 * at every export, so a miss must stay cheap too.
 */
function encodePair(key: string, value: string | number | boolean): Uint8Array {
  // Negative int_value: ten bytes of two's complement, rare enough for the generic path.
  if (typeof value === 'number' && Number.isInteger(value) && value < 0) return keyValue(key, value);
  const keyLength = Buffer.byteLength(key, 'utf8');
  let any: number; // AnyValue's size
  let valueLength = 0;
  if (typeof value === 'string') {
    valueLength = Buffer.byteLength(value, 'utf8');
    any = 1 + varintSize(valueLength) + valueLength;
  } else if (typeof value === 'boolean') any = 2;
  else if (Number.isInteger(value) && value < MAX_INT64) any = 1 + varintSize(value);
  else any = 9;
  const kv = 1 + varintSize(keyLength) + keyLength + 1 + varintSize(any) + any;
  const out = Buffer.allocUnsafe(varintSize(kv) + kv);
  const saved = { buf, view, pos };
  buf = out;
  view = new DataView(out.buffer, out.byteOffset, out.length);
  pos = 0;
  try {
    putVarint(kv);
    buf[pos++] = 0x0a;
    putVarint(keyLength);
    pos += out.write(key, pos, 'utf8');
    buf[pos++] = 0x12;
    putVarint(any);
    if (typeof value === 'string') {
      buf[pos++] = 0x0a;
      putVarint(valueLength);
      pos += out.write(value, pos, 'utf8');
    } else if (typeof value === 'boolean') {
      buf[pos++] = 0x10;
      buf[pos++] = value ? 1 : 0;
    } else if (any !== 9) {
      buf[pos++] = 0x18;
      putVarint(value);
    } else putDouble(0x21, value);
    if (pos !== out.length) throw new Error(`otlp protobuf encoder: pair ${key} wrote ${pos} bytes of ${out.length}`);
    return out;
  } finally {
    ({ buf, view, pos } = saved);
  }
}

function pairBytes(key: string, value: unknown): Uint8Array {
  let byValue = pairCache.get(key);
  if (byValue === undefined) {
    byValue = new Map();
    pairCache.set(key, byValue);
  }
  let b = byValue.get(value);
  if (b === undefined) {
    const t = typeof value;
    // Arrays, bytes, maps: not cached (the metrics stage admits none).
    if (t !== 'string' && t !== 'number' && t !== 'boolean') return keyValue(key, value);
    if (cachedPairs >= MIN_CACHED_PAIRS && cachedPairs >= 2 * Math.max(pairsUsedBefore, pairsUsed)) {
      pairCache = new Map();
      cachedPairs = 0;
      byValue = new Map();
      pairCache.set(key, byValue);
    }
    b = { bytes: encodePair(key, value as string | number | boolean), request: 0 };
    byValue.set(value, b);
    cachedPairs++;
  }
  if (b.request !== request) {
    b.request = request;
    pairsUsed++;
  }
  return b.bytes;
}

const resourceCache = new WeakMap<object, Uint8Array>();

/** ResourceMetrics' field 1 (Resource) with its tag. */
function resourceBytes(resource: ResourceMetrics['resource']): Uint8Array {
  let b = resourceCache.get(resource);
  if (b === undefined) {
    const body = new Bytes().bytes(keyValues(resource.attributes, 0x0a)).byte(0x10).varint(0).done();
    const out = new Bytes().field(0x0a, body);
    b = out.done();
    resourceCache.set(resource, b);
  }
  return b;
}

function scopeBytes(scope: ResourceMetrics['scopeMetrics'][number]['scope']): Uint8Array {
  const s = scope as typeof scope & { attributes?: Attrs; droppedAttributesCount?: number };
  const body = new Bytes().string(0x0a, s.name);
  if (s.version) body.string(0x12, s.version);
  if (s.attributes) body.bytes(keyValues(s.attributes, 0x1a));
  if (s.droppedAttributesCount) body.byte(0x20).varint(s.droppedAttributesCount);
  return new Bytes().field(0x0a, body.done()).done();
}

// Metric headers by name, description and unit: the same few dozen at every export.
const MAX_CACHED_HEADERS = 1024;
const headerCache = new Map<string, Uint8Array>();

/** Metric fields 1-3 (name, description, unit). */
function metricHeader(m: MetricData): Uint8Array {
  const { name, description, unit } = m.descriptor;
  const key = `${name}\u0000${description}\u0000${unit}`;
  let b = headerCache.get(key);
  if (b === undefined) {
    const out = new Bytes().string(0x0a, name);
    if (description) out.string(0x12, description);
    if (unit) out.string(0x1a, unit);
    b = out.done();
    if (headerCache.size >= MAX_CACHED_HEADERS) headerCache.clear();
    headerCache.set(key, b);
  }
  return b;
}

function temporalityOf(t: AggregationTemporality): number {
  return t === AggregationTemporality.DELTA ? 1 : 2;
}

// ---- hot path: sizes, then the writing of points into the request's buffer ----

function varintSize(v: number): number {
  if (v < 128) return 1;
  if (v < 16384) return 2;
  if (v < 2097152) return 3;
  if (v < 268435456) return 4;
  let n = 5;
  for (v = Math.floor(v / 34359738368); v > 0; v = Math.floor(v / 128)) n++;
  return n;
}

/** A length-delimited field of `length` bytes, with its one-byte tag and its length. */
function fieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

function numberPointSize(attributes: number): number {
  // start, time and the value: a tag byte and 8 bytes each.
  return 27 + attributes;
}

function histogramPointSize(p: DataPoint<Histogram>, attributes: number): number {
  const h = p.value;
  let n = 27 + attributes; // start, time, count
  if (h.sum !== undefined) n += 9;
  if (h.buckets.counts.length > 0) n += fieldSize(8 * h.buckets.counts.length);
  if (h.buckets.boundaries.length > 0) n += fieldSize(8 * h.buckets.boundaries.length);
  if (h.min !== undefined) n += 9;
  if (h.max !== undefined) n += 9;
  return n;
}

function bucketsSize(offset: number, counts: number[]): number {
  let n = offset !== 0 ? 1 + varintSize(zigzag(offset)) : 0;
  if (counts.length > 0) {
    let c = 0;
    for (let i = 0; i < counts.length; i++) c += varintSize(counts[i]!);
    n += fieldSize(c);
  }
  return n;
}

function exponentialPointSize(p: DataPoint<ExponentialHistogram>, attributes: number): number {
  const h = p.value;
  let n = 36 + attributes; // start, time, count, zero_count
  if (h.sum !== undefined) n += 9;
  if (h.scale !== 0) n += 1 + varintSize(zigzag(h.scale));
  n += fieldSize(bucketsSize(h.positive.offset, h.positive.bucketCounts));
  n += fieldSize(bucketsSize(h.negative.offset, h.negative.bucketCounts));
  if (h.min !== undefined) n += 9;
  if (h.max !== undefined) n += 9;
  return n;
}

function zigzag(n: number): number {
  return ((n << 1) ^ (n >> 31)) >>> 0;
}

/** The buffer being written, as module state: the hot path passes no writer object around. */
const NO_VIEW: DataView = new DataView(new ArrayBuffer(0));
let buf: Uint8Array = NO_BYTES;
let view = NO_VIEW;
let pos = 0;

function putVarint(v: number): void {
  while (v >= 128) {
    buf[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
}

function putBytes(b: Uint8Array): void {
  buf.set(b, pos);
  pos += b.length;
}

function putFixed64(tag: number, lo: number, hi: number): void {
  buf[pos] = tag;
  view.setUint32(pos + 1, lo, true);
  view.setUint32(pos + 5, hi, true);
  pos += 9;
}

function putDouble(tag: number, v: number): void {
  buf[pos] = tag;
  view.setFloat64(pos + 1, v, true);
  pos += 9;
}

/** An unsigned integer up to 2^64 as fixed64. */
function putUint64(tag: number, v: number): void {
  putFixed64(tag, v >>> 0, (v / 4294967296) >>> 0);
}

/** sfixed64: two's complement for negatives, as the library writes as_int. */
function putSfixed64(tag: number, v: number): void {
  if (v >= 0) {
    putUint64(tag, v);
    return;
  }
  const abs = -v;
  let lo = ~(abs >>> 0) >>> 0;
  let hi = ~((abs / 4294967296) >>> 0) >>> 0;
  lo = (lo + 1) >>> 0;
  if (lo === 0) hi = (hi + 1) >>> 0;
  putFixed64(tag, lo, hi);
}

/** HrTime [s, ns] as fixed64 nanoseconds (s * 1e9 exceeds 2^53: split into 32-bit halves). */
function putTime(tag: number, t: HrTime): void {
  const seconds = t[0];
  const nanos = t[1];
  const lower = (seconds & 0xffff) * 1e9;
  const upper = ((seconds / 65536) >>> 0) * 1e9;
  const low32 = (lower >>> 0) + (((upper & 0xffff) * 65536) >>> 0) + nanos;
  const hi = (Math.floor(lower / 4294967296) + ((upper / 65536) >>> 0) + Math.floor(low32 / 4294967296)) >>> 0;
  putFixed64(tag, low32 >>> 0, hi);
}

function putBuckets(tag: number, offset: number, counts: number[]): void {
  buf[pos++] = tag;
  putVarint(bucketsSize(offset, counts));
  if (offset !== 0) {
    buf[pos++] = 0x08;
    putVarint(zigzag(offset));
  }
  if (counts.length > 0) {
    let c = 0;
    for (let i = 0; i < counts.length; i++) c += varintSize(counts[i]!);
    buf[pos++] = 0x12;
    putVarint(c);
    for (let i = 0; i < counts.length; i++) putVarint(counts[i]!);
  }
}

// The request's points' attribute pairs, found while sizing and written after: pairs[] flat,
// point k's are pairs[pairEnd[k-1] .. pairEnd[k]), attributeSize[k] bytes with their tags.
const pairs: Uint8Array[] = [];
let pairEnd = new Int32Array(0);
let attributeSize = new Int32Array(0);
let pairCount = 0;

/** Looks up point k's attribute pairs; returns their size in bytes, tags included. */
function collectAttributes(attributes: Attrs | undefined, k: number): number {
  let size = 0;
  if (attributes !== undefined) {
    for (const key in attributes) {
      if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
      const b = pairBytes(key, attributes[key]);
      pairs[pairCount++] = b;
      size += 1 + b.length;
    }
  }
  pairEnd[k] = pairCount;
  attributeSize[k] = size;
  return size;
}

function putAttributes(tag: number, k: number): void {
  // Locals, not the module's bindings, in the copy loop.
  const out = buf;
  let at = pos;
  for (let j = k === 0 ? 0 : pairEnd[k - 1]!, end = pairEnd[k]!; j < end; j++) {
    const b = pairs[j]!;
    const n = b.length;
    out[at++] = tag;
    if (n > 32) out.set(b, at);
    else for (let i = 0; i < n; i++) out[at + i] = b[i]!;
    at += n;
  }
  pos = at;
}

/** Size of the Gauge/Sum/Histogram/ExponentialHistogram message of `m`, whose first point is the request's point `first`. */
function dataSize(m: MetricData, first: number): number {
  let n = 0;
  let k = first;
  // Index loops over points here and in writeData: under Maglev (bin/node-flags' --max-opt=2) a
  // for-of over an array allocates an iterator result per element.
  switch (m.dataPointType) {
    case DataPointType.GAUGE:
    case DataPointType.SUM: {
      const points = m.dataPoints;
      for (let i = 0; i < points.length; i++) n += fieldSize(numberPointSize(collectAttributes(points[i]!.attributes, k++)));
      break;
    }
    case DataPointType.HISTOGRAM: {
      const points = m.dataPoints;
      for (let i = 0; i < points.length; i++) n += fieldSize(histogramPointSize(points[i]!, collectAttributes(points[i]!.attributes, k++)));
      break;
    }
    case DataPointType.EXPONENTIAL_HISTOGRAM: {
      const points = m.dataPoints;
      for (let i = 0; i < points.length; i++) n += fieldSize(exponentialPointSize(points[i]!, collectAttributes(points[i]!.attributes, k++)));
      break;
    }
  }
  if (m.dataPointType !== DataPointType.GAUGE) n += 2; // aggregation_temporality
  if (m.dataPointType === DataPointType.SUM && m.isMonotonic) n += 2;
  return n;
}

function writeData(m: MetricData, size: number, first: number): void {
  const tag =
    m.dataPointType === DataPointType.GAUGE ? 0x2a : m.dataPointType === DataPointType.SUM ? 0x3a : m.dataPointType === DataPointType.HISTOGRAM ? 0x4a : 0x52;
  buf[pos++] = tag;
  putVarint(size);
  let k = first;
  if (m.dataPointType === DataPointType.GAUGE || m.dataPointType === DataPointType.SUM) {
    const asInt = m.descriptor.valueType === ValueType.INT;
    const points = m.dataPoints;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      buf[pos++] = 0x0a;
      putVarint(numberPointSize(attributeSize[k]!));
      putTime(0x11, p.startTime);
      putTime(0x19, p.endTime);
      if (asInt) putSfixed64(0x31, p.value);
      else putDouble(0x21, p.value);
      putAttributes(0x3a, k++);
    }
  } else if (m.dataPointType === DataPointType.HISTOGRAM) {
    const points = m.dataPoints;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      const h = p.value;
      buf[pos++] = 0x0a;
      putVarint(histogramPointSize(p, attributeSize[k]!));
      putTime(0x11, p.startTime);
      putTime(0x19, p.endTime);
      putUint64(0x21, h.count);
      if (h.sum !== undefined) putDouble(0x29, h.sum);
      if (h.buckets.counts.length > 0) {
        buf[pos++] = 0x32;
        putVarint(8 * h.buckets.counts.length);
        const counts = h.buckets.counts;
        for (let j = 0; j < counts.length; j++) putFixed64Raw(counts[j]!);
      }
      if (h.buckets.boundaries.length > 0) {
        buf[pos++] = 0x3a;
        putVarint(8 * h.buckets.boundaries.length);
        const boundaries = h.buckets.boundaries;
        for (let j = 0; j < boundaries.length; j++) {
          view.setFloat64(pos, boundaries[j]!, true);
          pos += 8;
        }
      }
      putAttributes(0x4a, k++);
      if (h.min !== undefined) putDouble(0x59, h.min);
      if (h.max !== undefined) putDouble(0x61, h.max);
    }
  } else {
    const points = m.dataPoints;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      const h = p.value;
      buf[pos++] = 0x0a;
      putVarint(exponentialPointSize(p, attributeSize[k]!));
      putAttributes(0x0a, k++);
      putTime(0x11, p.startTime);
      putTime(0x19, p.endTime);
      putUint64(0x21, h.count);
      if (h.sum !== undefined) putDouble(0x29, h.sum);
      if (h.scale !== 0) {
        buf[pos++] = 0x30;
        putVarint(zigzag(h.scale));
      }
      putUint64(0x39, h.zeroCount);
      putBuckets(0x42, h.positive.offset, h.positive.bucketCounts);
      putBuckets(0x4a, h.negative.offset, h.negative.bucketCounts);
      if (h.min !== undefined) putDouble(0x61, h.min);
      if (h.max !== undefined) putDouble(0x69, h.max);
    }
  }
  if (m.dataPointType !== DataPointType.GAUGE) {
    buf[pos++] = 0x10;
    buf[pos++] = temporalityOf(m.aggregationTemporality);
  }
  if (m.dataPointType === DataPointType.SUM && m.isMonotonic) {
    buf[pos++] = 0x18;
    buf[pos++] = 1;
  }
}

function putFixed64Raw(v: number): void {
  view.setUint32(pos, v >>> 0, true);
  view.setUint32(pos + 4, (v / 4294967296) >>> 0, true);
  pos += 8;
}

/** One metric's header bytes and sizes, worked out before the request is written. */
interface MetricPlan {
  header: Uint8Array;
  dataSize: number;
  size: number;
  first: number;
}

/** Requests that continue the batch of the request before them (see continuesBatch). */
const continuations = new WeakSet<ResourceMetrics>();

/** Marks `rm` as the next request of the batch the previous request began (the exporter split it). */
export function continuesBatch(rm: ResourceMetrics): ResourceMetrics {
  continuations.add(rm);
  return rm;
}

/** The ExportMetricsServiceRequest holding `rm`, as protobuf bytes. */
export function encodeMetricsRequest(rm: ResourceMetrics): Uint8Array {
  const resource = resourceBytes(rm.resource);
  const schemaUrl = rm.resource.schemaUrl ? new Bytes().string(0x1a, rm.resource.schemaUrl).done() : NO_BYTES;
  let points = 0;
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) points += m.dataPoints.length;
  if (pairEnd.length < points) {
    pairEnd = new Int32Array(points);
    attributeSize = new Int32Array(points);
  }
  pairCount = 0;
  if (!continuations.has(rm)) {
    request++;
    pairsUsedBefore = pairsUsed;
    pairsUsed = 0;
  }

  // Sizes, inside out.
  const scopes: { head: Uint8Array; tail: Uint8Array; size: number; metrics: MetricPlan[] }[] = [];
  let first = 0;
  let resourceMetricsSize = resource.length + schemaUrl.length;
  for (const sm of rm.scopeMetrics) {
    const head = scopeBytes(sm.scope);
    const tail = sm.scope.schemaUrl ? new Bytes().string(0x1a, sm.scope.schemaUrl).done() : NO_BYTES;
    let size = head.length + tail.length;
    const metrics: MetricPlan[] = [];
    for (const m of sm.metrics) {
      const header = metricHeader(m);
      const d = dataSize(m, first);
      const metricSize = header.length + fieldSize(d);
      metrics.push({ header, dataSize: d, size: metricSize, first });
      first += m.dataPoints.length;
      size += fieldSize(metricSize);
    }
    scopes.push({ head, tail, size, metrics });
    resourceMetricsSize += fieldSize(size);
  }

  buf = new Uint8Array(fieldSize(resourceMetricsSize));
  view = new DataView(buf.buffer);
  pos = 0;
  try {
    buf[pos++] = 0x0a;
    putVarint(resourceMetricsSize);
    putBytes(resource);
    for (let s = 0; s < scopes.length; s++) {
      const scope = scopes[s]!;
      buf[pos++] = 0x12;
      putVarint(scope.size);
      putBytes(scope.head);
      const sm = rm.scopeMetrics[s]!;
      for (let i = 0; i < scope.metrics.length; i++) {
        const plan = scope.metrics[i]!;
        buf[pos++] = 0x12;
        putVarint(plan.size);
        putBytes(plan.header);
        writeData(sm.metrics[i]!, plan.dataSize, plan.first);
      }
      putBytes(scope.tail);
    }
    putBytes(schemaUrl);
    if (pos !== buf.length) throw new Error(`otlp protobuf encoder: wrote ${pos} bytes of ${buf.length}`);
    return buf;
  } finally {
    // Not kept alive by the module: the caller owns the request's bytes, the caches the attributes'.
    pairs.fill(NO_BYTES, 0, pairCount);
    buf = NO_BYTES;
    view = NO_VIEW;
  }
}

// ---- the response: ExportMetricsServiceResponse (metrics_service.proto) ----

/** What the OTel exporter's delegate reads from a response (its partial success, if any). */
export interface MetricsResponse {
  partialSuccess?: { rejectedDataPoints?: number; errorMessage?: string };
}

/**
 * Reads the protobuf fields of `data[start, end)`: `field(tag, wire, value, at)` with a varint's
 * value, or a length-delimited field's length and offset; fixed-size fields are skipped.
 */
function readFields(data: Uint8Array, start: number, end: number, field: (tag: number, wire: number, value: number, at: number) => void): void {
  let p = start;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      if (p >= end) throw new Error('otlp metrics response: truncated');
      const b = data[p++]!;
      v += (b & 127) * 2 ** shift;
      if (b < 128) return v;
    }
  };
  while (p < end) {
    const key = varint();
    const wire = key % 8;
    const tag = Math.floor(key / 8);
    if (wire === 0) {
      field(tag, wire, varint(), p);
    } else if (wire === 2) {
      const len = varint();
      if (p + len > end) throw new Error('otlp metrics response: truncated');
      field(tag, wire, len, p);
      p += len;
    } else if (wire === 1 || wire === 5) {
      p += wire === 1 ? 8 : 4;
    } else {
      throw new Error(`otlp metrics response: wire type ${wire}`);
    }
  }
  if (p > end) throw new Error('otlp metrics response: truncated');
}

/**
 * Decodes an ExportMetricsServiceResponse (1: partial_success {1: rejected_data_points int64,
 * 2: error_message string}) as the library's ProtobufMetricsSerializer.deserializeResponse does,
 * so that the metrics path does not load @opentelemetry/otlp-transformer (and through it
 * sdk-metrics and resources: ~1.3 MiB of heap) for these few bytes.
 */
export function decodeMetricsResponse(data: Uint8Array): MetricsResponse {
  const out: MetricsResponse = {};
  readFields(data, 0, data.length, (tag, wire, len, at) => {
    if (tag !== 1 || wire !== 2) return;
    const partial: NonNullable<MetricsResponse['partialSuccess']> = {};
    readFields(data, at, at + len, (t, w, value, a) => {
      if (t === 1 && w === 0) partial.rejectedDataPoints = value;
      else if (t === 2 && w === 2) partial.errorMessage = Buffer.from(data.buffer, data.byteOffset + a, value).toString('utf8');
    });
    out.partialSuccess = partial;
  });
  return out;
}

/** The OTel exporters' self-metrics helper for metrics requests (what otlp-transformer's MetricsExporterMetricsHelper is). */
export const metricsExporterMetricsHelper = {
  name: 'metric_data_point' as const,
  countItems(request: ResourceMetrics): number {
    let count = 0;
    for (const sm of request.scopeMetrics) for (const m of sm.metrics) count += m.dataPoints.length;
    return count;
  },
};
