/**
 * One metrics pipeline: processors in order, then the metrics stage; on each completed collection
 * the stage's metrics (plus the agent's self-metrics) go to every exporter of the pipeline at once.
 *
 * The pipeline owns the export cadence: a collection is complete once every receiver that marks
 * cycles has marked one since the last export, or one of them marks a second (which then counts
 * for the next round: with receivers of different intervals the fastest sets the pace). So two
 * receivers of one interval give one export per interval, not two.
 *
 * Batches are processed synchronously while processors return arrays. When one returns a promise,
 * later batches (and collection markers) queue behind it, so each pipeline keeps batch order.
 * Nothing a processor or exporter throws escapes: the batch is dropped and counted.
 */
import { DropReason } from './api/index.js';
import type { Consumer, Exporter, Logger, Processor, ResourceMetrics, Sample, SampleBatch } from './api/index.js';
import type { CounterSeries, DeltaState, SelfTelemetry } from './telemetry.js';
import { SELF_METRICS } from './telemetry.js';

/** What the pipeline needs of the metrics stage (src/metrics/stage.ts implements it). */
export interface PipelineStage {
  add(batch: SampleBatch): void;
  collect(nowMs?: number): { cumulative(): ResourceMetrics; delta(): ResourceMetrics };
}

export interface ProcessorSlot {
  id: string;
  processor: Processor;
}

export interface ExporterSlot {
  id: string;
  exporter: Exporter;
  temporality: 'cumulative' | 'delta';
  /** Whether this pipeline appends the self-metrics scope for this exporter (one pipeline per exporter does). */
  withSelfTelemetry: boolean;
  /** For delta exporters that get self-metrics: what was sent last. */
  selfDelta?: DeltaState;
}

interface ProcessorState extends ProcessorSlot {
  incoming: CounterSeries;
  outgoing: CounterSeries;
  filtered: CounterSeries;
  failed: CounterSeries;
}

interface ExporterState extends ExporterSlot {
  sent: CounterSeries;
  failed: CounterSeries;
  failedExports: CounterSeries;
  /** Exports handed over and not yet settled (bounded: an exporter that never resolves must not grow memory). */
  inFlight: number;
  backlogDropped: CounterSeries;
}

const COLLECT = Symbol('collect');
type QueueItem = SampleBatch | typeof COLLECT;

