/**
 * The `otlp` exporter: metrics and logs over OTLP, as two thin adapters, one per signal, each an
 * OpenTelemetry JS OTLP exporter (exporter-{metrics,logs}-otlp-{proto,http,grpc}: encoding and
 * transport; metrics in protobuf, http or grpc, with our encoder, protobuf-metrics.ts) under the
 * API's exporter helper (queue, retries with backoff and Retry-After, flush deadline, counts).
 *
 * Within one attempt the OTel HTTP exporters already retry a retryable answer a few times as long
 * as the export's `timeout` allows; the helper re-sends what they give up on, for as long as
 * `retry_on_failure` says, also for gRPC (whose OTel exporter does not retry at all). Every
 * request is counted by outcome, observed on our own HTTP agent through Node's
 * diagnostics_channel (so the retries inside the OTel exporter are counted too). Header values
 * are never logged.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { createRequire } from 'node:module';
import { AgentError, createExporterHelper, DEFAULT_BATCH_MAX_SIZE, DropReason, ErrorCode, LOGS_SCOPE, severityText } from '../../src/api/index.js';
import type { ComponentContext, Exporter, ExporterHelper, LogBatch, LogExporter, Resource, ResourceMetrics, SendResult, Signal } from '../../src/api/index.js';
import type { OtlpExporterConfig, ResolvedOtlpSettings } from './config.js';
import { resolveOtlpSettings } from './config.js';
import { continuesBatch, decodeMetricsResponse, encodeMetricsRequest, metricsExporterMetricsHelper } from './protobuf-metrics.js';

// Built-ins through getBuiltinModule and the OpenTelemetry packages through require (their
// CommonJS builds), not `import`: an ES module import of node:http (ours, or the packages' ESM
// builds) reads all its exports, and the lazy ones load undici, http2 and zlib (~15 MiB RSS on
// Node 26; docs/deploy.md "Memory").
// node:https (and TLS) only for an https endpoint.
const { Agent: HttpAgent } = process.getBuiltinModule('node:http');
const requirePackage = createRequire(import.meta.url);

/** What the OTel exporters offer (export with a callback). */
interface InnerExporter<T> {
  export(items: T, resultCallback: (result: { code: number; error?: Error }) => void): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The sdk-logs ReadableLogRecord fields the OTLP logs serializers read. */
interface ReadableLogRecordShape {
  hrTime: [number, number];
  hrTimeObserved: [number, number];
  severityNumber: number;
  severityText: string;
  body: string;
  eventName: string;
  resource: Resource;
  instrumentationScope: { name: string; version?: string };
  attributes: Record<string, string | number | boolean>;
  droppedAttributesCount: number;
}

/** Counts kept by one signal's sender; also readable by tests. */
export interface OtlpExporterStats {
  /** Requests (HTTP requests, or gRPC calls) by outcome: success | retryable | failed. */
  requests: Record<'success' | 'retryable' | 'failed', number>;
  /** HTTP status codes (or gRPC outcomes) seen, counted. */
  statusCodes: Record<string, number>;
  batchesSent: number;
  /** Re-sends of a batch by the helper (after the OTel exporter gave up on an attempt). */
  batchRetries: number;
  /** Items (data points or log records) dropped, by reason. */
  droppedPoints: Record<string, number>;
  droppedBatches: Record<string, number>;
}

const RETRYABLE_HTTP = new Set([429, 502, 503, 504]);
/** gRPC codes the OTLP specification calls retryable. */
const RETRYABLE_GRPC = new Set([1, 4, 8, 10, 11, 14, 15]);
/** How long shutdown waits for the OTel exporter after aborting in-flight requests. */
const SHUTDOWN_GRACE_MS = 500;

export function countDataPoints(metrics: ResourceMetrics): number {
  let n = 0;
  for (const scope of metrics.scopeMetrics) for (const m of scope.metrics) n += m.dataPoints.length;
  return n;
}

/**
 * `metrics` as requests of at most `maxPoints` data points each, in order: the same resource and
 * scopes, a metric's points cut where a request is full (the metric then appears in two requests,
 * as OTLP allows). Points and descriptors are shared, not copied.
 */
export function splitResourceMetrics(metrics: ResourceMetrics, maxPoints: number): ResourceMetrics[] {
  const out: ResourceMetrics[] = [];
  let current: ResourceMetrics['scopeMetrics'] = [];
  let room = maxPoints;
  // Every request after the first continues the batch (the encoder's pair cache counts one batch).
  const close = (): void => {
    const request = { resource: metrics.resource, scopeMetrics: current };
    out.push(out.length === 0 ? request : continuesBatch(request));
    current = [];
    room = maxPoints;
  };
  for (const sm of metrics.scopeMetrics) {
    let scope: ResourceMetrics['scopeMetrics'][number] | undefined;
    for (const m of sm.metrics) {
      for (let from = 0; from < m.dataPoints.length;) {
        if (room === 0) {
          close();
          scope = undefined;
        }
        const to = Math.min(m.dataPoints.length, from + room);
        if (scope === undefined) {
          scope = { scope: sm.scope, metrics: [] };
          current.push(scope);
        }
        scope.metrics.push(from === 0 && to === m.dataPoints.length ? m : ({ ...m, dataPoints: m.dataPoints.slice(from, to) } as typeof m));
        room -= to - from;
        from = to;
      }
    }
  }
  if (current.length > 0) close();
  return out;
}

function splitArray<T>(batch: T[], max: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < batch.length; i += max) out.push(batch.slice(i, i + max));
  return out;
}

