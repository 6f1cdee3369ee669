/**
 * The public plugin API of taskstats-agent.
 *
 * This is the only module a plugin imports from the agent (built-in plugins under plugins/ included).
 * If a built-in component needs something this module does not offer, the API is incomplete:
 * extend it here rather than reaching into the host.
 *
 * Data model, in one paragraph: a pipeline carries batches of `Sample`s. A sample is one source's
 * measurement (for the taskstats receiver: one process) described by a `SampleSchema` (which metrics
 * its `values` hold, in order). Counter values are the growth since the previous sample of the same
 * source, so any number of samples can be summed by attribute set without counting anything twice.
 * Processors drop, enrich (add `attributes`) or rewrite samples. After the processors, the host's
 * metrics stage sums counters per (metric, attribute set) into cumulative OpenTelemetry sums,
 * keeps the last value of gauges, aggregates histogram observations into OpenTelemetry histograms
 * (exponential or explicit buckets), bounds the number of series, and hands `ResourceMetrics` (the
 * @opentelemetry/sdk-metrics data model) to every exporter of the pipeline.
 *
 * Logs pipelines carry batches of `LogRecord`s (one event each, e.g. one process exit): processors
 * drop or enrich them, the host batches them by size and time and hands each batch, with the
 * agent's resource, to every exporter of the pipeline.
 */
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { AggregationTemporality as SdkAggregationTemporality, DataPointType as SdkDataPointType } from '@opentelemetry/sdk-metrics';
import type { ValueType as SdkValueType } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { DropReason } from './errors.js';

export type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
export type { Resource } from '@opentelemetry/resources';

// The numeric enums of the sdk-metrics data model, with the same values and types, so that code
// reading or building `ResourceMetrics` (the host, the debug exporter) does not load
// @opentelemetry/sdk-metrics and @opentelemetry/api at run time only for four numbers: the agent
// then loads an OpenTelemetry package only when an exporter that needs one is configured.
// test/host/data-model.test.ts checks them against the SDK's own enums.

/** Same values as `AggregationTemporality` of @opentelemetry/sdk-metrics. */
export type AggregationTemporality = SdkAggregationTemporality;
/* eslint-disable @typescript-eslint/no-unsafe-enum-assignment -- the SDK's enum values as literals, so that the SDK is not loaded; test/host/data-model.test.ts checks them */
export const AggregationTemporality = {
  DELTA: 0 as SdkAggregationTemporality.DELTA,
  CUMULATIVE: 1 as SdkAggregationTemporality.CUMULATIVE,
} as const;

/** Same values as `DataPointType` of @opentelemetry/sdk-metrics; `dataPointTypeName(3)` is `SUM`. */
export type DataPointType = SdkDataPointType;
export const DataPointType = {
  HISTOGRAM: 0 as SdkDataPointType.HISTOGRAM,
  EXPONENTIAL_HISTOGRAM: 1 as SdkDataPointType.EXPONENTIAL_HISTOGRAM,
  GAUGE: 2 as SdkDataPointType.GAUGE,
  SUM: 3 as SdkDataPointType.SUM,
} as const;

/** The name of a `DataPointType` value (for messages), or the number when unknown. */
export function dataPointTypeName(type: number): string {
  for (const [name, value] of Object.entries(DataPointType)) if ((value as number) === type) return name;
  return String(type);
}

/** Same values as `ValueType` of @opentelemetry/api (a metric descriptor's value type). */
export type ValueType = SdkValueType;
export const ValueType = {
  INT: 0 as SdkValueType.INT,
  DOUBLE: 1 as SdkValueType.DOUBLE,
} as const;
/* eslint-enable @typescript-eslint/no-unsafe-enum-assignment */

// ---------------------------------------------------------------------------------------------
// Samples: what flows through a pipeline
// ---------------------------------------------------------------------------------------------

export type AttributeValue = string | number | boolean;
/** Attribute names follow OpenTelemetry conventions (`process.executable.name`, `k8s.pod.uid`). */
export type Attributes = Record<string, AttributeValue>;

