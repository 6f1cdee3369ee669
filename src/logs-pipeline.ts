/**
 * One logs pipeline: processors in order, then a batcher (as the Collector's batch processor: a
 * batch goes out when it holds `send_batch_size` records or `timeout` after its first record),
 * then every exporter of the pipeline gets each batch.
 *
 * Batches are processed synchronously while processors return arrays; when one returns a promise,
 * later batches queue behind it, so the pipeline keeps record order. Nothing a processor or
 * exporter throws escapes: the records are dropped and counted.
 */
import { DropReason } from './api/index.js';
import type { LogBatch, LogConsumer, LogRecord, LogExporter, LogProcessor, Logger, Resource } from './api/index.js';
import type { CounterSeries, SelfTelemetry } from './telemetry.js';
import { SELF_METRICS } from './telemetry.js';

export interface LogProcessorSlot {
  id: string;
  processor: LogProcessor;
}

export interface LogExporterSlot {
  id: string;
  exporter: LogExporter;
}

export interface LogBatching {
  sendBatchSize: number;
  batchTimeoutMs: number;
  /** 0 = no limit. */
  sendBatchMaxSize: number;
}

interface ProcessorState extends LogProcessorSlot {
  incoming: CounterSeries;
  outgoing: CounterSeries;
  filtered: CounterSeries;
  failed: CounterSeries;
}

interface ExporterState extends LogExporterSlot {
  sent: CounterSeries;
  failed: CounterSeries;
  backlogDropped: CounterSeries;
  inFlight: number;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export class LogsPipeline {
  private readonly processors: ProcessorState[];
  private readonly exporters: ExporterState[];
  private readonly queue: LogBatch[] = [];
  private busy = false;
  private idleWaiters: Array<() => void> = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly queueFull: CounterSeries;
  private readonly batches: CounterSeries;
  /** Records waiting for the batch to fill or time out. */
  private pending: LogBatch = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    processors: LogProcessorSlot[],
    private readonly batching: LogBatching,
    exporters: LogExporterSlot[],
    private readonly resource: Resource,
    telemetry: SelfTelemetry,
    private readonly logger: Logger,
    private readonly maxQueuedBatches = 1000,
    /** Exports per exporter that may be unsettled at once; later batches skip that exporter (counted). */
    private readonly maxExportsInFlight = 8,
  ) {
    const t = telemetry;
    this.processors = processors.map((p) => {
      const attrs = { 'component.id': p.id, 'pipeline.id': id };
      return {
        ...p,
        incoming: t.counter(SELF_METRICS.processorIncomingLogs, 'Log records handed to a processor.', '{record}', attrs),
        outgoing: t.counter(SELF_METRICS.processorOutgoingLogs, 'Log records a processor passed on.', '{record}', attrs),
        filtered: t.dropped({ ...attrs, 'component.kind': 'processor', reason: DropReason.FILTERED, signal: 'logs' }),
        failed: t.dropped({ ...attrs, 'component.kind': 'processor', reason: DropReason.PROCESSOR_ERROR, signal: 'logs' }),
      };
    });
    this.exporters = exporters.map((e) => {
      const attrs = { 'component.id': e.id };
      return {
        ...e,
        sent: t.counter(SELF_METRICS.exporterSentLogs, 'Log records of exports that resolved.', '{record}', attrs),
        failed: t.counter(SELF_METRICS.exporterFailedLogs, 'Log records of exports that rejected.', '{record}', attrs),
        backlogDropped: t.dropped({ ...attrs, 'component.kind': 'exporter', 'pipeline.id': id, reason: DropReason.EXPORT_BACKLOG, signal: 'logs' }),
        inFlight: 0,
      };
    });
    const pattrs = { 'component.id': 'pipeline', 'pipeline.id': id, 'component.kind': 'pipeline', signal: 'logs' };
    this.queueFull = t.dropped({ ...pattrs, reason: DropReason.QUEUE_FULL });
    this.batches = t.counter(SELF_METRICS.pipelineLogBatches, 'Batches of log records handed to the exporters.', '{batch}', { 'pipeline.id': id });
    t.gauge(SELF_METRICS.pipelineQueue, 'Batches waiting behind an asynchronous processor.', '{batch}', { 'pipeline.id': id }, () => this.queue.length);
    t.gauge(
      SELF_METRICS.pipelineBatchPending,
      'Log records waiting for their batch to fill or time out.',
      '{record}',
      { 'pipeline.id': id },
      () => this.pending.length,
    );
  }

