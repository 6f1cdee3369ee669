/**
 * The `otlp` exporter: a thin adapter over the OpenTelemetry JS OTLP metric exporters
 * (@opentelemetry/exporter-metrics-otlp-proto, -http for JSON, -grpc), which do all encoding
 * and transport.
 *
 * What the OTel exporters already do, and we reuse: within one export, the HTTP ones retry a
 * retryable answer (429, 502, 503, 504, connection refused/reset, timeout) up to 5 times with
 * exponential backoff (1 s x 1.5, at most 5 s, +-20% jitter), honouring Retry-After, as long as
 * the export's `timeout` allows. What they do not do, and this adapter adds:
 *  - a bounded sending queue, so a slow or absent backend never holds the pipeline back, whose
 *    drops are counted (`queue_full`);
 *  - re-sending a batch whose export failed for a retryable reason, with the configured
 *    exponential backoff (retry_on_failure) until max_elapsed_time, also for gRPC (whose OTel
 *    exporter does not retry at all);
 *  - counting every request by outcome (observed on our own HTTP agent through Node's
 *    diagnostics_channel, so the retries inside the OTel exporter are counted too) and logging
 *    failures rate-limited. Header values are never logged.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { ComponentContext, Exporter, ResourceMetrics } from '../../src/api/index.js';
import type { ResolvedOtlpSettings } from './config.js';

/** What the OTel PushMetricExporter offers (export with a callback). */
interface InnerExporter {
  export(metrics: ResourceMetrics, resultCallback: (result: { code: number; error?: Error }) => void): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

interface QueuedBatch {
  metrics: ResourceMetrics;
  points: number;
}

interface SendResult {
  ok: boolean;
  retryable: boolean;
  /** Short description of the failure for logs (no header values). */
  reason?: string;
  /** From the last HTTP answer's Retry-After, when it asked for more than the OTel exporter waited. */
  retryAfterMs?: number;
}

/** Counts kept by the exporter itself; also readable by tests and `debug`-style tools. */
export interface OtlpExporterStats {
  /** Requests (HTTP requests, or gRPC calls) by outcome: success | retryable | failed. */
  requests: Record<'success' | 'retryable' | 'failed', number>;
  /** HTTP status codes seen, counted. */
  statusCodes: Record<string, number>;
  batchesSent: number;
  /** Re-sends of a batch by this adapter (after the OTel exporter gave up on an export). */
  batchRetries: number;
  /** Data points dropped, by reason. */
  droppedPoints: Record<string, number>;
  droppedBatches: Record<string, number>;
}

const RETRYABLE_HTTP = new Set([429, 502, 503, 504]);
/** gRPC codes the OTLP specification calls retryable. */
const RETRYABLE_GRPC = new Set([1, 4, 8, 10, 11, 14, 15]);
const BACKOFF_MULTIPLIER = 1.5;
/** Longest forceFlush (before shutdown): the agent promises to stop within a few seconds. */
const FLUSH_BUDGET_MS = 3000;
/** How long shutdown waits for the OTel exporter after aborting in-flight requests. */
const SHUTDOWN_GRACE_MS = 500;
const BACKOFF_JITTER = 0.2;

export function countDataPoints(metrics: ResourceMetrics): number {
  let n = 0;
  for (const scope of metrics.scopeMetrics) for (const m of scope.metrics) n += m.dataPoints.length;
  return n;
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
  const text: unknown = e.message ?? error;
  const message = String(text).slice(0, 200);
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

export class OtlpExporter implements Exporter {
  readonly temporality: 'cumulative' | 'delta';
  readonly stats: OtlpExporterStats = {
    requests: { success: 0, retryable: 0, failed: 0 },
    statusCodes: {},
    batchesSent: 0,
    batchRetries: 0,
    droppedPoints: {},
    droppedBatches: {},
  };

  private inner: InnerExporter | undefined;
  private agent: http.Agent | undefined;
  private readonly queue: QueuedBatch[] = [];
  private pumping: Promise<void> | undefined;
  private closed = false;
  /** While flushing (before shutdown) the current backoff wait is cut short and later ones must fit before this deadline. */
  private flushDeadline = 0;
  private cancelWait: (() => void) | undefined;
  private failingSince = 0;
  /** Retry-After of the last HTTP answer on our agent, in ms (consumed by sendOnce). */
  private lastRetryAfterMs: number | undefined;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly requestCounter;
  private readonly retryCounter;

  constructor(
    private readonly ctx: ComponentContext,
    readonly settings: ResolvedOtlpSettings,
  ) {
    this.temporality = settings.temporality;
    this.requestCounter = ctx.telemetry.counter('requests', 'OTLP requests (HTTP requests or gRPC calls) by outcome', '{request}');
    this.retryCounter = ctx.telemetry.counter('batch_retries', 'Batches re-sent after an export failed for a retryable reason', '{batch}');
    ctx.telemetry.gauge('queue_size', 'Batches waiting in the sending queue', () => this.queue.length, '{batch}');
    ctx.telemetry.gauge('queue_capacity', 'Capacity of the sending queue', () => settings.queue.queueSize, '{batch}');
  }

  get endpoint(): string | undefined {
    return this.settings.url;
  }

  async start(): Promise<void> {
    const s = this.settings;
    if (!s.url) {
      this.ctx.logger.info(
        'otlp exporter idle: no endpoint (set OTEL_EXPORTER_OTLP_ENDPOINT, or endpoint / metrics_endpoint in the config); its data points are counted as dropped with reason no_endpoint',
      );
      return;
    }
    this.inner = await this.createInner();
    this.ctx.logger.info('otlp exporter ready', {
      endpoint: redactUrl(s.url),
      protocol: s.protocol,
      compression: s.compression,
      temporality: s.temporality,
      headers: Object.keys(s.headers), // names only: values are secrets
    });
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
        throw new Error(`otlp exporter: ${entry.from}: cannot read "${entry.file}": ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
          cause: error,
        });
      }
    }
    return out;
  }

  private async createInner(): Promise<InnerExporter> {
    const s = this.settings;
    const tlsFiles = this.readTlsFiles();
    const common = {
      url: s.url,
      timeoutMillis: s.timeoutMs,
      compression: s.compression as never,
    };
    if (s.protocol === 'grpc') {
      const grpc = await import('@grpc/grpc-js');
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(s.headers)) metadata.set(k, v);
      const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-grpc');
      const credentials = s.url!.startsWith('https:')
        ? grpc.credentials.createSsl(
            tlsFiles.ca ?? null,
            tlsFiles.key ?? null,
            tlsFiles.cert ?? null,
            s.tls.insecureSkipVerify ? { rejectUnauthorized: false } : undefined,
          )
        : grpc.credentials.createInsecure();
      return new OTLPMetricExporter({ ...common, metadata, credentials });
    }
    // Our own agent, so that the requests the OTel exporter makes (its retries included) can be
    // told apart from other HTTP traffic of the process and counted.
    const httpAgentOptions = (protocol: string): Promise<http.Agent> => {
      this.agent =
        protocol === 'https:'
          ? new https.Agent({
              keepAlive: true,
              ...tlsFiles,
              ...(s.tls.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
            })
          : new http.Agent({ keepAlive: true });
      return Promise.resolve(this.agent);
    };
    this.observeRequests();
    const config = { ...common, headers: { ...s.headers }, httpAgentOptions };
    if (s.protocol === 'http/json') {
      const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http');
      return new OTLPMetricExporter(config);
    }
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-proto');
    return new OTLPMetricExporter(config);
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
    this.stats.requests[outcome]++;
    this.stats.statusCodes[status] = (this.stats.statusCodes[status] ?? 0) + 1;
    this.requestCounter.add(1, { outcome, status });
  }

  private drop(batch: QueuedBatch, reason: string): void {
    this.stats.droppedPoints[reason] = (this.stats.droppedPoints[reason] ?? 0) + batch.points;
    this.stats.droppedBatches[reason] = (this.stats.droppedBatches[reason] ?? 0) + 1;
    this.ctx.telemetry.dropped(batch.points, reason);
  }

  async export(metrics: ResourceMetrics): Promise<void> {
    if (this.closed) throw new Error('otlp exporter is shut down');
    const batch: QueuedBatch = { metrics, points: countDataPoints(metrics) };
    if (!this.inner) {
      this.drop(batch, 'no_endpoint');
      return;
    }
    if (!this.settings.queue.enabled) {
      if (!(await this.deliver(batch))) throw new Error(`otlp export to ${redactUrl(this.settings.url)} failed`);
      return;
    }
    if (this.queue.length >= this.settings.queue.queueSize) {
      // Drop the oldest waiting batch: with cumulative sums the newest carries every total, so
      // keeping it loses the least.
      const oldest = this.queue.shift()!;
      this.drop(oldest, 'queue_full');
      this.ctx.logger.warn('otlp sending queue full: dropped the oldest batch', {
        key: 'queue_full',
        queue_size: this.settings.queue.queueSize,
        endpoint: redactUrl(this.settings.url),
      });
    }
    this.queue.push(batch);
    void this.pump(); // deliver() never throws
  }

  /** Sends queued batches one at a time, oldest first. */
  private pump(): Promise<void> {
    if (!this.pumping) {
      this.pumping = (async () => {
        try {
          let batch: QueuedBatch | undefined;
          while ((batch = this.queue.shift())) await this.deliver(batch);
        } finally {
          this.pumping = undefined;
        }
      })();
    }
    return this.pumping;
  }

  /** One batch until sent, given up (counted) or out of time. Never throws. */
  private async deliver(batch: QueuedBatch): Promise<boolean> {
    const r = this.settings.retry;
    const firstAttemptAt = Date.now();
    let backoffMs = r.initialIntervalMs;
    for (;;) {
      const result = await this.sendOnce(batch.metrics);
      if (result.ok) {
        this.stats.batchesSent++;
        if (this.failingSince) {
          this.ctx.logger.info('otlp backend reachable again', {
            endpoint: redactUrl(this.settings.url),
            failing_for_ms: Date.now() - this.failingSince,
          });
          this.failingSince = 0;
        }
        return true;
      }
      if (!this.failingSince) this.failingSince = Date.now();
      const jittered = backoffMs * (1 + (Math.random() * 2 - 1) * BACKOFF_JITTER);
      const waitMs = Math.max(jittered, result.retryAfterMs ?? 0);
      const outOfTime = Date.now() + waitMs - firstAttemptAt > r.maxElapsedTimeMs;
      // While flushing, a retry must fit before the flush deadline.
      const pastFlush = this.flushDeadline !== 0 && Date.now() + waitMs > this.flushDeadline;
      if (!result.retryable || !r.enabled || outOfTime || pastFlush || this.closed) {
        if (this.flushDeadline !== 0 || this.closed) {
          // Flushing against a backend that just failed: the batches behind this one would fail
          // the same way and only make shutdown wait. Drop them now (counted).
          let rest: QueuedBatch | undefined;
          while ((rest = this.queue.shift())) this.drop(rest, 'send_failed');
        }
        const why = !result.retryable
          ? 'not retryable'
          : !r.enabled
            ? 'retries disabled'
            : outOfTime
              ? 'max_elapsed_time reached'
              : 'flush or shutdown deadline';
        this.drop(batch, 'send_failed');
        this.ctx.logger.warn('otlp export failed; batch dropped', {
          key: 'send_failed',
          endpoint: redactUrl(this.settings.url),
          reason: result.reason,
          why,
          points: batch.points,
        });
        return false;
      }
      this.stats.batchRetries++;
      this.retryCounter.add(1);
      this.ctx.logger.warn('otlp backend unavailable; retrying', {
        key: 'retrying',
        endpoint: redactUrl(this.settings.url),
        reason: result.reason,
        retry_in_ms: Math.round(waitMs),
      });
      await this.wait(waitMs);
      backoffMs = Math.min(backoffMs * BACKOFF_MULTIPLIER, r.maxIntervalMs);
    }
  }

  private sendOnce(metrics: ResourceMetrics): Promise<SendResult> {
    const inner = this.inner!;
    this.lastRetryAfterMs = undefined;
    return new Promise<SendResult>((resolve) => {
      const grpc = this.settings.protocol === 'grpc';
      try {
        inner.export(metrics, (result) => {
          if (result.code === 0) {
            if (grpc) this.countRequest('success', 'OK');
            resolve({ ok: true, retryable: false });
            return;
          }
          const { reason, retryable } = describeError(result.error);
          if (grpc) this.countRequest(retryable ? 'retryable' : 'failed', String((result.error as { code?: number | string } | undefined)?.code ?? 'error'));
          resolve({ ok: false, retryable, reason, retryAfterMs: this.lastRetryAfterMs });
        });
      } catch (error) {
        resolve({ ok: false, retryable: false, reason: describeError(error).reason });
      }
    });
  }

  /** A backoff wait that flush and shutdown cut short. */
  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.cancelWait = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.cancelWait = done;
    });
  }

  async forceFlush(): Promise<void> {
    if (!this.inner) return;
    // The batch waiting for a retry is tried at once; retries go on only while they fit in the
    // flush budget (the timeout, at most FLUSH_BUDGET_MS), so a dead backend cannot hold the
    // agent's shutdown: what is still queued then is dropped and counted (flush_timeout).
    const budgetMs = Math.min(this.settings.timeoutMs, FLUSH_BUDGET_MS);
    this.flushDeadline = Date.now() + budgetMs;
    this.cancelWait?.();
    try {
      const pumping = this.pump();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), budgetMs);
      });
      const outcome = await Promise.race([pumping.then(() => 'done' as const), expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        let batch: QueuedBatch | undefined;
        while ((batch = this.queue.shift())) this.drop(batch, 'flush_timeout');
      }
    } finally {
      this.flushDeadline = 0;
    }
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    await this.forceFlush();
    this.closed = true;
    this.cancelWait?.();
    let batch: QueuedBatch | undefined;
    while ((batch = this.queue.shift())) this.drop(batch, 'shutdown');
    // Abort what is still in flight (its batch was given its chance in forceFlush), then let the
    // OTel exporter settle, briefly.
    this.agent?.destroy();
    if (this.inner) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.inner.shutdown().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)))]);
      clearTimeout(timer);
    }
    for (const u of this.unsubscribe.splice(0)) u();
  }
}
