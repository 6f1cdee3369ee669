import {
  checkExporterHelperConfig,
  createExporterHelper,
  defineExporter,
  exporterHelperConfigProperties,
  resolveExporterHelperSettings,
  type ExporterHelperConfig,
  type LogBatch,
  type LogExporter,
  type SendResult,
} from '../../src/api/index.js';

export interface WebhookConfig extends ExporterHelperConfig {
  /** Where each batch is POSTed, as JSON lines. */
  url: string;
}

/** One attempt: POST the batch; 429 and 5xx but 501 are worth retrying, with the answer's Retry-After. */
async function post(url: string, timeoutMs: number, batch: LogBatch): Promise<SendResult> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: batch.map((r) => JSON.stringify({ time: r.timeMs, severity: r.severityNumber, event: r.eventName, body: r.body, ...r.attributes })).join('\n'),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer(); // read to the end: the connection goes back to the pool
    if (res.ok) return { ok: true };
    const retryAfter = Number(res.headers.get('retry-after'));
    return {
      ok: false,
      retryable: res.status === 429 || (res.status >= 500 && res.status !== 501),
      reason: `HTTP ${res.status}`,
      ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
    };
  } catch (err) {
    // Unreachable or timed out: worth retrying.
    return { ok: false, retryable: true, reason: err instanceof Error ? err.message : String(err) };
  }
}

export const webhookExporterFactory = defineExporter<WebhookConfig, LogExporter>({
  type: 'webhook',
  kind: 'exporter',
  signals: ['logs'],
  description: 'Example plugin: POSTs events as JSON lines, through the exporter helper (queue, retries, flush deadline)',
  stability: 'development',
  defaultConfig: () => ({ url: '' }),
  configSchema: {
    type: 'object',
    required: ['url'],
    properties: {
      url: { type: 'string', minLength: 1, description: 'Where each batch is POSTed.' },
      // timeout, retry_on_failure {...}, sending_queue {...}: the Collector's keys.
      ...exporterHelperConfigProperties,
    },
  },
  validate: checkExporterHelperConfig,
  create(ctx, config) {
    const settings = resolveExporterHelperSettings(config);
    const helper = createExporterHelper<LogBatch>(ctx, {
      signal: 'logs',
      settings,
      count: (batch) => batch.length,
      send: (batch) => post(config.url, settings.timeoutMs, batch),
      destination: config.url,
    });
    return {
      start: () => Promise.resolve(),
      // Queued: resolves at once; the helper sends, retries, counts.
      exportLogs: (batch) => helper.export(batch),
      forceFlush: () => helper.forceFlush(),
      shutdown: () => helper.shutdown(),
    };
  },
});