export type InstrumentKind =
  /** Monotonic sum. A sample's value is the growth since that source's previous sample. */
  | 'counter'
  /** Last value wins (for example peak memory). A sample's value is the current value. */
  | 'gauge'
  /**
   * Distribution. A sample's value is one observation (finite, >= 0), or NaN for none (e.g. the
   * live samples of a source whose observations come with its final sample).
   */
  | 'histogram';

/**
 * How a histogram metric is aggregated. Exponential (base 2, the default): buckets follow the data,
 * at most `maxSize` of them, starting at `maxScale` and lowering the scale as the range grows
 * (defaults 160 and 20, those of the OpenTelemetry SDK). Explicit: fixed, ascending upper-inclusive
 * bucket boundaries, for backends without exponential histograms.
 */
export type HistogramAggregation =
  | { readonly kind: 'exponential'; readonly maxSize?: number; readonly maxScale?: number }
  | { readonly kind: 'explicit'; readonly boundaries: readonly number[] };

export interface MetricDescriptor {
  /** OpenTelemetry metric name, e.g. `process.cpu.time`. Several descriptors may share a name. */
  readonly name: string;
  /** UCUM unit, e.g. `s`, `By`, `{process}`. */
  readonly unit: string;
  readonly description: string;
  readonly instrument: InstrumentKind;
  /** `int` values are exported as integers, `double` as floating point. */
  readonly valueType: 'int' | 'double';
  /**
   * Attributes fixed for this descriptor and added to the sample's attributes on its data point,
   * e.g. `{ 'cpu.mode': 'user' }` so that user and system time share one metric name.
   */
  readonly pointAttributes?: Attributes;
  /** Histograms only: the aggregation (default `{ kind: 'exponential' }`). */
  readonly histogram?: HistogramAggregation;
  /**
   * Names of `Sample.pointAttributes` that apply to this metric only (not to the sample's other
   * metrics), e.g. `['process.exit.code']` for `process.exits`.
   */
  readonly samplePointAttributes?: readonly string[];
}

/** Describes the `values` of the samples that reference it. Create once, share by reference. */
export interface SampleSchema {
  /** Stable id, unique among the schemas of one agent, e.g. `taskstats.process`. */
  readonly id: string;
  readonly metrics: readonly MetricDescriptor[];
}

export interface Sample {
  readonly schema: SampleSchema;
  /**
   * The series identity shared by every metric of this sample. Processors may add, change or
   * delete keys (k8sattributes adds `k8s.pod.uid`; a custom processor may add `team`).
   *
   * Treat the object as immutable: to change it, assign a new object
   * (`s.attributes = { ...s.attributes, team }`). Sources share one attributes object among all
   * samples of a workload, and the metrics stage caches series lookups per object, which is what
   * keeps the hot path free of per-sample hashing. Processors should cache their enriched objects
   * per input object (a WeakMap) for the same reason.
   */
  attributes: Attributes;
  /**
   * Attributes for the metrics named in each descriptor's `samplePointAttributes` only.
   * Optional; most samples have none.
   */
  pointAttributes?: Attributes;
  /**
   * Descriptive attributes that are not part of the series identity (never exported as
   * attributes): what processors may match on without creating series, e.g.
   * `process.command_line`, `process.executable.path`, `process.pid`.
   */
  context?: Attributes;
  /**
   * Aligned with `schema.metrics`: counters carry growth, gauges the current value, histograms one
   * observation (NaN: none).
   */
  values: Float64Array;
  /**
   * True on the last sample of a source (the process ended). The metrics stage uses it to expire
   * series that only this source fed (per-process mode) after the configured time.
   */
  final: boolean;
  /** Time the values were taken, milliseconds since the epoch. */
  timeMs: number;
}

/** A batch is a plain array; processors may return the same array (mutated) or a new one. */
export type SampleBatch = Sample[];

/**
 * Attribute names shared by sources and processors. A source that knows them sets them; the
 * built-in processors read them.
 */
