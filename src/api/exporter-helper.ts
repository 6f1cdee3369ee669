/**
 * The exporter helper: what every pushing exporter needs between the pipeline and its transport,
 * written once (as the OpenTelemetry Collector's exporterhelper). An exporter supplies `send`
 * (one attempt of one batch: encode, transmit, classify the answer); the helper owns
 *  - a bounded sending queue, so a slow or absent backend never holds the pipeline back: at most
 *    `queue_size` batches and `queue_items` items (data points, log records: what holds memory;
 *    one collection of a big node is ~330,000 points) wait; beyond either, the oldest waiting
 *    batches are dropped (counted `queue_full`). The newest batch is always queued, even alone
 *    above `queue_items`;
 *  - splitting a batch into requests of at most `sending_queue.batch.max_size` items (the
 *    Collector's key, items sizer; its default is no limit, ours is not, because here one
 *    collection is one batch): one collection of a big node is ~330,000 points,
 *    ~70 MB of protobuf in one request, over what receivers take by default (the Collector's gRPC
 *    receiver 4 MiB, its HTTP receiver 20 MiB) and slower to encode per point than small ones;
 *  - re-sending a batch that failed for a retryable reason, with exponential backoff and jitter,
 *    waiting at least what the backend's Retry-After asked, until `max_elapsed_time`;
 *  - a flush deadline at shutdown, so a dead backend cannot hold the agent's stop;
 *  - counting items delivered, retried and dropped (with a reason), in self-telemetry and in
 *    `stats`, and logging failures (rate-limited by the host's logger).
 *
 * Batches are sent one at a time, oldest first. Part of the public API (src/api/index.ts
 * re-exports it); it uses nothing of the host.
 */
import { DropReason } from './errors.js';
import type { Attributes, ComponentContext, ConfigSchema, Signal } from './index.js';

/** The outcome of one attempt to send one batch. */
export type SendResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** Whether trying again later may succeed (429, 502-504, unreachable, timeout), or never (400, a bad certificate). */
      readonly retryable: boolean;
      /** Short description for logs; never a header value or other secret. */
      readonly reason: string;
      /** The backend's Retry-After, in milliseconds, when it sent one. */
      readonly retryAfterMs?: number;
    };

export interface ExporterHelperSettings {
  /** Timeout of one send (the transport enforces it); also the longest flush at shutdown, capped by `flushTimeoutMs`. */
  timeoutMs: number;
  /**
   * `queueItems`: items (data points, log records) that may wait; default `DEFAULT_QUEUE_ITEMS`.
   * `batchMaxSize`: items per request, 0 for no limit; default `DEFAULT_BATCH_MAX_SIZE`.
   */
  queue: { enabled: boolean; queueSize: number; queueItems?: number; batchMaxSize?: number };
  retry: { enabled: boolean; initialIntervalMs: number; maxIntervalMs: number; maxElapsedTimeMs: number };
}

export interface ExporterHelperOptions<T> {
  /** What the batches are; an attribute of the helper's self-metrics. */
  signal: Signal;
  settings: ExporterHelperSettings;
  /** Items in a batch (data points, log records), for the counts. */
  count(batch: T): number;
  /** One attempt. A throw or rejection counts as a failure that is not retryable. */
  send(batch: T): Promise<SendResult>;
  /**
   * Cuts a batch of more than `maxItems` items into batches of at most `maxItems`, in order, each
   * sent as its own request. Without it a batch is one request whatever its size.
   */
  split?(batch: T, maxItems: number): T[];
  /** Where batches go, safe to log (a URL without credentials). */
  destination?: string;
  /** Longest forceFlush; default 3 s (the agent promises to stop within a few seconds). */
  flushTimeoutMs?: number;
}

export interface ExporterHelperStats {
  /** Items and batches the backend accepted. */
  sentItems: number;
  sentBatches: number;
  /** Re-sends of a batch after a retryable failure. */
  retries: number;
  /** Items and batches given up, by reason: queue_full, send_failed, flush_timeout, shutdown. */
  droppedItems: Record<string, number>;
  droppedBatches: Record<string, number>;
}

