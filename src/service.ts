/**
 * The service: creates the components of the configured pipelines, starts them (exporters, then
 * processors, then receivers), and stops them (receivers, processors, final collection and export,
 * exporters flushed and shut down).
 *
 * A receiver used by several pipelines (of one signal or both) is created and started once; its
 * consumers fan out to every pipeline of each signal. Processors are created per pipeline (as in the OpenTelemetry Collector); an exporter is
 * created once and receives the exports of every pipeline that lists it.
 */
import type { Resource } from '@opentelemetry/resources';
import type {
  Component,
  ComponentKind,
  Consumer,
  Exporter,
  ExporterFactory,
  LogExporter,
  Logger,
  LogProcessor,
  Processor,
  ProcessorFactory,
  Receiver,
  ReceiverContext,
  ReceiverFactory,
  Signal,
} from './api/index.js';
import { AgentError, DropReason, ErrorCode, errorCodeOf } from './api/index.js';
import type { AgentConfig, ComponentEntry, LogsPipelineConfig, MetricsPipelineConfig, PipelineConfig } from './config/load.js';
import { LogFanOut, LogsPipeline } from './logs-pipeline.js';
import type { LogExporterSlot, LogProcessorSlot } from './logs-pipeline.js';
import { ComponentLogger, LogRateLimiter } from './logging.js';
import type { PinoLogger } from './logging.js';
import { MetricsStage } from './metrics/stage.js';
import { DiscardingConsumer, FanOutConsumer, Pipeline } from './pipeline.js';
import type { ExporterSlot, PipelineStage, ProcessorSlot } from './pipeline.js';
import { DeltaState, SELF_METRICS } from './telemetry.js';
import type { SelfTelemetry } from './telemetry.js';