export const ATTR = {
  /** Data-point attribute: the executable's name (taskstats: ac_comm). */
  EXECUTABLE_NAME: 'process.executable.name',
  /** Data-point attribute: the process's cgroup v2 path, e.g. `/kubepods.slice/...`. */
  CGROUP: 'process.linux.cgroup',
  /** The process id: a data-point attribute in per-process mode, else in `context` (not exported). */
  PID: 'process.pid',
  /** Data-point attribute in per-process mode: start time, RFC 3339. */
  START_TIME: 'process.creation.time',
  /** Point attribute of `process.exits`. */
  EXIT_CODE: 'process.exit.code',
  /** Context (not exported): the full command line, when the source reads it. */
  COMMAND_LINE: 'process.command_line',
  /** Context (not exported): the executable's path, when the source reads it. */
  EXECUTABLE_PATH: 'process.executable.path',
} as const;

// ---------------------------------------------------------------------------------------------
// Log records: what flows through a logs pipeline
// ---------------------------------------------------------------------------------------------

/** The signals a pipeline carries and a factory supports. */
export type Signal = 'metrics' | 'logs';
export const SIGNALS: readonly Signal[] = ['metrics', 'logs'];

/** OpenTelemetry severity numbers (the first of each range: INFO is 9..12, WARN 13..16, ...). */
export const SeverityNumber = {
  UNSPECIFIED: 0,
  TRACE: 1,
  DEBUG: 5,
  INFO: 9,
  WARN: 13,
  ERROR: 17,
  FATAL: 21,
} as const;
export type SeverityNumber = number;

/**
 * One event. Cheap to produce: a plain object and its attributes object, nothing else per record
 * (times are numbers, the body a string).
 *
 * A record belongs to one pipeline: processors may change `attributes` in place or replace it
 * (a receiver in several logs pipelines hands each a copy; the host makes it).
 */
export interface LogRecord {
  /** When the event happened, milliseconds since the epoch; fractions are kept (a double resolves 0.25 us at today's dates). */
  timeMs: number;
  /** When the source observed it, milliseconds since the epoch; absent = the same as timeMs. */
  observedTimeMs?: number;
  /** `SeverityNumber` (OpenTelemetry's 1..24; 0 = unspecified). */
  severityNumber: SeverityNumber;
  /** Short text of the severity, e.g. `INFO`; absent = derived from the number by exporters that need one. */
  severityText?: string;
  /** The event's name, e.g. `process.exit` (OpenTelemetry's `EventName`). */
  eventName: string;
  /** A one-line human-readable description. */
  body: string;
  /** Exported attributes (semantic-convention names where they exist). */
  attributes: Attributes;
}

/** The instrumentation scope exporters give the agent's log records. */
export const LOGS_SCOPE: { readonly name: string } = Object.freeze({ name: 'taskstats-agent' });

/** A batch of log records is a plain array; processors may return the same array (mutated) or a new one. */
export type LogBatch = LogRecord[];

/** The name of a severity number's range (`9` -> `INFO`, `14` -> `WARN2`), as OpenTelemetry writes it. */
export function severityText(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 24) return 'UNSPECIFIED';
  const names = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
  const base = names[Math.floor((n - 1) / 4)]!;
  const step = (n - 1) % 4;
  return step === 0 ? base : `${base}${step + 1}`;
}

// ---------------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------------

export type ComponentKind = 'receiver' | 'processor' | 'exporter';

/** Component ids are `type[/name]` as in the OpenTelemetry Collector: `filter`, `filter/shells`. */
export type ComponentId = string;

export interface Component {
  /** Called once, exporters first, receivers last. Throwing fails the agent's start. */
  start(): Promise<void>;
  /** Called once, receivers first, exporters last. Must release every handle (timers, sockets). */
  shutdown(): Promise<void>;
}

/** Where a receiver delivers the samples it produces. Provided by the host. */
export interface Consumer {
  /**
   * Hand a batch to the pipeline(s). Never throws, never blocks: the host contains failures of
   * later components and counts what they dropped. The batch array belongs to the pipeline
   * afterwards (do not reuse it); the samples in it likewise.
   */
  consume(batch: SampleBatch): void;
  /**
   * A collection cycle is complete (the receiver's `collection_interval`). The pipeline exports
   * once every receiver of it that marks cycles has completed one since its last export, or one
   * of them completes a second (the fastest sets the pace): one export per interval however many
   * receivers feed it.
   */
  collectionDone(): void;
}