export interface ExporterHelper<T> {
  /**
   * Queue a batch and resolve at once; with the queue disabled, send it and resolve when sent,
   * reject when it failed for good. Rejects after shutdown.
   */
  export(batch: T): Promise<void>;
  /** Send what is queued, within the flush deadline; what does not fit is dropped (`flush_timeout`). */
  forceFlush(): Promise<void>;
  /** forceFlush, then drop (`shutdown`) whatever is left. Later export() calls reject. */
  shutdown(): Promise<void>;
  /** Batches waiting in the queue. */
  readonly queueSize: number;
  /** Items (data points, log records) of the batches waiting in the queue. */
  readonly queuedItems: number;
  readonly stats: ExporterHelperStats;
}

/**
 * Items that may wait in a sending queue unless configured: the memory bound (a queued data point
 * costs ~0.1-0.2 KB; docs/deploy.md "Memory"), ~10-20 collections of a node with a few hundred
 * workloads, one of a big node at the default `series_limit`.
 */
export const DEFAULT_QUEUE_ITEMS = 200_000;

/**
 * Items per request unless configured: the Collector's batch size (its `min_size` default). A
 * data point of the taskstats schema is ~220 bytes of protobuf with a container's cgroup path, so
 * a request stays near 2 MB, under the 4 MiB a Collector's gRPC receiver takes by default.
 */
export const DEFAULT_BATCH_MAX_SIZE = 8192;

/** Settings of an exporter that does not configure any. */
export const EXPORTER_HELPER_DEFAULTS: ExporterHelperSettings = {
  timeoutMs: 10_000,
  queue: { enabled: true, queueSize: 100 },
  retry: { enabled: true, initialIntervalMs: 5_000, maxIntervalMs: 30_000, maxElapsedTimeMs: 300_000 },
};

/** The config keys the helper's settings come from (Collector names), as given to create() (durations in ms). */
export interface ExporterHelperConfig {
  timeout?: number;
  retry_on_failure?: { enabled?: boolean; initial_interval?: number; max_interval?: number; max_elapsed_time?: number };
  sending_queue?: { enabled?: boolean; queue_size?: number; queue_items?: number; batch?: { max_size?: number } };
}

const duration = (minMs: number, description?: string): ConfigSchema => ({ type: 'string', duration: true, minMs, ...(description ? { description } : {}) });

/**
 * Schema properties of `timeout`, `retry_on_failure` and `sending_queue`, to spread into an
 * exporter's own `configSchema.properties`.
 */
export const exporterHelperConfigProperties: Record<string, ConfigSchema> = {
  timeout: duration(1, 'Timeout of one send (all its attempts within one request).'),
  retry_on_failure: {
    type: 'object',
    properties: {
      enabled: { type: 'boolean' },
      initial_interval: duration(1),
      max_interval: duration(1),
      max_elapsed_time: duration(0),
    },
  },
  sending_queue: {
    type: 'object',
    properties: {
      enabled: { type: 'boolean' },
      queue_size: { type: 'integer', minimum: 1, description: 'Batches the queue holds.' },
      queue_items: {
        type: 'integer',
        minimum: 1,
        description: `Items (data points, log records) the queue holds, the memory bound (default ${DEFAULT_QUEUE_ITEMS}); the newest batch is always queued.`,
      },
      batch: {
        type: 'object',
        properties: {
          max_size: {
            type: 'integer',
            minimum: 0,
            description: `Items (data points, log records) per request: a bigger batch is split (default ${DEFAULT_BATCH_MAX_SIZE}; 0: no limit).`,
          },
        },
      },
    },
  },
};