export type ServiceState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** A component that threw while being created or started: the code of its error, else `component_failed`. */
export class ComponentFailure extends AgentError {
  constructor(
    readonly kind: ComponentKind,
    readonly componentId: string,
    readonly phase: 'create' | 'start',
    override readonly cause: unknown,
  ) {
    super(
      errorCodeOf(cause) ?? ErrorCode.COMPONENT_FAILED,
      `${kind} "${componentId}" failed to ${phase}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'ComponentFailure';
  }
}

export interface ServiceOptions {
  config: AgentConfig;
  telemetry: SelfTelemetry;
  rootLogger: PinoLogger;
  limiter?: LogRateLimiter;
  resource: Resource;
  /** For tests: replaces the metrics stage. */
  createStage?: (pipelineId: string, seriesLimit: number, endedSeriesTtlMs: number) => PipelineStage;
}

interface Running<T extends Component> {
  kind: ComponentKind;
  id: string;
  /** For processors: the pipeline it belongs to. */
  pipelineId?: string;
  component: T;
  started: boolean;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export class Service {
  state: ServiceState = 'created';
  /** Metrics pipelines. */
  readonly pipelines: Pipeline[] = [];
  readonly logsPipelines: LogsPipeline[] = [];
  private readonly exporters: Array<Running<Exporter | LogExporter>> = [];
  private readonly processors: Array<Running<Processor | LogProcessor>> = [];
  private readonly receivers: Array<Running<Receiver>> = [];
  private readonly fanOuts: Array<FanOutConsumer | LogFanOut> = [];
  private readonly limiter: LogRateLimiter;
  private readonly log: PinoLogger;
  /** Components whose start() is running (reported when a signal arrives meanwhile). */
  readonly startingComponents = new Set<string>();
  /** Shutdown steps that started and have not finished (reported when the deadline hits). */
  readonly pendingSteps = new Set<string>();

  constructor(private readonly opts: ServiceOptions) {
    this.limiter = opts.limiter ?? new LogRateLimiter();
    this.log = opts.rootLogger;
  }

  /** Whether every component started and shutdown has not begun (for /readyz). */
  ready(): boolean {
    return this.state === 'running';
  }

  private componentLogger(kind: string, id: string, pipelineId?: string): Logger {
    // A pipeline's own logger names only the pipeline (its messages name the component involved).
    const bindings: Record<string, string> = kind === 'pipeline' && id === pipelineId ? { pipeline: id } : { kind, component: id };
    if (pipelineId && id !== pipelineId) bindings.pipeline = pipelineId;
    return new ComponentLogger(this.log.child(bindings), this.limiter, `${kind}:${id}${pipelineId ? `@${pipelineId}` : ''}`);
  }

  /** Creates and starts everything. Throws ComponentFailure (after stopping what had started). */
  async start(): Promise<void> {
    this.state = 'starting';
    try {
      await this.create();
      for (const group of [this.exporters, this.processors, this.receivers] as Array<Array<Running<Component>>>) {
        for (const r of group) {
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- shutdown() may change the state during the awaits above
          if (this.state !== 'starting') return; // shutdown was requested meanwhile
          this.log.debug({ kind: r.kind, component: r.id }, 'starting component');
          const label = `${r.kind} "${r.id}"`;
          this.startingComponents.add(label);
          // Counted as started from here: a start() that hangs still gets its shutdown().
          r.started = true;
          try {
            await r.component.start();
          } catch (err) {
            r.started = false;
            throw new ComponentFailure(r.kind, r.id, 'start', err);
          } finally {
            this.startingComponents.delete(label);
          }
        }
      }
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- shutdown() may change the state during the awaits above
      if (this.state !== 'starting') throw err; // shutdown already under way
      this.state = 'failed';
      await this.shutdown().catch(() => undefined);
      this.state = 'failed';
      throw err;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- shutdown() may change the state during the awaits above
    if (this.state === 'starting') this.state = 'running';
  }

  private async createOne<T>(entry: ComponentEntry, create: () => T | Promise<T>): Promise<T> {
    try {
      const c = await create();
      if (!c || typeof (c as unknown as Component).start !== 'function' || typeof (c as unknown as Component).shutdown !== 'function') {
        throw new TypeError('create() must return an object with start() and shutdown()');
      }
      return c;
    } catch (err) {
      throw new ComponentFailure(entry.kind, entry.id, 'create', err);
    }
  }

  private async create(): Promise<void> {
    const { config, telemetry } = this.opts;
    const metricsPipelines = config.pipelines.filter((p): p is MetricsPipelineConfig => p.signal === 'metrics');
    const logsPipelines = config.pipelines.filter((p): p is LogsPipelineConfig => p.signal === 'logs');
    const exporterInstances = new Map<string, Running<Component>>();
    const selfOwner = new Map<string, string>();
    for (const p of metricsPipelines) for (const id of p.exporters) if (!selfOwner.has(id)) selfOwner.set(id, p.id);
    const signalsOf = (kind: 'exporter' | 'receiver', id: string): Set<Signal> => {
      const out = new Set<Signal>();
      for (const p of config.pipelines) if ((kind === 'exporter' ? p.exporters : p.receivers).includes(id)) out.add(p.signal);
      return out;
    };

    // Exporters: once each, checked for what each signal they serve needs.
    for (const p of config.pipelines) {
      for (const id of p.exporters) {
        if (exporterInstances.has(id)) continue;
        const entry = config.exporters.get(id)!;
        const signals = signalsOf('exporter', id);
        const ctx = {
          id,
          signals: [...signals],
          logger: this.componentLogger('exporter', id),
          telemetry: telemetry.forComponent('exporter', { 'component.id': id }),
        };
        const exporter = await this.createOne<Component>(entry, () => (entry.factory as ExporterFactory<unknown, Component>).create(ctx, entry.config));
        const fail = (message: string) => new ComponentFailure('exporter', id, 'create', new TypeError(message));
        if (signals.has('metrics')) {
          const e = exporter as Partial<Exporter>;
          if (e.temporality !== 'cumulative' && e.temporality !== 'delta') {
            throw fail(`temporality must be "cumulative" or "delta" (got ${JSON.stringify(e.temporality)})`);
          }
          if (typeof e.export !== 'function' || typeof e.forceFlush !== 'function') throw fail('an exporter needs export() and forceFlush()');
        }
        if (signals.has('logs')) {
          const e = exporter as Partial<LogExporter>;
          if (typeof e.exportLogs !== 'function' || typeof e.forceFlush !== 'function')
            throw fail('an exporter in a logs pipeline needs exportLogs() and forceFlush()');
        }
        const r: Running<Component> = { kind: 'exporter', id, component: exporter, started: false };
        exporterInstances.set(id, r);
        this.exporters.push(r as Running<Exporter | LogExporter>);
      }
    }

    // Processors: one instance per pipeline, as in the Collector.
    const createProcessors = async (p: PipelineConfig): Promise<Component[]> => {
      const out: Component[] = [];
      for (const id of p.processors) {
        const entry = config.processors.get(id)!;
        const ctx = {
          id,
          signals: [p.signal],
          logger: this.componentLogger('processor', id, p.id),
          telemetry: telemetry.forComponent('processor', { 'component.id': id, 'pipeline.id': p.id }),
        };
        const processor = await this.createOne<Component>(entry, () => (entry.factory as ProcessorFactory<unknown, Component>).create(ctx, entry.config));
        const method = p.signal === 'metrics' ? 'process' : 'processLogs';
        if (typeof (processor as unknown as Record<string, unknown>)[method] !== 'function') {
          throw new ComponentFailure('processor', id, 'create', new TypeError(`a processor in a ${p.signal} pipeline needs ${method}()`));
        }
        this.processors.push({ kind: 'processor', id, pipelineId: p.id, component: processor as Processor | LogProcessor, started: false });
        out.push(processor);
      }
      return out;
    };

    // Metrics pipelines: processors, the metrics stage, exporter slots.
    const pipelineById = new Map<string, Pipeline>();
    for (const p of metricsPipelines) {
      const processors = await createProcessors(p);
      const processorSlots: ProcessorSlot[] = processors.map((processor, i) => ({ id: p.processors[i]!, processor: processor as Processor }));
      const stage: PipelineStage = this.opts.createStage
        ? this.opts.createStage(p.id, p.seriesLimit, p.endedSeriesTtlMs)
        : new MetricsStage({
            seriesLimit: p.seriesLimit,
            endedSeriesTtlMs: p.endedSeriesTtlMs,
            resource: this.opts.resource,
            telemetry: telemetry.forComponent('pipeline', { 'component.id': 'metrics_stage', 'pipeline.id': p.id }),
            logger: this.componentLogger('pipeline', 'metrics_stage', p.id),
          });
      const exporterSlots: ExporterSlot[] = p.exporters.map((id) => {
        const exporter = exporterInstances.get(id)!.component as Exporter;
        const withSelfTelemetry = selfOwner.get(id) === p.id;
        return {
          id,
          exporter,
          temporality: exporter.temporality,
          withSelfTelemetry,
          selfDelta: withSelfTelemetry && exporter.temporality === 'delta' ? new DeltaState(telemetry.startTimeMs) : undefined,
        };
      });
      const pipeline = new Pipeline(p.id, processorSlots, stage, exporterSlots, telemetry, this.componentLogger('pipeline', p.id, p.id));
      this.pipelines.push(pipeline);
      pipelineById.set(p.id, pipeline);
    }

    // Logs pipelines: processors, the batcher, exporter slots.
    const logsPipelineById = new Map<string, LogsPipeline>();
    for (const p of logsPipelines) {
      const processors = await createProcessors(p);
      const processorSlots: LogProcessorSlot[] = processors.map((processor, i) => ({ id: p.processors[i]!, processor: processor as LogProcessor }));
      const exporterSlots: LogExporterSlot[] = p.exporters.map((id) => ({ id, exporter: exporterInstances.get(id)!.component as LogExporter }));
      const pipeline = new LogsPipeline(p.id, processorSlots, p, exporterSlots, this.opts.resource, telemetry, this.componentLogger('pipeline', p.id, p.id));
      this.logsPipelines.push(pipeline);
      logsPipelineById.set(p.id, pipeline);
    }

    // Receivers: once each (one start, one set of kernel work), fanning out to every pipeline
    // that lists them, per signal.
    const receiverIds: string[] = [];
    for (const p of config.pipelines) for (const id of p.receivers) if (!receiverIds.includes(id)) receiverIds.push(id);
    for (const id of receiverIds) {
      const entry = config.receivers.get(id)!;
      const logger = this.componentLogger('receiver', id);
      const attrs = { 'component.id': id, 'component.kind': 'receiver' };
      const metricsOf = metricsPipelines.filter((p) => p.receivers.includes(id)).map((p) => pipelineById.get(p.id)!);
      const logsOf = logsPipelines.filter((p) => p.receivers.includes(id)).map((p) => logsPipelineById.get(p.id)!);
      let metrics: FanOutConsumer | undefined;
      if (metricsOf.length > 0) {
        metrics = new FanOutConsumer(
          id,
          metricsOf,
          telemetry.counter(SELF_METRICS.receiverAccepted, 'Samples a receiver handed to its pipelines.', '{sample}', { 'component.id': id }),
          telemetry.dropped({ ...attrs, reason: DropReason.SHUTTING_DOWN }),
          telemetry.dropped({ ...attrs, reason: DropReason.INVALID_BATCH }),
          logger,
        );
        this.fanOuts.push(metrics);
      }
      let logs: LogFanOut | undefined;
      if (logsOf.length > 0) {
        logs = new LogFanOut(
          id,
          logsOf,
          telemetry.counter(SELF_METRICS.receiverAcceptedLogs, 'Log records a receiver handed to its pipelines.', '{record}', { 'component.id': id }),
          telemetry.dropped({ ...attrs, reason: DropReason.SHUTTING_DOWN, signal: 'logs' }),
          telemetry.dropped({ ...attrs, reason: DropReason.INVALID_BATCH, signal: 'logs' }),
          logger,
        );
        this.fanOuts.push(logs);
      }
      const next: Consumer = metrics ?? new DiscardingConsumer(telemetry.dropped({ ...attrs, reason: DropReason.NO_METRICS_PIPELINE }));
      const signals: Signal[] = [...(metrics ? (['metrics'] as const) : []), ...(logs ? (['logs'] as const) : [])];
      const ctx: ReceiverContext = { id, signals, logger, telemetry: telemetry.forComponent('receiver', { 'component.id': id }), next, metrics, logs };
      const receiver = await this.createOne(entry, () => (entry.factory as ReceiverFactory).create(ctx, entry.config));
      this.receivers.push({ kind: 'receiver', id, component: receiver, started: false });
    }
  }

  /** Runs one shutdown step, logging failures with the component id; tracked in pendingSteps. */
  private async step(name: string, fn: () => Promise<void>): Promise<void> {
    this.pendingSteps.add(name);
    try {
      await fn();
    } catch (err) {
      this.log.error({ step: name, error: errorText(err) }, 'shutdown step failed');
    } finally {
      this.pendingSteps.delete(name);
    }
  }

  /**
   * Stops intake and flushes: receivers shut down, queued batches drain, processors shut down,
   * each pipeline collects and exports one last time, exporters flush and shut down.
   * Never throws; failures are logged per component.
   */
  async shutdown(): Promise<void> {
    const failedStart = this.state === 'failed' || this.state === 'starting' || this.state === 'created';
    this.state = 'stopping';
    const started = <T extends Component>(list: Array<Running<T>>) => list.filter((r) => r.started);

    await Promise.all(started(this.receivers).map((r) => this.step(`receiver "${r.id}": shutdown`, () => r.component.shutdown())));
    for (const f of this.fanOuts) f.close();
    const all = [...this.pipelines, ...this.logsPipelines];
    await Promise.all(all.map((p) => this.step(`pipeline "${p.id}": drain queued batches`, () => p.whenIdle())));
    await Promise.all(started(this.processors).map((r) => this.step(`processor "${r.id}" (pipeline ${r.pipelineId}): shutdown`, () => r.component.shutdown())));
    if (!failedStart) {
      await Promise.all([
        ...this.pipelines.map((p) => this.step(`pipeline "${p.id}": final collection and export`, () => p.flush())),
        ...this.logsPipelines.map((p) => this.step(`pipeline "${p.id}": last batch and export`, () => p.flush())),
      ]);
    } else {
      await Promise.all(all.map((p) => this.step(`pipeline "${p.id}": pending exports`, () => p.exportsSettled())));
    }
    await Promise.all(
      started(this.exporters).map((r) =>
        this.step(`exporter "${r.id}": flush and shutdown`, async () => {
          try {
            await r.component.forceFlush();
          } catch (err) {
            this.log.error({ kind: 'exporter', component: r.id, error: errorText(err) }, 'exporter failed to flush');
          }
          await r.component.shutdown();
        }),
      ),
    );
    this.state = 'stopped';
  }
}