/** The URL without credentials, query or fragment: what is safe to log. */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}

function parseRetryAfterMs(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[0]! : value;
  const seconds = Number.parseInt(text, 10);
  if (Number.isInteger(seconds)) return seconds > 0 ? seconds * 1000 : 0;
  const at = new Date(text).getTime();
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function describeError(error: unknown): { reason: string; retryable: boolean } {
  if (error == null) return { reason: 'unknown error', retryable: true };
  const e = error as { name?: string; code?: unknown; message?: string; details?: string };
  const message = (typeof e.message === 'string' ? e.message : JSON.stringify(error)).slice(0, 200);
  if (e.name === 'OTLPExporterError' && typeof e.code === 'number') {
    // An HTTP answer the OTel exporter does not retry (4xx but 429): the batch will never be accepted.
    return { reason: `HTTP ${e.code} ${message}`.trim(), retryable: RETRYABLE_HTTP.has(e.code) };
  }
  if (typeof e.code === 'number' && typeof e.details === 'string') {
    return { reason: `gRPC status ${e.code}: ${e.details.slice(0, 200)}`, retryable: RETRYABLE_GRPC.has(e.code) };
  }
  if (typeof e.code === 'string') {
    // A certificate the backend's chain does not satisfy will not be accepted on a retry either.
    const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME_MISMATCH|ALTNAME/.test(e.code);
    return { reason: `${e.code} ${message}`, retryable: !tls };
  }
  // "Export failed with retryable status", "Request timed out", and anything unexpected:
  // retrying is bounded by max_elapsed_time, so err on the side of delivering.
  return { reason: message, retryable: true };
}

function toHrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/**
 * The OTel OTLP metric exporter of `protocol` (its transport: HTTP or gRPC, compression, its own
 * retries) writing requests with our protobuf encoder (protobuf-metrics.ts) instead of the
 * library's serializer, as the packages' own OTLPMetricExporter classes assemble it.
 */
function protobufMetricExporter(protocol: 'http/protobuf' | 'grpc', config: object): InnerExporter<ResourceMetrics> {
  // OTLPExporterBase, not exporter-metrics-otlp-http's OTLPMetricExporterBase: what the latter
  // adds (aggregation and temporality selectors) serves sdk-metrics' readers, and it loads
  // sdk-metrics; the pipeline chose temporality already.
  const { OTLPExporterBase } = requirePackage('@opentelemetry/otlp-exporter-base') as typeof import('@opentelemetry/otlp-exporter-base');
  const serializer = { serializeRequest: encodeMetricsRequest, deserializeResponse: decodeMetricsResponse };
  // The packages' own exporters assemble their options with convertLegacy*Options too: 0.301 has
  // no other public way from exporter options to a delegate's configuration.
  /* eslint-disable @typescript-eslint/no-deprecated */
  if (protocol === 'grpc') {
    const grpc = requirePackage('@opentelemetry/otlp-grpc-exporter-base') as typeof import('@opentelemetry/otlp-grpc-exporter-base');
    const delegate = grpc.createOtlpGrpcExportDelegate(
      grpc.convertLegacyOtlpGrpcOptions(config, 'METRICS'),
      serializer,
      'otlp_grpc_metric_exporter',
      metricsExporterMetricsHelper,
      undefined,
      'MetricsExportService',
      '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
    );
    return new OTLPExporterBase(delegate);
  }
  const http = requirePackage('@opentelemetry/otlp-exporter-base/node-http') as typeof import('@opentelemetry/otlp-exporter-base/node-http');
  const delegate = http.createOtlpHttpExportDelegate(
    http.convertLegacyHttpOptions(config, 'METRICS', 'v1/metrics', { 'Content-Type': 'application/x-protobuf' }),
    serializer,
    'otlp_http_metric_exporter',
    metricsExporterMetricsHelper,
    undefined,
  );
  /* eslint-enable @typescript-eslint/no-deprecated */
  return new OTLPExporterBase(delegate);
}

/**
 * One signal's transport: the OTel exporter of that signal and protocol, our HTTP agent, and the
 * request counts. `send` is one attempt, classified for the helper.
 */
class SignalSender<T> {
  readonly requests: OtlpExporterStats['requests'] = { success: 0, retryable: 0, failed: 0 };
  readonly statusCodes: Record<string, number> = {};
  private inner: InnerExporter<T> | undefined;
  private agent: http.Agent | undefined;
  /** Retry-After of the last HTTP answer on our agent, in ms (consumed by send). */
  private lastRetryAfterMs: number | undefined;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    readonly settings: ResolvedOtlpSettings,
    private readonly requestCounter: { add(value: number, attributes?: Record<string, string>): void },
  ) {}

  get ready(): boolean {
    return this.inner !== undefined;
  }

  /** The TLS files' contents; a file that cannot be read fails start() naming its key. */
  private readTlsFiles(): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
    const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
    for (const which of ['ca', 'cert', 'key'] as const) {
      const entry = this.settings.tls[which];
      if (!entry) continue;
      try {
        out[which] = readFileSync(entry.file);
      } catch (error) {
        throw new AgentError(
          ErrorCode.BAD_CONFIG,
          `otlp exporter: ${entry.from}: cannot read "${entry.file}": ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
          {
            cause: error,
          },
        );
      }
    }
    return out;
  }

  start(): void {
    const s = this.settings;
    const tlsFiles = this.readTlsFiles();
    const common = { url: s.url, timeoutMillis: s.timeoutMs, compression: s.compression as never };
    const logs = s.signal === 'logs';
    if (s.protocol === 'grpc') {
      const grpc = requirePackage('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(s.headers)) metadata.set(k, v);
      const credentials = s.url!.startsWith('https:')
        ? grpc.credentials.createSsl(
            tlsFiles.ca ?? null,
            tlsFiles.key ?? null,
            tlsFiles.cert ?? null,
            s.tls.insecureSkipVerify ? { rejectUnauthorized: false } : undefined,
          )
        : grpc.credentials.createInsecure();
      const config = { ...common, metadata, credentials };
      this.inner = (logs
        ? new (requirePackage('@opentelemetry/exporter-logs-otlp-grpc') as typeof import('@opentelemetry/exporter-logs-otlp-grpc')).OTLPLogExporter(config)
        : protobufMetricExporter('grpc', config)) as unknown as InnerExporter<T>;
      return;
    }
    // Our own agent, so that the requests the OTel exporter makes (its retries included) can be
    // told apart from other HTTP traffic of the process and counted.
    const httpAgentOptions = (protocol: string): Promise<http.Agent> => {
      this.agent =
        protocol === 'https:'
          ? new (process.getBuiltinModule('node:https').Agent)({
              keepAlive: true,
              ...tlsFiles,
              ...(s.tls.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
            })
          : new HttpAgent({ keepAlive: true });
      return Promise.resolve(this.agent);
    };
    this.observeRequests();
    const config = { ...common, headers: { ...s.headers }, httpAgentOptions };
    const json = s.protocol === 'http/json';
    if (!logs && !json) {
      this.inner = protobufMetricExporter('http/protobuf', config) as unknown as InnerExporter<T>;
      return;
    }
    const Inner = logs
      ? json
        ? (requirePackage('@opentelemetry/exporter-logs-otlp-http') as typeof import('@opentelemetry/exporter-logs-otlp-http')).OTLPLogExporter
        : (requirePackage('@opentelemetry/exporter-logs-otlp-proto') as typeof import('@opentelemetry/exporter-logs-otlp-proto')).OTLPLogExporter
      : (requirePackage('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter;
    this.inner = new Inner(config) as unknown as InnerExporter<T>;
  }

  private observeRequests(): void {
    const onResponse = (message: unknown) => {
      const { request, response } = message as { request: http.ClientRequest; response: http.IncomingMessage };
      if (!this.agent || (request as unknown as { agent?: unknown }).agent !== this.agent) return;
      const status = response.statusCode ?? 0;
      const outcome = status >= 200 && status < 300 ? 'success' : RETRYABLE_HTTP.has(status) ? 'retryable' : 'failed';
      this.countRequest(outcome, String(status));
      if (outcome === 'retryable') this.lastRetryAfterMs = parseRetryAfterMs(response.headers['retry-after']);
    };
    const onError = (message: unknown) => {
      const { request, error } = message as { request: http.ClientRequest; error: Error & { code?: string } };
      if (!this.agent || (request as unknown as { agent?: unknown }).agent !== this.agent) return;
      this.countRequest('retryable', error.code ?? 'error');
    };
    diagnosticsChannel.subscribe('http.client.response.finish', onResponse);
    diagnosticsChannel.subscribe('http.client.request.error', onError);
    this.unsubscribe.push(
      () => diagnosticsChannel.unsubscribe('http.client.response.finish', onResponse),
      () => diagnosticsChannel.unsubscribe('http.client.request.error', onError),
    );
  }

  private countRequest(outcome: 'success' | 'retryable' | 'failed', status: string): void {
    this.requests[outcome]++;
    this.statusCodes[status] = (this.statusCodes[status] ?? 0) + 1;
    this.requestCounter.add(1, { outcome, status, signal: this.settings.signal });
  }

  send(items: T): Promise<SendResult> {
    const inner = this.inner!;
    this.lastRetryAfterMs = undefined;
    const grpc = this.settings.protocol === 'grpc';
    return new Promise<SendResult>((resolve) => {
      try {
        inner.export(items, (result) => {
          if (result.code === 0) {
            if (grpc) this.countRequest('success', 'OK');
            resolve({ ok: true });
            return;
          }
          const { reason, retryable } = describeError(result.error);
          const code = (result.error as { code?: unknown } | undefined)?.code;
          if (grpc) this.countRequest(retryable ? 'retryable' : 'failed', typeof code === 'number' || typeof code === 'string' ? String(code) : 'error');
          resolve({ ok: false, retryable, reason, ...(this.lastRetryAfterMs !== undefined ? { retryAfterMs: this.lastRetryAfterMs } : {}) });
        });
      } catch (error) {
        resolve({ ok: false, retryable: false, reason: describeError(error).reason });
      }
    });
  }

  /** Aborts what is in flight (its batch had its chance in the flush), then lets the OTel exporter settle, briefly. */
  async shutdown(): Promise<void> {
    this.agent?.destroy();
    if (this.inner) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.inner.shutdown().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
      clearTimeout(timer);
    }
    for (const u of this.unsubscribe.splice(0)) u();
  }
}

/** A signal's sender and its helper; absent until the signal is used when no endpoint is known. */
interface SignalPath<T> {
  sender: SignalSender<T>;
  helper: ExporterHelper<T>;
}

export class OtlpExporter implements Exporter, LogExporter {
  readonly temporality: 'cumulative' | 'delta';
  /** Settings of the metrics signal (the logs signal's are `logsSettings`). */
  readonly settings: ResolvedOtlpSettings;
  readonly logsSettings: ResolvedOtlpSettings;
  private metricsPath: SignalPath<ResourceMetrics> | undefined;
  private logsPath: SignalPath<ReadableLogRecordShape[]> | undefined;
  private readonly requestCounter;
  private closed = false;
  /** no_endpoint drops of a signal without a URL (counted, said once at start). */
  private readonly idleDrops: Record<Signal, { points: number; batches: number }> = { metrics: { points: 0, batches: 0 }, logs: { points: 0, batches: 0 } };

  constructor(
    private readonly ctx: ComponentContext,
    config: OtlpExporterConfig,
    env: Record<string, string | undefined> = process.env,
  ) {
    this.settings = resolveOtlpSettings(config, env, 'metrics');
    this.logsSettings = resolveOtlpSettings(config, env, 'logs');
    this.temporality = this.settings.temporality;
    this.requestCounter = ctx.telemetry.counter('requests', 'OTLP requests (HTTP requests or gRPC calls) by outcome', '{request}');
  }

  get endpoint(): string | undefined {
    return this.settings.url;
  }

  /** The metrics signal's counts (`logStats` for logs). */
  get stats(): OtlpExporterStats {
    return this.statsOf(this.metricsPath, 'metrics');
  }

  get logStats(): OtlpExporterStats {
    return this.statsOf(this.logsPath, 'logs');
  }

  private statsOf(path: SignalPath<unknown> | undefined, signal: Signal): OtlpExporterStats {
    const idle = this.idleDrops[signal];
    const h = path?.helper.stats;
    const droppedPoints: Record<string, number> = { ...h?.droppedItems };
    const droppedBatches: Record<string, number> = { ...h?.droppedBatches };
    if (idle.batches > 0) {
      droppedPoints.no_endpoint = idle.points;
      droppedBatches.no_endpoint = idle.batches;
    }
    return {
      requests: path ? { ...path.sender.requests } : { success: 0, retryable: 0, failed: 0 },
      statusCodes: path ? { ...path.sender.statusCodes } : {},
      batchesSent: h?.sentBatches ?? 0,
      batchRetries: h?.retries ?? 0,
      droppedPoints,
      droppedBatches,
    };
  }

  start(): Promise<void> {
    // The packages load synchronously (require), so starting is synchronous; a failure (a TLS
    // file that cannot be read) still comes as a rejection.
    try {
      this.startSignals();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private startSignals(): void {
    // The signals of the pipelines this exporter is in (a logs-only config loads no metrics exporter package).
    const signals = this.ctx.signals ?? ['metrics'];
    for (const signal of signals) {
      const s = signal === 'metrics' ? this.settings : this.logsSettings;
      if (!s.url) {
        this.ctx.logger.info(
          `otlp exporter idle for ${signal}: no endpoint (set OTEL_EXPORTER_OTLP_ENDPOINT, or endpoint / ${signal}_endpoint in the config); its ${signal === 'metrics' ? 'data points' : 'log records'} are counted as dropped with reason no_endpoint`,
        );
        continue;
      }
      if (signal === 'metrics') this.metricsPath = this.createPath(s, countDataPoints, splitResourceMetrics);
      else this.logsPath = this.createPath(s, (batch: ReadableLogRecordShape[]) => batch.length, splitArray);
      this.ctx.logger.info('otlp exporter ready', {
        signal,
        endpoint: redactUrl(s.url),
        protocol: s.protocol,
        compression: s.compression,
        batch_max_size: s.queue.batchMaxSize ?? DEFAULT_BATCH_MAX_SIZE,
        ...(signal === 'metrics' ? { temporality: s.temporality } : {}),
        headers: Object.keys(s.headers), // names only: values are secrets
      });
    }
  }

  private createPath<T>(s: ResolvedOtlpSettings, count: (batch: T) => number, split: (batch: T, max: number) => T[]): SignalPath<T> {
    const sender = new SignalSender<T>(s, this.requestCounter);
    sender.start();
    const helper = createExporterHelper<T>(this.ctx, {
      signal: s.signal,
      settings: { timeoutMs: s.timeoutMs, queue: s.queue, retry: s.retry },
      count,
      split,
      send: (batch) => sender.send(batch),
      destination: redactUrl(s.url),
    });
    return { sender, helper };
  }

  private dropIdle(signal: Signal, items: number): void {
    const idle = this.idleDrops[signal];
    idle.points += items;
    idle.batches++;
    this.ctx.telemetry.dropped(items, DropReason.NO_ENDPOINT, { signal });
  }

  async export(metrics: ResourceMetrics): Promise<void> {
    if (this.closed) throw new Error('otlp exporter is shut down');
    if (!this.metricsPath) {
      this.dropIdle('metrics', countDataPoints(metrics));
      return;
    }
    return this.metricsPath.helper.export(metrics);
  }

  async exportLogs(batch: LogBatch, resource: Resource): Promise<void> {
    if (this.closed) throw new Error('otlp exporter is shut down');
    if (!this.logsPath) {
      this.dropIdle('logs', batch.length);
      return;
    }
    return this.logsPath.helper.export(toReadableLogRecords(batch, resource));
  }

  async forceFlush(): Promise<void> {
    await Promise.all([this.metricsPath?.helper.forceFlush(), this.logsPath?.helper.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [this.metricsPath, this.logsPath].map(async (path) => {
        if (!path) return;
        await path.helper.shutdown();
        await path.sender.shutdown();
      }),
    );
  }
}

/**
 * Our records in the shape the OTLP logs serializers read (sdk-logs' ReadableLogRecord): one
 * object and two time pairs per record, made when the batch is queued.
 */
export function toReadableLogRecords(batch: LogBatch, resource: Resource): ReadableLogRecordShape[] {
  const out = new Array<ReadableLogRecordShape>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!;
    const time = toHrTime(r.timeMs);
    out[i] = {
      hrTime: time,
      hrTimeObserved: r.observedTimeMs === undefined ? time : toHrTime(r.observedTimeMs),
      severityNumber: r.severityNumber,
      severityText: r.severityText ?? severityText(r.severityNumber),
      body: r.body,
      eventName: r.eventName,
      resource,
      instrumentationScope: LOGS_SCOPE,
      attributes: r.attributes,
      droppedAttributesCount: 0,
    };
  }
  return out;
}