/** The helper's settings from an exporter's config (as create() receives it), over `defaults`. */
export function resolveExporterHelperSettings(
  config: ExporterHelperConfig,
  defaults: ExporterHelperSettings = EXPORTER_HELPER_DEFAULTS,
): ExporterHelperSettings {
  const r = config.retry_on_failure ?? {};
  const q = config.sending_queue ?? {};
  return {
    timeoutMs: config.timeout ?? defaults.timeoutMs,
    queue: {
      enabled: q.enabled ?? defaults.queue.enabled,
      queueSize: q.queue_size ?? defaults.queue.queueSize,
      // Only when set: the helper applies DEFAULT_QUEUE_ITEMS.
      ...((q.queue_items ?? defaults.queue.queueItems) !== undefined ? { queueItems: q.queue_items ?? defaults.queue.queueItems } : {}),
      ...((q.batch?.max_size ?? defaults.queue.batchMaxSize) !== undefined ? { batchMaxSize: q.batch?.max_size ?? defaults.queue.batchMaxSize } : {}),
    },
    retry: {
      enabled: r.enabled ?? defaults.retry.enabled,
      initialIntervalMs: r.initial_interval ?? defaults.retry.initialIntervalMs,
      maxIntervalMs: r.max_interval ?? defaults.retry.maxIntervalMs,
      maxElapsedTimeMs: r.max_elapsed_time ?? defaults.retry.maxElapsedTimeMs,
    },
  };
}

/** The `initial_interval <= max_interval` check, as a problem for a factory's validate(). */
export function checkExporterHelperConfig(config: ExporterHelperConfig): Array<{ path: string; message: string }> {
  const r = config.retry_on_failure;
  if (r?.initial_interval !== undefined && r.max_interval !== undefined && r.initial_interval > r.max_interval) {
    return [{ path: 'retry_on_failure.initial_interval', message: 'must not exceed max_interval' }];
  }
  return [];
}

const BACKOFF_MULTIPLIER = 1.5;
const BACKOFF_JITTER = 0.2;
const DEFAULT_FLUSH_TIMEOUT_MS = 3000;

interface Queued<T> {
  batch: T;
  items: number;
}

class SendingQueue<T> implements ExporterHelper<T> {
  readonly stats: ExporterHelperStats = { sentItems: 0, sentBatches: 0, retries: 0, droppedItems: {}, droppedBatches: {} };
  private readonly queue: Array<Queued<T>> = [];
  /** Items in `queue`. */
  private waitingItems = 0;
  private readonly queueItems: number;
  private readonly batchMaxSize: number;
  private pumping: Promise<void> | undefined;
  private closed = false;
  /** While flushing: the current backoff wait is cut short and later ones must end before this. */
  private flushDeadline = 0;
  private cancelWait: (() => void) | undefined;
  private failingSince = 0;
  private readonly settings: ExporterHelperSettings;
  private readonly attrs: Attributes;
  private readonly sentCounter: { add(value: number, attributes?: Attributes): void };
  private readonly retryCounter: { add(value: number, attributes?: Attributes): void };

  constructor(
    private readonly ctx: ComponentContext,
    private readonly options: ExporterHelperOptions<T>,
  ) {
    this.settings = options.settings;
    this.queueItems = options.settings.queue.queueItems ?? DEFAULT_QUEUE_ITEMS;
    this.batchMaxSize = options.settings.queue.batchMaxSize ?? DEFAULT_BATCH_MAX_SIZE;
    this.attrs = { signal: options.signal };
    const t = ctx.telemetry;
    this.sentCounter = t.counter('delivered_items', 'Items (data points, log records) the backend accepted', '{item}');
    this.retryCounter = t.counter('batch_retries', 'Batches re-sent after a retryable failure', '{batch}');
    t.gauge('queue_size', 'Batches waiting in the sending queue', () => this.queue.length, '{batch}', this.attrs);
    t.gauge('queue_capacity', 'Capacity of the sending queue', () => this.settings.queue.queueSize, '{batch}', this.attrs);
    t.gauge('queue_items', 'Items (data points, log records) waiting in the sending queue', () => this.waitingItems, '{item}', this.attrs);
    t.gauge('queue_items_capacity', 'Items the sending queue holds at most', () => this.queueItems, '{item}', this.attrs);
  }