  /** Takes a batch from a receiver. Never throws. */
  consume(batch: LogBatch): void {
    if (this.busy) {
      if (this.queue.length >= this.maxQueuedBatches) {
        this.queueFull.add(batch.length);
        this.logger.warn('pipeline queue full: batch dropped', { key: 'queue_full', records: batch.length });
        return;
      }
      this.queue.push(batch);
      return;
    }
    const waiting = this.process(batch, 0);
    if (waiting) this.waitThenDrain(waiting);
  }

  /** Resolves once no batch is being processed or queued. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** At shutdown: waits for queued batches, sends the partial batch, waits for every export. */
  async flush(): Promise<void> {
    await this.whenIdle();
    this.sendPending();
    await this.exportsSettled();
  }

  async exportsSettled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private waitThenDrain(waiting: Promise<void>): void {
    this.busy = true;
    void waiting.then(
      () => this.drain(),
      () => this.drain(),
    );
  }

  private drain(): void {
    let item: LogBatch | undefined;
    while ((item = this.queue.shift())) {
      const waiting = this.process(item, 0);
      if (waiting) {
        void waiting.then(
          () => this.drain(),
          () => this.drain(),
        );
        return;
      }
    }
    this.busy = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Runs processors from index `from`; returns a promise only when a processor went asynchronous. */
  private process(batch: LogBatch, from: number): Promise<void> | undefined {
    const procs = this.processors;
    for (let i = from; i < procs.length; i++) {
      const slot = procs[i]!;
      const n = batch.length;
      slot.incoming.value += n;
      // unknown: a plugin written in JavaScript may return anything.
      let out: unknown;
      try {
        out = slot.processor.processLogs(batch);
      } catch (err) {
        this.processorFailed(slot, n, err);
        return undefined;
      }
      if (Array.isArray(out)) {
        if (!this.passed(slot, n, out as LogBatch)) return undefined;
        batch = out as LogBatch;
        continue;
      }
      if (out !== null && typeof out === 'object' && typeof (out as Partial<Promise<unknown>>).then === 'function') {
        return Promise.resolve(out as Promise<unknown>).then(
          (res) => {
            if (!Array.isArray(res)) {
              this.processorFailed(slot, n, new TypeError(`processLogs() resolved to ${typeof res}, expected an array of log records`));
              return undefined;
            }
            if (!this.passed(slot, n, res as LogBatch)) return undefined;
            return this.process(res as LogBatch, i + 1);
          },
          (err: unknown) => this.processorFailed(slot, n, err),
        );
      }
      this.processorFailed(slot, n, new TypeError(`processLogs() returned ${out === null ? 'null' : typeof out}, expected an array of log records`));
      return undefined;
    }
    this.add(batch);
    return undefined;
  }

  private passed(slot: ProcessorState, n: number, out: LogBatch): boolean {
    const m = out.length;
    slot.outgoing.value += m;
    if (m < n) slot.filtered.value += n - m;
    return m > 0;
  }

  private processorFailed(slot: ProcessorState, n: number, err: unknown): undefined {
    slot.failed.add(n);
    this.logger.error('processor failed: batch dropped', {
      key: `processor_error:${slot.id}`,
      component: slot.id,
      records: n,
      reason: DropReason.PROCESSOR_ERROR,
      error: errorText(err),
    });
    return undefined;
  }

  /** Into the batch being filled; out to the exporters once it is full. */
  private add(batch: LogBatch): void {
    if (batch.length === 0) return;
    if (this.pending.length === 0) {
      // A whole incoming batch that fills the batch on its own goes as it is (no copy).
      if (batch.length >= this.batching.sendBatchSize) {
        this.sendBatches(batch);
        return;
      }
      this.pending = batch;
      this.timer = setTimeout(() => this.sendPending(), this.batching.batchTimeoutMs);
      this.timer.unref();
      return;
    }
    const pending = this.pending;
    for (let i = 0; i < batch.length; i++) pending.push(batch[i]!);
    if (pending.length >= this.batching.sendBatchSize) this.sendPending();
  }

  private sendPending(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.sendBatches(batch);
  }

  /** Hands a batch (split at send_batch_max_size) to every exporter. */
  private sendBatches(batch: LogBatch): void {
    const max = this.batching.sendBatchMaxSize;
    if (max === 0 || batch.length <= max) {
      this.toExporters(batch);
      return;
    }
    for (let i = 0; i < batch.length; i += max) this.toExporters(batch.slice(i, i + max));
  }

  private toExporters(batch: LogBatch): void {
    this.batches.add(1);
    for (const slot of this.exporters) {
      if (slot.inFlight >= this.maxExportsInFlight) {
        slot.backlogDropped.add(batch.length);
        this.logger.warn('exporter has too many unfinished exports: this batch skipped for it', {
          key: `export_backlog:${slot.id}`,
          component: slot.id,
          in_flight: slot.inFlight,
          records: batch.length,
        });
        continue;
      }
      const p = this.exportOne(slot, batch);
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    }
  }

  private async exportOne(slot: ExporterState, batch: LogBatch): Promise<void> {
    const n = batch.length;
    slot.inFlight++;
    try {
      await slot.exporter.exportLogs(batch, this.resource);
      slot.sent.add(n);
    } catch (err) {
      slot.failed.add(n);
      this.logger.warn('log export failed', { key: `export_failed:${slot.id}`, component: slot.id, records: n, error: errorText(err) });
    } finally {
      slot.inFlight--;
    }
  }
}

/**
 * Copies a batch for one more logs pipeline: processors may change attributes in place, and one
 * pipeline must not see another's changes (one record and one attributes object per record).
 */
export function copyLogBatch(batch: LogBatch): LogBatch {
  const out = new Array<LogRecord>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!;
    out[i] = { ...r, attributes: { ...r.attributes } };
  }
  return out;
}