/** Where a receiver delivers the log records it produces. Provided by the host. */
export interface LogConsumer {
  /**
   * Hand a batch to the logs pipeline(s). Never throws, never blocks; the host counts what later
   * components dropped. The batch array and its records belong to the pipeline afterwards.
   */
  consume(batch: LogBatch): void;
}

// A receiver has no methods beyond start and shutdown: it pushes to its ReceiverContext.
export type Receiver = Component;

/** A processor of samples (metrics pipelines). */
export interface Processor extends Component {
  /**
   * Return the samples that continue (the same array mutated, or a new one). Samples not returned
   * are counted as dropped by the host with reason `filtered`. May return a promise, but a
   * processor that waits on something slow (an API) should not: pass samples with what is known.
   * Throwing drops the whole batch, counted with reason `processor_error`; the pipeline goes on.
   */
  process(batch: SampleBatch): SampleBatch | Promise<SampleBatch>;
}

/** A processor of log records (logs pipelines). A processor of both signals implements both interfaces. */
export interface LogProcessor extends Component {
  /**
   * Return the records that continue (the same array mutated, or a new one); as `process()`:
   * records not returned are counted as dropped (`filtered`), a throw drops the batch
   * (`processor_error`).
   */
  processLogs(batch: LogBatch): LogBatch | Promise<LogBatch>;
}

export interface Exporter extends Component {
  /** Which temporality this exporter wants its sums in. Read once, after create(). */
  readonly temporality: 'cumulative' | 'delta';
  /**
   * Send one collection's metrics. Resolve when sent (or queued by the exporter's own retry
   * queue); reject when it failed for good. The host counts points sent and failed, and one
   * exporter's failure never holds back the others.
   */
  export(metrics: ResourceMetrics): Promise<void>;
  /** Send whatever is queued; called before shutdown. */
  forceFlush(): Promise<void>;
}