  get queueSize(): number {
    return this.queue.length;
  }

  get queuedItems(): number {
    return this.waitingItems;
  }

  /** The oldest waiting batch, out of the queue. */
  private take(): Queued<T> | undefined {
    const q = this.queue.shift();
    if (q) this.waitingItems -= q.items;
    return q;
  }

  /** Counts `items` of one batch as dropped for `reason`. */
  private drop(items: number, reason: string): void {
    this.stats.droppedItems[reason] = (this.stats.droppedItems[reason] ?? 0) + items;
    this.stats.droppedBatches[reason] = (this.stats.droppedBatches[reason] ?? 0) + 1;
    this.ctx.telemetry.dropped(items, reason, this.attrs);
  }

  private fields(extra: Record<string, unknown>): Record<string, unknown> {
    return { signal: this.options.signal, ...(this.options.destination ? { destination: this.options.destination } : {}), ...extra };
  }

  async export(batch: T): Promise<void> {
    if (this.closed) throw new Error(`${this.ctx.id}: exporter is shut down`);
    const q: Queued<T> = { batch, items: this.options.count(batch) };
    if (!this.settings.queue.enabled) {
      if (!(await this.deliver(q))) throw new Error(`${this.ctx.id}: export${this.options.destination ? ` to ${this.options.destination}` : ''} failed`);
      return;
    }
    // The oldest go: with cumulative sums the newest batch carries every total, and for events
    // the latest say most about what is happening now.
    let droppedBatches = 0;
    let droppedItems = 0;
    while (this.queue.length > 0 && (this.queue.length >= this.settings.queue.queueSize || this.waitingItems + q.items > this.queueItems)) {
      const old = this.take()!;
      this.drop(old.items, DropReason.QUEUE_FULL);
      droppedBatches++;
      droppedItems += old.items;
    }
    if (droppedBatches > 0) {
      this.ctx.logger.warn(
        'sending queue full: dropped the oldest batches',
        this.fields({
          key: `queue_full:${this.options.signal}`,
          batches: droppedBatches,
          items: droppedItems,
          queue_size: this.settings.queue.queueSize,
          queue_items: this.queueItems,
        }),
      );
    }
    this.queue.push(q);
    this.waitingItems += q.items;
    void this.pump();
  }

  /** Sends queued batches one at a time, oldest first. */
  private pump(): Promise<void> {
    this.pumping ??= (async () => {
      try {
        let q: Queued<T> | undefined;
        while ((q = this.take())) await this.deliver(q);
      } finally {
        this.pumping = undefined;
      }
    })();
    return this.pumping;
  }

  private async attempt(batch: T): Promise<SendResult> {
    try {
      return await this.options.send(batch);
    } catch (err) {
      return { ok: false, retryable: false, reason: err instanceof Error ? err.message.slice(0, 200) : String(err) };
    }
  }

  /**
   * One batch until sent, given up (counted) or out of time, as requests of at most
   * `batch.max_size` items when the exporter can split it. Never throws.
   */
  private async deliver(q: Queued<T>): Promise<boolean> {
    const max = this.batchMaxSize;
    const parts = this.options.split !== undefined && max > 0 && q.items > max ? this.options.split(q.batch, max) : [q.batch];
    const firstAttemptAt = Date.now();
    let delivered = true;
    for (let i = 0; i < parts.length; i++) {
      const items = parts.length === 1 ? q.items : this.options.count(parts[i]!);
      const failure = await this.deliverPart(parts[i]!, items, firstAttemptAt);
      if (failure === null) continue;
      delivered = false;
      // A part the backend refuses for good (a 400) says nothing of the others; any other failure
      // (out of time, retries off, shutting down) would be theirs too: they go with it.
      let rest = 0;
      if (failure.why !== 'not retryable') for (let j = i + 1; j < parts.length; j++) rest += this.options.count(parts[j]!);
      this.drop(items + rest, DropReason.SEND_FAILED);
      this.ctx.logger.warn(
        'export failed; batch dropped',
        this.fields({
          key: `send_failed:${this.options.signal}`,
          reason: failure.reason,
          why: failure.why,
          items: items + rest,
          ...(parts.length > 1 ? { requests: parts.length } : {}),
        }),
      );
      if (rest > 0) break;
    }
    if (delivered) this.stats.sentBatches++;
    return delivered;
  }