/**
 * The LogConsumer a receiver gets: counts what it accepted and hands each batch to every logs
 * pipeline the receiver is part of (a copy to all but the last).
 */
export class LogFanOut implements LogConsumer {
  private closed = false;
  constructor(
    private readonly receiverId: string,
    private readonly pipelines: LogsPipeline[],
    private readonly accepted: CounterSeries,
    private readonly afterClose: CounterSeries,
    private readonly invalid: CounterSeries,
    private readonly logger: Logger,
  ) {}

  /** After this, batches are dropped (counted with reason `shutting_down`). */
  close(): void {
    this.closed = true;
  }

  consume(batch: LogBatch): void {
    if (!Array.isArray(batch)) {
      this.invalid.add(1);
      this.logger.error('receiver handed a non-array log batch', { key: `invalid_batch:${this.receiverId}`, component: this.receiverId });
      return;
    }
    if (this.closed) {
      this.afterClose.add(batch.length);
      return;
    }
    this.accepted.value += batch.length;
    const ps = this.pipelines;
    const last = ps.length - 1;
    for (let i = 0; i <= last; i++) {
      try {
        ps[i]!.consume(i === last ? batch : copyLogBatch(batch));
      } catch (err) {
        this.logger.error('pipeline failed to take a log batch', {
          key: `consume_error:${this.receiverId}`,
          component: this.receiverId,
          error: errorText(err),
        });
      }
    }
  }
}