/** Counts the data points of every metric in a ResourceMetrics. */
export function countPoints(rm: ResourceMetrics): number {
  let n = 0;
  for (const sm of rm.scopeMetrics) for (const m of sm.metrics) n += m.dataPoints.length;
  return n;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

export class Pipeline {
  private readonly processors: ProcessorState[];
  private readonly exporters: ExporterState[];
  private readonly queue: QueueItem[] = [];
  private busy = false;
  private idleWaiters: Array<() => void> = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly queueFull: CounterSeries;
  private readonly stageFailed: CounterSeries;
  private readonly collections: CounterSeries;
  /** Receivers that have marked a cycle at least once; those marked since the last export. */
  private readonly cycleSources = new Set<string>();
  private readonly doneSince = new Set<string>();

  constructor(
    readonly id: string,
    processors: ProcessorSlot[],
    private readonly stage: PipelineStage,
    exporters: ExporterSlot[],
    private readonly telemetry: SelfTelemetry,
    /** Host logger for this pipeline (rate-limited). */
    private readonly logger: Logger,
    private readonly maxQueuedBatches = 1000,
    /** Exports per exporter that may be unsettled at once; later collections skip that exporter. */
    private readonly maxExportsInFlight = 8,
  ) {
    const t = telemetry;
    this.processors = processors.map((p) => {
      const attrs = { 'component.id': p.id, 'pipeline.id': id };
      return {
        ...p,
        incoming: t.counter(SELF_METRICS.processorIncoming, 'Samples handed to a processor.', '{sample}', attrs),
        outgoing: t.counter(SELF_METRICS.processorOutgoing, 'Samples a processor passed on.', '{sample}', attrs),
        filtered: t.dropped({ ...attrs, 'component.kind': 'processor', reason: DropReason.FILTERED }),
        failed: t.dropped({ ...attrs, 'component.kind': 'processor', reason: DropReason.PROCESSOR_ERROR }),
      };
    });
    this.exporters = exporters.map((e) => {
      const attrs = { 'component.id': e.id };
      return {
        ...e,
        sent: t.counter(SELF_METRICS.exporterSent, 'Data points an exporter sent (export resolved).', '{point}', attrs),
        failed: t.counter(SELF_METRICS.exporterFailed, 'Data points an exporter failed to send (export rejected).', '{point}', attrs),
        failedExports: t.counter(SELF_METRICS.exporterFailedExports, 'Exports that were rejected.', '{export}', attrs),
        inFlight: 0,
        backlogDropped: t.dropped({ ...attrs, 'component.kind': 'exporter', 'pipeline.id': id, reason: DropReason.EXPORT_BACKLOG }),
      };
    });
    const pattrs = { 'component.id': 'pipeline', 'pipeline.id': id, 'component.kind': 'pipeline' };
    this.queueFull = t.dropped({ ...pattrs, reason: DropReason.QUEUE_FULL });
    this.stageFailed = t.dropped({ ...pattrs, reason: DropReason.STAGE_ERROR });
    this.collections = t.counter(SELF_METRICS.pipelineCollections, 'Completed collections (exports started).', '{collection}', { 'pipeline.id': id });
    t.gauge(SELF_METRICS.pipelineQueue, 'Batches waiting behind an asynchronous processor.', '{batch}', { 'pipeline.id': id }, () => this.queue.length);
  }

  /** Takes a batch from a receiver. Never throws. */
  consume(batch: SampleBatch): void {
    if (this.busy) {
      if (this.queue.length >= this.maxQueuedBatches) {
        this.queueFull.add(batch.length);
        this.logger.warn('pipeline queue full: batch dropped', { key: 'queue_full', samples: batch.length });
        return;
      }
      this.queue.push(batch);
      return;
    }
    const pending = this.process(batch, 0);
    if (pending) this.waitThenDrain(pending);
  }

  /**
   * `source` (a receiver id) completed a cycle. When that completes the collection, collect and
   * export (after the batches that came before it).
   */
  collectionDone(source = ''): void {
    this.cycleSources.add(source);
    if (this.doneSince.has(source)) {
      // A second cycle of one receiver within a round ends it, and is the first of the next: the
      // fastest receiver sets the pace when the others are slower (or have stopped).
      this.doneSince.clear();
      this.doneSince.add(source);
    } else {
      this.doneSince.add(source);
      if (this.doneSince.size < this.cycleSources.size) return;
      this.doneSince.clear();
    }
    if (this.busy) this.queue.push(COLLECT);
    else this.collectAndExport();
  }

  /** Resolves once no batch is being processed or queued. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Final collection at shutdown: waits for queued batches, exports, waits for every export. */
  async flush(): Promise<void> {
    await this.whenIdle();
    this.collectAndExport();
    await this.exportsSettled();
  }

  /** Resolves when every export started so far has settled. */
  async exportsSettled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private waitThenDrain(pending: Promise<void>): void {
    this.busy = true;
    pending.then(
      () => this.drain(),
      () => this.drain(),
    );
  }

  private drain(): void {
    while (this.queue.length > 0) {
      const item = this.queue.shift()!;
      if (item === COLLECT) {
        this.collectAndExport();
        continue;
      }
      const pending = this.process(item, 0);
      if (pending) {
        pending.then(
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
  private process(batch: SampleBatch, from: number): Promise<void> | undefined {
    const procs = this.processors;
    for (let i = from; i < procs.length; i++) {
      const slot = procs[i]!;
      const n = batch.length;
      slot.incoming.value += n;
      let out: SampleBatch | Promise<SampleBatch>;
      try {
        out = slot.processor.process(batch);
      } catch (err) {
        this.processorFailed(slot, n, err);
        return undefined;
      }
      if (Array.isArray(out)) {
        if (!this.passed(slot, n, out)) return undefined;
        batch = out;
        continue;
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
      if (out !== null && typeof out === 'object' && typeof out.then === 'function') {
        return Promise.resolve(out).then(
          (res) => {
            if (!Array.isArray(res)) {
              this.processorFailed(slot, n, new TypeError(`process() resolved to ${typeof res}, expected an array of samples`));
              return undefined;
            }
            if (!this.passed(slot, n, res)) return undefined;
            return this.process(res, i + 1);
          },
          (err: unknown) => this.processorFailed(slot, n, err),
        );
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
      this.processorFailed(slot, n, new TypeError(`process() returned ${out === null ? 'null' : typeof out}, expected an array of samples`));
      return undefined;
    }
    this.deliver(batch);
    return undefined;
  }

  /** Counts what a processor passed; false when nothing is left to process. */
  private passed(slot: ProcessorState, n: number, out: SampleBatch): boolean {
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
      samples: n,
      reason: DropReason.PROCESSOR_ERROR,
      error: errorText(err),
    });
    return undefined;
  }

  private deliver(batch: Sample[]): void {
    try {
      this.stage.add(batch);
    } catch (err) {
      this.stageFailed.add(batch.length);
      this.logger.error('metrics stage failed: batch dropped', { key: 'stage_error', error: errorText(err) });
    }
  }

  private collectAndExport(): void {
    const nowMs = Date.now();
    let collected: { cumulative(): ResourceMetrics; delta(): ResourceMetrics };
    try {
      collected = this.stage.collect(nowMs);
    } catch (err) {
      this.logger.error('metrics stage failed to collect', { key: 'collect_error', error: errorText(err) });
      return;
    }
    this.collections.add(1);
    let cumulative: ResourceMetrics | undefined;
    let delta: ResourceMetrics | undefined;
    for (const slot of this.exporters) {
      let rm: ResourceMetrics;
      try {
        rm = slot.temporality === 'delta' ? (delta ??= collected.delta()) : (cumulative ??= collected.cumulative());
      } catch (err) {
        this.logger.error('metrics stage failed to build metrics', { key: 'collect_error', error: errorText(err) });
        continue;
      }
      if (slot.inFlight >= this.maxExportsInFlight) {
        const points = countPoints(rm);
        slot.backlogDropped.add(points);
        this.logger.warn('exporter has too many unfinished exports: this collection skipped for it', {
          key: `export_backlog:${slot.id}`,
          component: slot.id,
          in_flight: slot.inFlight,
          points,
        });
        continue;
      }
      if (slot.withSelfTelemetry) {
        rm = { resource: rm.resource, scopeMetrics: [...rm.scopeMetrics, this.telemetry.toScopeMetrics(nowMs, slot.selfDelta)] };
      }
      const p = this.exportOne(slot, rm);
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    }
  }

  private async exportOne(slot: ExporterState, rm: ResourceMetrics): Promise<void> {
    const points = countPoints(rm);
    slot.inFlight++;
    try {
      await slot.exporter.export(rm);
      slot.sent.add(points);
    } catch (err) {
      slot.failed.add(points);
      slot.failedExports.add(1);
      this.logger.warn('export failed', {
        key: `export_failed:${slot.id}`,
        component: slot.id,
        points,
        error: errorText(err),
      });
    } finally {
      slot.inFlight--;
    }
  }
}

/**
 * Copies a batch for one more pipeline: processors may replace attributes and rewrite values, and
 * one pipeline must not see another's changes. The values copy is most of the cost (measured: the
 * sample object alone is ~30x cheaper), paid only by receivers that feed several pipelines.
 */
export function copyBatch(batch: SampleBatch): SampleBatch {
  const out: SampleBatch = new Array<Sample>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const s = batch[i]!;
    out[i] = { ...s, values: s.values.slice() };
  }
  return out;
}

/**
 * The Consumer a receiver gets: counts what it accepted and hands each batch to every pipeline
 * the receiver is part of (a copy to all but the last).
 */
export class FanOutConsumer implements Consumer {
  private closed = false;
  constructor(
    private readonly receiverId: string,
    private readonly pipelines: Pipeline[],
    private readonly accepted: CounterSeries,
    private readonly afterClose: CounterSeries,
    private readonly invalid: CounterSeries,
    private readonly logger: Logger,
  ) {}

  /** After this, batches are dropped (counted with reason `shutting_down`). */
  close(): void {
    this.closed = true;
  }

  consume(batch: SampleBatch): void {
    if (!Array.isArray(batch)) {
      this.invalid.add(1);
      this.logger.error('receiver handed a non-array batch', { key: `invalid_batch:${this.receiverId}`, component: this.receiverId });
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
        ps[i]!.consume(i === last ? batch : copyBatch(batch));
      } catch (err) {
        this.logger.error('pipeline failed to take a batch', { key: `consume_error:${this.receiverId}`, component: this.receiverId, error: errorText(err) });
      }
    }
  }

  collectionDone(): void {
    for (const p of this.pipelines) {
      try {
        p.collectionDone(this.receiverId);
      } catch (err) {
        this.logger.error('pipeline failed to collect', { key: `collect_error:${p.id}`, pipeline: p.id, error: errorText(err) });
      }
    }
  }
}

/** What a receiver in no metrics pipeline gets as `ctx.next`: counts what it is handed, keeps nothing. */
export class DiscardingConsumer implements Consumer {
  constructor(private readonly discarded: CounterSeries) {}
  consume(batch: SampleBatch): void {
    if (Array.isArray(batch)) this.discarded.add(batch.length);
  }
  collectionDone(): void {}
}