  /** One request until accepted (null), or why it was given up. */
  private async deliverPart(part: T, items: number, firstAttemptAt: number): Promise<{ reason: string; why: string } | null> {
    const r = this.settings.retry;
    let backoffMs = r.initialIntervalMs;
    for (;;) {
      const result = await this.attempt(part);
      if (result.ok) {
        this.stats.sentItems += items;
        this.sentCounter.add(items, this.attrs);
        if (this.failingSince) {
          this.ctx.logger.info('backend reachable again', this.fields({ failing_for_ms: Date.now() - this.failingSince }));
          this.failingSince = 0;
        }
        return null;
      }
      // An answer that refuses the batch for good (a 400) still means the backend is reachable.
      if (!this.failingSince && result.retryable) this.failingSince = Date.now();
      const jittered = backoffMs * (1 + (Math.random() * 2 - 1) * BACKOFF_JITTER);
      const waitMs = Math.max(jittered, result.retryAfterMs ?? 0);
      const now = Date.now();
      const outOfTime = now + waitMs - firstAttemptAt > r.maxElapsedTimeMs;
      const pastFlush = this.flushDeadline !== 0 && now + waitMs > this.flushDeadline;
      if (!result.retryable || !r.enabled || outOfTime || pastFlush || this.closed) {
        if (this.flushDeadline !== 0 || this.closed) {
          // Flushing against a backend that just failed: the batches behind this one would fail
          // the same way and only make shutdown wait. Drop them now (counted).
          let rest: Queued<T> | undefined;
          while ((rest = this.take())) this.drop(rest.items, DropReason.SEND_FAILED);
        }
        const why = !result.retryable
          ? 'not retryable'
          : !r.enabled
            ? 'retries disabled'
            : outOfTime
              ? 'max_elapsed_time reached'
              : 'flush or shutdown deadline';
        return { reason: result.reason, why };
      }
      this.stats.retries++;
      this.retryCounter.add(1, this.attrs);
      this.ctx.logger.warn(
        'backend unavailable; retrying',
        this.fields({ key: `retrying:${this.options.signal}`, reason: result.reason, retry_in_ms: Math.round(waitMs) }),
      );
      await this.wait(waitMs);
      backoffMs = Math.min(backoffMs * BACKOFF_MULTIPLIER, r.maxIntervalMs);
    }
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
    // The batch waiting for a retry is tried at once; retries go on only while they fit in the
    // budget, so a dead backend cannot hold the agent's shutdown.
    const budgetMs = Math.min(this.settings.timeoutMs, this.options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS);
    this.flushDeadline = Date.now() + budgetMs;
    this.cancelWait?.();
    try {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), budgetMs);
      });
      const outcome = await Promise.race([this.pump().then(() => 'done' as const), expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        let q: Queued<T> | undefined;
        while ((q = this.take())) this.drop(q.items, DropReason.FLUSH_TIMEOUT);
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
    let q: Queued<T> | undefined;
    while ((q = this.take())) this.drop(q.items, DropReason.SHUTDOWN);
  }
}

/** A sending queue with retries for one signal of one exporter. */
export function createExporterHelper<T>(ctx: ComponentContext, options: ExporterHelperOptions<T>): ExporterHelper<T> {
  return new SendingQueue(ctx, options);
}