/** An exporter of log records (logs pipelines). An exporter of both signals implements both interfaces. */
export interface LogExporter extends Component {
  /**
   * Send one batch of records (batched by the pipeline: `send_batch_size` / `timeout`), all from
   * `resource` (the agent's). Resolve when sent or queued; reject when it failed for good. The
   * host counts records sent and failed. The pipeline's exporters share the batch: read it, do
   * not change it (keeping it, for a queue, is fine).
   */
  exportLogs(batch: LogBatch, resource: Resource): Promise<void>;
  /** Send whatever is queued; called before shutdown. */
  forceFlush(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Self-telemetry and logging, handed to each component
// ---------------------------------------------------------------------------------------------

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Identical messages (same msg and `key`) are rate-limited by the host. */
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * A component's own counters, exported under the agent's scope as
 * `otelcol`-style self-metrics (see docs/metrics.md) and served at /metrics.
 * Accepted, dropped (host-side), sent and failed are counted by the host already;
 * a component reports what only it can see.
 */
export interface ComponentTelemetry {
  /**
   * Count items dropped inside the component, with a `DropReason` (errors.ts) or a snake_case
   * reason of the plugin's own, and e.g. `{ signal: 'logs' }`.
   */
  dropped(count: number, reason: DropReason | (string & NonNullable<unknown>), attributes?: Attributes): void;
  /**
   * A monotonic counter of the component's own, e.g. `exits_lost`. Name in snake_case. Unit: UCUM
   * (`s`, `By`, or an annotation such as `{exit}`; default none); Prometheus names get its suffix.
   */
  counter(name: string, description: string, unit?: string): { add(value: number, attributes?: Attributes): void };
  /** A gauge read at collection time, e.g. a queue's size (unit as for counters; `1` means a ratio). */
  gauge(name: string, description: string, read: () => number, unit?: string, attributes?: Attributes): void;
}

export interface ComponentContext {
  /** The component id as configured, e.g. `filter/shells`. */
  readonly id: ComponentId;
  /**
   * The signals of the pipelines this component is in (set by the host), so that it prepares
   * only what they need; absent (a test's context) = `['metrics']`.
   */
  readonly signals?: readonly Signal[];
  readonly logger: Logger;
  readonly telemetry: ComponentTelemetry;
}

export interface ReceiverContext extends ComponentContext {
  /**
   * Where to send samples: every metrics pipeline this receiver is part of. Absent when it is in
   * none (a receiver of both signals in logs pipelines only): then do no work for metrics.
   */
  readonly metrics?: Consumer;
  /**
   * Where to send log records: every logs pipeline this receiver is part of. Absent when it is in
   * none: then produce no records (that is how a receiver of both signals knows).
   */
  readonly logs?: LogConsumer;
  /**
   * The same as `metrics` for receivers of metrics only (older plugins). For a receiver in no
   * metrics pipeline it discards what it is given, counted as dropped (`no_metrics_pipeline`).
   */
  readonly next: Consumer;
}

// ---------------------------------------------------------------------------------------------
// Factories and configuration
// ---------------------------------------------------------------------------------------------

/**
 * A JSON Schema (draft 2020-12, validated with ajv) describing a component's configuration.
 * The host rejects unknown keys by itself (it sets `additionalProperties: false` on every object
 * schema that does not say otherwise) and reports every error with its config path and line.
 *
 * Two extra keywords, converted by the host before create() sees the config:
 *  - `duration: true` on a string: `10s`, `500ms`, `1m`, `1h30m` -> number of milliseconds.
 *    Optional `minMs` / `maxMs` bounds.
 *  - `size: true` on a string or integer: `8MiB`, `512KiB`, `1GB`, `4096` -> number of bytes.
 *    Optional `minBytes` / `maxBytes` bounds.
 *  - `listenAddress: true` on a string: `host:port`, `[v6]:port` or `:port`, checked by
 *    `parseListenAddress()` (the string is kept: parse it with the same function to listen).
 * Use `durationSchema()`, `sizeSchema()` and `listenAddressSchema()` below instead of writing them
 * by hand. Two annotations improve messages: `unknownKeyHints: { key: 'hint' }` on an object
 * schema is appended to the "unknown key" error of that key, and `typeMessage` replaces "must be
 * a mapping" (or the type's name) for a value of the wrong type.
 */
export type ConfigSchema = Record<string, unknown>;

export type Stability = 'development' | 'alpha' | 'beta' | 'stable';

interface FactoryBase<TConfig> {
  /** The type name used in configuration ids, e.g. `filter`. Lowercase, [a-z0-9_]. */
  readonly type: string;
  readonly kind: ComponentKind;
  /** One line, shown by `taskstats-agent components`. */
  readonly description: string;
  readonly stability: Stability;
  /**
   * The signals this component handles; absent = `['metrics']`. Used in a pipeline of another
   * signal it is a config error naming the pipeline entry. A receiver may produce both.
   */
  readonly signals?: readonly Signal[];
  /** Defaults; the user's config is deep-merged over a fresh copy of it. */
  defaultConfig(): TConfig;
  readonly configSchema: ConfigSchema;
  /**
   * Checks of meaning that a schema cannot express. Return one message per problem; the host
   * prefixes each with the component's config path. Patterns that do not compile belong here.
   */
  validate?(config: TConfig): ConfigProblem[];
}

export interface ConfigProblem {
  /** Path below the component's config, e.g. `include.commands[2]`; empty for the whole. */
  path: string;
  message: string;
}

export interface ReceiverFactory<TConfig = unknown> extends FactoryBase<TConfig> {
  readonly kind: 'receiver';
  create(ctx: ReceiverContext, config: TConfig): Receiver | Promise<Receiver>;
}

/**
 * `TProcessor` is what create() returns: `Processor` (samples), `LogProcessor`, or
 * `Processor & LogProcessor` for a factory whose `signals` are both.
 */
export interface ProcessorFactory<TConfig = unknown, TProcessor extends Component = Processor> extends FactoryBase<TConfig> {
  readonly kind: 'processor';
  create(ctx: ComponentContext, config: TConfig): TProcessor | Promise<TProcessor>;
}

/** `TExporter`: `Exporter` (metrics), `LogExporter`, or `Exporter & LogExporter`. */
export interface ExporterFactory<TConfig = unknown, TExporter extends Component = Exporter> extends FactoryBase<TConfig> {
  readonly kind: 'exporter';
  create(ctx: ComponentContext, config: TConfig): TExporter | Promise<TExporter>;
}

export type ComponentFactory = ReceiverFactory | ProcessorFactory<unknown, Component> | ExporterFactory<unknown, Component>;

/** The signals a factory supports (`['metrics']` when it does not say). */
export function factorySignals(f: { readonly signals?: readonly Signal[] }): readonly Signal[] {
  return f.signals && f.signals.length > 0 ? f.signals : DEFAULT_SIGNALS;
}
const DEFAULT_SIGNALS: readonly Signal[] = ['metrics'];

/**
 * What a plugin module exports: `export default definePlugin({ factories: [...] })`.
 * Named in the config's top-level `plugins:` list by file path (relative to the config file) or
 * package name.
 */
export interface PluginModule {
  readonly factories: readonly ComponentFactory[];
  /**
   * Extra CLI sub-commands this plugin offers (`taskstats-agent <name> ...`), e.g. the taskstats
   * receiver's `pid` and `exits`. Only built-in plugins' commands are reachable from the CLI.
   */
  readonly commands?: readonly CliCommand[];
}

export interface CliCommand {
  readonly name: string;
  /** One line for `taskstats-agent --help`. */
  readonly summary: string;
  /** Full usage text for `taskstats-agent <name> --help`. */
  readonly usage: string;
  /** Runs the command; resolves to the process exit code. argv excludes the command name. */
  run(argv: string[]): Promise<number>;
}

/** Identity helper that gives plugin authors type checking. */
export function definePlugin(plugin: PluginModule): PluginModule {
  return plugin;
}

export function defineReceiver<T>(f: ReceiverFactory<T>): ReceiverFactory<T> {
  return f;
}
export function defineProcessor<T, P extends Component = Processor>(f: ProcessorFactory<T, P>): ProcessorFactory<T, P> {
  return f;
}
export function defineExporter<T, E extends Component = Exporter>(f: ExporterFactory<T, E>): ExporterFactory<T, E> {
  return f;
}

/** Schema for a duration option; the component receives milliseconds. */
export function durationSchema(opts: { minMs?: number; maxMs?: number; description?: string } = {}): ConfigSchema {
  return { type: 'string', duration: true, ...opts };
}

/** Schema for a size option; the component receives bytes. */
export function sizeSchema(opts: { minBytes?: number; maxBytes?: number; description?: string } = {}): ConfigSchema {
  return { type: ['string', 'integer'], size: true, ...opts };
}

/** Schema for a listen address (`host:port`, `[v6]:port`, `:port` for all interfaces). */
export function listenAddressSchema(opts: { description?: string } = {}): ConfigSchema {
  return { type: 'string', listenAddress: true, ...opts };
}

/** Split `host:port`, `[v6]:port` or `:port` (host `0.0.0.0`); undefined when malformed or the port is above 65535. */
export function parseListenAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(address.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port };
}

/** Parse `10s`, `500ms`, `1m`, `1h30m`, `2.5s` into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const s = text.trim();
  if (s === '') return undefined;
  if (s === '0') return 0;
  let total = 0;
  re.lastIndex = 0;
  while (re.lastIndex < s.length) {
    const start = re.lastIndex;
    const m = re.exec(s);
    if (!m || m.index !== start) return undefined;
    total += Number(m[1]) * unitMs[m[2]!]!;
  }
  return total;
}

/** Parse `8MiB`, `512KiB`, `1GB`, `4096` (bytes) into a byte count; undefined when malformed. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text >= 0 ? text : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|k|K|M|G)?\s*$/.exec(text);
  if (!m) return undefined;
  const mult: Record<string, number> = {
    B: 1,
    KiB: 1024,
    MiB: 1024 ** 2,
    GiB: 1024 ** 3,
    TiB: 1024 ** 4,
    KB: 1000,
    MB: 1000 ** 2,
    GB: 1000 ** 3,
    TB: 1000 ** 4,
    k: 1024,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
  };
  return Math.floor(Number(m[1]) * mult[m[2] ?? 'B']!);
}

/** Split a component id `type[/name]`. */
export function parseComponentId(id: string): { type: string; name?: string } {
  const slash = id.indexOf('/');
  return slash < 0 ? { type: id } : { type: id.slice(0, slash), name: id.slice(slash + 1) };
}

export * from './errors.js';
export * from './prometheus-names.js';
export * from './exporter-helper.js';
