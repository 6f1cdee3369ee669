/**
 * The taskstats receiver: exit events (ExitListener) and a live sweep every collection_interval
 * (LivePoller), attributed by ProcessMetadata and turned into samples by ProcessAccounting.
 *
 * Exit path (the hot one, ~14,000 records/s under two fork loops): parse into two reused
 * records -> metadata.fillExit -> accounting.exit -> samples batched per drain -> one
 * ctx.next.consume() per drain. It reads /proc only at the end of an exec'd process (its cgroup
 * once more, `exitReread`: process-metadata.ts) and allocates nothing per record beyond the samples.
 *
 * The metadata and accounting parts are given as constructors (factory.ts passes the real
 * ones) so that this file depends only on their shape.
 */
import {
  DropReason,
  type Consumer,
  type Logger,
  type ComponentTelemetry,
  type Receiver,
  type ReceiverContext,
  type SampleBatch,
  type SampleSchema,
} from '../../src/api/index.js';
import { endsProcess, type ProcessInfo, type TaskRecord } from './record.js';
import type { EndedProcess } from './accounting.js';
import { ExitEvents } from './exit-events.js';
import { ExitBudget } from './volume.js';
import type { TaskstatsReceiverConfig } from './config.js';
import { possibleCpus, splitCpulist } from './config.js';
import { ExitListener } from './exit-listener.js';
import { LivePoller } from './live-poller.js';
import { ProcReader, statField } from './proc-reader.js';
import { ENOENT, ESRCH } from './libc.js';
import { setupDelayAccounting } from './delayacct.js';
import { processMallocTuning, type MallocTuning } from './malloc.js';
import type { ExitDistributionsConfig } from './exit-distributions.js';
import { CgroupReconciler } from './cgroup-reconcile.js';
import { detectCgroupMounts } from './cgroup-path.js';

/** What the receiver needs of ProcessAccounting (accounting.ts). */
export interface AccountingPart {
  /** `idle`: LivePoller's flag (the record repeats the process's previous reading). */
  live(rec: TaskRecord, info: ProcessInfo, nowMs: number, out: SampleBatch, idle?: boolean): void;
  exit(thread: TaskRecord, group: TaskRecord | null, info: ProcessInfo, nowMs: number, out: SampleBatch): void;
  endSweep(nowMs: number, out: SampleBatch): void;
  /** The schema of the process samples produced. */
  readonly sampleSchema: SampleSchema;
  /** Exits only: forget processes that ended without a final exit record (see accounting.ts). */
  expireGone?(nowMs: number, out: SampleBatch, startOf: (tgid: number) => number): void;
  readonly size: number;
  /** The process the last exit() ended (null: none), for exit events. */
  readonly lastEnd?: EndedProcess | null;
}

/** What the receiver needs of ProcessMetadata (process-metadata.ts). */
export interface MetadataPart {
  start(): Promise<void>;
  /** The metadata of a live record's process (valid until the next call). */
  live(rec: TaskRecord): ProcessInfo;
  /** The metadata of an exit record's process, forgotten when processEnded (valid until the next call). */
  exit(rec: TaskRecord, processEnded: boolean): ProcessInfo;
  shutdown(): Promise<void>;
  readonly size: number;
}

export interface ReceiverParts {
  createAccounting(o: { perProcess: boolean; exitDistributions?: ExitDistributionsConfig; logger: Logger; telemetry: ComponentTelemetry }): AccountingPart;
  createMetadata(o: {
    cgroupV1Hierarchy?: string;
    commandLine: boolean;
    executablePath: boolean;
    procRoot?: string;
    logger: Logger;
    telemetry: ComponentTelemetry;
  }): MetadataPart;
}

type Counter = { add(value: number): void };

/**
 * On Linux 6.18 an exit listener in another network namespace than the initial one is
 * acknowledged and then receives nothing (events are unicast in the initial netns). When pid 1's
 * namespace is visible (hostPID) and differs from ours, say so.
 */
export function networkNamespaceWarning(procRoot = '/proc'): string | undefined {
  const reader = new ProcReader(procRoot);
  const mine = reader.readLink(`${procRoot}/self/ns/net`);
  const init = reader.readLink(`${procRoot}/1/ns/net`);
  // pid 1's namespace not readable (no hostPID, or no ptrace access): nothing to compare.
  if (mine === '' || init === '' || mine === init) return undefined;
  return `this process is not in the initial network namespace (${mine} vs pid 1's ${init}): the kernel delivers exit events only there, so none will arrive. Run on the host network (hostNetwork: true in Kubernetes)`;
}

/** /proc/stat btime: the boot time, seconds since the epoch (read once). */
let bootTimeSec = -1;
/** USER_HZ: the unit of the start time in /proc/PID/stat (100 on every architecture we run on). */
const CLK_TCK = 100;

/**
 * Start time (seconds since the epoch) of the process or thread `tgid` from /proc/PID/stat, -1
 * when there is none, -2 when it cannot be told (unreadable /proc).
 */
export function processStartSec(tgid: number, procRoot = '/proc'): number {
  const reader = procRoot === '/proc' ? (startReader ??= new ProcReader()) : new ProcReader(procRoot);
  const buf = (statBuf ??= Buffer.allocUnsafe(1024));
  const n = reader.readOf(tgid, STAT_NAME, buf);
  if (n < 0) return reader.lastErrno === ENOENT || reader.lastErrno === ESRCH ? -1 : -2;
  let boot = procRoot === '/proc' ? bootTimeSec : -1;
  if (boot < 0) {
    const m = /^btime (\d+)$/m.exec(reader.readText(`${procRoot}/stat`) ?? '');
    if (!m) return -2;
    boot = Number(m[1]);
    if (procRoot === '/proc') bootTimeSec = boot;
  }
  const startTicks = statField(buf, n, 22); // starttime, clock ticks since boot
  return startTicks >= 0 ? boot + startTicks / CLK_TCK : -2;
}
let startReader: ProcReader | undefined;
let statBuf: Buffer | undefined;
const STAT_NAME = Buffer.from('/stat');

export class TaskstatsReceiver implements Receiver {
  private readonly accounting: AccountingPart;
  private readonly metadata: MetadataPart;
  /** cpu.stat reconciliation and PSI of the reported cgroups (null: off, or no cgroup v2). */
  private readonly cgroups: CgroupReconciler | null;
  private listeners: ExitListener[] = [];
  private poller: LivePoller | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private batch: SampleBatch = [];
  private stopped = false;
  private lastSweepSeconds = 0;
  private malloc: MallocTuning | null = null;
  private lastTrimSeconds = 0;
  private readonly cpus: string;
  /** Where samples go; null when the receiver is in logs pipelines only (no metrics work then). */
  private readonly metrics: Consumer | null;
  /** Exit events, when the receiver is in a logs pipeline. */
  private readonly events: ExitEvents | null = null;
  private readonly budget: ExitBudget | null = null;
  private summaryTimer: NodeJS.Timeout | null = null;

  private readonly exitsReceived: Counter;
  private readonly recordsParsed: Counter;
  private readonly parseErrors: Counter;
  private readonly kernelDrops: Counter;
  private readonly liveRecords: Counter;
  private readonly vanished: Counter;

  constructor(
    private readonly ctx: ReceiverContext,
    private readonly config: TaskstatsReceiverConfig,
    parts: ReceiverParts,
  ) {
    const t = ctx.telemetry;
    this.cpus = config.cpus === 'all' ? possibleCpus() : config.cpus.replace(/\s+/g, '');
    this.accounting = parts.createAccounting({ perProcess: config.per_process, exitDistributions: config.histograms, logger: ctx.logger, telemetry: t });
    this.metadata = parts.createMetadata({
      cgroupV1Hierarchy: config.metadata.cgroup_v1_hierarchy,
      commandLine: config.metadata.command_line,
      executablePath: config.metadata.executable_path,
      logger: ctx.logger,
      telemetry: t,
    });
    this.cgroups = this.createCgroupReconciler();
    this.exitsReceived = t.counter('exits_received', 'Exit events received from the kernel (one per exiting thread)', '{exit}');
    this.recordsParsed = t.counter('records_parsed', 'Taskstats records parsed (exit thread and group records, live records)', '{record}');
    this.parseErrors = t.counter('parse_errors', 'Netlink datagrams that could not be parsed', '{datagram}');
    this.kernelDrops = t.counter(
      'kernel_drops',
      'Times the kernel dropped exit events because the receive buffer was full (ENOBUFS); the number of events lost each time is unknown',
      '{incident}',
    );
    this.liveRecords = t.counter('live_records', 'Processes read by the live sweeps', '{process}');
    this.vanished = t.counter('live_vanished', 'Processes that ended between the /proc listing and their query (not an error)', '{process}');
    t.gauge('processes_tracked', 'Processes the accounting table holds', () => this.accounting.size, '{process}');
    t.gauge('live_sweep_duration', 'Duration of the last live sweep', () => this.lastSweepSeconds, 's');
    t.gauge('malloc_trim_duration', 'Duration of the last malloc_trim (once per collection cycle)', () => this.lastTrimSeconds, 's');
    t.gauge('metadata_cache_size', 'Processes the metadata cache holds', () => this.metadata.size, '{process}');
    this.metrics = ctx.metrics ?? (ctx.logs ? null : ctx.next);
    if (ctx.logs) {
      const e = config.events;
      const perSecond = (b: number | 'unlimited') => (b === 'unlimited' ? Infinity : b);
      this.budget = new ExitBudget({
        failuresPerSecond: perSecond(e.failures_per_second),
        successesPerSecond: perSecond(e.successes_per_second),
        maxWorkloads: e.summary_workloads,
      });
      this.events = new ExitEvents({ threads: e.threads, budget: this.budget });
      this.suppressed = t.counter('exit_events_suppressed', 'Exit events held back by the per-second budgets (events.*_per_second), by outcome', '{event}');
    }
  }

  private createCgroupReconciler(): CgroupReconciler | null {
    const c = this.config.cgroups;
    // Exits only: a live process's CPU reaches the samples at its exit, after cpu.stat showed it.
    const reconcile = c.reconcile && this.config.live;
    if (c.reconcile && !this.config.live) {
      this.ctx.logger.info('cgroup reconciliation is off with live: false (live processes are only counted at their exit)', { key: 'cgroups_reconcile_off' });
    }
    if (!reconcile && !c.pressure) return null;
    let root: string | undefined;
    try {
      root = detectCgroupMounts().v2;
    } catch {
      root = undefined;
    }
    if (root === undefined) {
      this.ctx.logger.info('no cgroup v2 hierarchy mounted: cgroup reconciliation and pressure are off', { key: 'cgroups_no_v2' });
      return null;
    }
    return new CgroupReconciler({
      root,
      config: { reconcile, pressure: c.pressure },
      processSchema: this.accounting.sampleSchema,
      logger: this.ctx.logger,
      telemetry: this.ctx.telemetry,
    });
  }

  async start(): Promise<void> {
    setupDelayAccounting(this.config.delay_accounting, this.ctx.logger);
    this.malloc = processMallocTuning(this.ctx.logger);
    await this.metadata.start();
    try {
      if (this.config.live && this.metrics !== null) {
        this.poller = new LivePoller();
        this.poller.open(); // fails early and clearly without CAP_NET_ADMIN
      }
      if (this.config.exits) {
        const handler = {
          exit: (thread: TaskRecord, group: TaskRecord | null) => this.onExit(thread, group),
          drained: () => this.flushExits(),
          kernelDrop: () => this.onKernelDrop(),
          parseError: (status: number, errno: number) => this.onParseError(status, errno),
        };
        // Several sockets, each for a subset of the CPUs with its own receive buffer (what the
        // kernel documentation suggests against drops), all feeding the one accounting table.
        for (const cpus of splitCpulist(this.cpus, this.config.exit_listeners)) {
          const listener = new ExitListener({ cpus, receiveBuffer: this.config.receive_buffer, handler });
          this.listeners.push(listener);
          listener.start();
          this.ctx.logger.info('listening to exit events', { cpus, receive_buffer: listener.receiveBufferBytes });
        }
        const netns = networkNamespaceWarning();
        if (netns) this.ctx.logger.warn(netns, { key: 'netns' });
      }
    } catch (err) {
      await this.shutdown();
      throw err;
    }
    this.timer = setInterval(() => this.collect(), this.config.collection_interval);
    if (this.poller) this.collect();
    if (this.budget) {
      this.lastSummaryMs = Date.now();
      this.summaryTimer = setInterval(() => this.summarizeEvents(), this.config.events.summary_interval);
    }
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const l of this.listeners) l.stop();
    this.flushExits();
    if (this.summaryTimer) clearInterval(this.summaryTimer);
    this.summaryTimer = null;
    if (this.budget) this.summarizeEvents();
    this.listeners = [];
    this.poller?.close(); // a sweep in progress notices and ends at its next batch
    if (this.sweeping) await this.sweeping.catch(() => undefined);
    this.poller = null;
    this.cgroups?.close();
    await this.metadata.shutdown();
  }

  /** Counters of the exit listeners, summed (for tests and the benchmark). */
  get exitStats(): { listeners: number; datagrams: number; records: number; parseErrors: number; kernelDrops: number; pollErrors: number } | null {
    if (this.listeners.length === 0) return null;
    const t = { listeners: this.listeners.length, datagrams: 0, records: 0, parseErrors: 0, kernelDrops: 0, pollErrors: 0 };
    for (const l of this.listeners) {
      t.datagrams += l.datagrams;
      t.records += l.records;
      t.parseErrors += l.parseErrors;
      t.kernelDrops += l.kernelDrops;
      t.pollErrors += l.pollErrors;
    }
    return t;
  }

  private onExit(thread: TaskRecord, group: TaskRecord | null): void {
    // A throw here would escape from the poll callback and end the agent: contain it per record.
    try {
      this.handleExit(thread, group);
    } catch (err) {
      this.ctx.telemetry.dropped(1, DropReason.EXIT_RECORD_ERROR);
      this.ctx.logger.error(`exit record of pid ${thread.pid} (${thread.comm}) failed: ${(err as Error).message}`, { key: 'exit_record_error' });
    }
  }

  private handleExit(thread: TaskRecord, group: TaskRecord | null): void {
    // The metadata is the thread's process's (the group record carries only the group's
    // counters); accounting decides the end by the same endsProcess().
    const info = this.metadata.exit(thread, endsProcess(thread, group));
    const now = Date.now();
    this.accounting.exit(thread, group, info, now, this.batch);
    if (this.events) this.events.exit(thread, info, this.accounting.lastEnd ?? null, now);
  }

  private flushExits(): void {
    // The listeners' own counters are the truth; add what changed since the last flush.
    this.syncListenerCounters();
    const logs = this.events?.take();
    if (logs) this.ctx.logs!.consume(logs);
    if (this.batch.length === 0) return;
    if (this.metrics === null) {
      this.batch.length = 0; // logs pipelines only: the samples were only the means to the totals
      return;
    }
    const b = this.batch;
    this.batch = [];
    this.cgroups?.observe(b);
    this.metrics.consume(b);
  }

  private suppressed: ReturnType<ComponentTelemetry['counter']> | null = null;
  private suppressedSeen = { successes: 0, failures: 0 };
  private lastSummaryMs = 0;
  private static readonly SUCCESS = Object.freeze({ outcome: 'success' });
  private static readonly FAILURE = Object.freeze({ outcome: 'failure' });

  /** Every summary_interval: what the budgets held back, downstream, in self-telemetry and the log. */
  private summarizeEvents(): void {
    const budget = this.budget!;
    const held = budget.pending();
    const now = Date.now();
    // The interval covered: summary_interval, or less for the last one at shutdown.
    const intervalS = Math.round(now - this.lastSummaryMs) / 1000;
    this.lastSummaryMs = now;
    const records = budget.summarize(now, intervalS);
    const t = budget.totals;
    const c = this.suppressed!;
    if (t.suppressedSuccesses > this.suppressedSeen.successes) c.add(t.suppressedSuccesses - this.suppressedSeen.successes, TaskstatsReceiver.SUCCESS);
    if (t.suppressedFailures > this.suppressedSeen.failures) c.add(t.suppressedFailures - this.suppressedSeen.failures, TaskstatsReceiver.FAILURE);
    this.suppressedSeen = { successes: t.suppressedSuccesses, failures: t.suppressedFailures };
    if (records.length === 0) return;
    this.ctx.logger.warn(
      `exit events over budget: ${held.successes} successes and ${held.failures} failures held back in the last ${intervalS} s ` +
        `(one process.exit.suppressed record per workload says which); raise events.successes_per_second / events.failures_per_second to keep more`,
      { key: 'exit_events_suppressed', workloads: held.workloads },
    );
    this.ctx.logs!.consume(records);
  }

  private seen = { records: 0, datagrams: 0 };
  private syncListenerCounters(): void {
    let datagrams = 0;
    let records = 0;
    for (const l of this.listeners) {
      datagrams += l.datagrams;
      records += l.records;
    }
    const d = datagrams - this.seen.datagrams;
    const r = records - this.seen.records;
    if (d > 0) this.exitsReceived.add(d);
    if (r > 0) this.recordsParsed.add(r);
    this.seen.datagrams = datagrams;
    this.seen.records = records;
  }

  private onKernelDrop(): void {
    this.kernelDrops.add(1);
    // The host's logger rate-limits it (key); kernel_drops counts every incident.
    this.ctx.logger.warn(
      'the kernel dropped exit events: the receive buffer overflowed (ENOBUFS), so some processes that ended are not counted. ' +
        'Avoid it with a bigger receive_buffer (e.g. 64MiB), or more exit_listeners (each listens to a subset of the CPUs with a buffer of its own)',
      {
        key: 'kernel_drops',
        cpus: this.cpus,
        exit_listeners: this.listeners.length,
        receive_buffer: this.listeners[0]?.receiveBufferBytes,
      },
    );
  }

  private onParseError(status: number, errno: number): void {
    this.parseErrors.add(1);
    this.ctx.logger.warn('unparseable taskstats datagram', { key: 'parse_error', status, errno });
  }

  /** One collection cycle: the live sweep (when enabled), then collectionDone(). */
  private collect(): void {
    if (this.stopped) return;
    // What the previous cycle freed (its records, the export's buffers) goes back to the kernel.
    if (this.malloc) this.lastTrimSeconds = this.malloc.trim();
    if (!this.poller) {
      // No live sweep ends the state of processes whose final exit record was lost: expire them.
      const out: SampleBatch = [];
      if (this.accounting.size > 0) this.accounting.expireGone?.(Date.now(), out, processStartSec);
      this.flushExits();
      if (this.metrics === null) return;
      // Pressure only: reconciliation needs live sweeps.
      this.cgroups?.read();
      this.cgroups?.emit(Date.now(), out);
      if (out.length > 0) this.metrics.consume(out);
      this.metrics.collectionDone();
      return;
    }
    if (this.sweeping) return; // the previous sweep is still running: skip this tick
    this.sweeping = this.sweep().finally(() => {
      this.sweeping = null;
    });
  }

  private async sweep(): Promise<void> {
    const poller = this.poller!;
    const out: SampleBatch = [];
    let now = Date.now();
    // cpu.stat first: the sweep then reads processes later than the cgroup was read, so the
    // unaccounted remainder can lag but never run ahead (cgroup-reconcile.ts).
    this.cgroups?.read();
    // Exit records queued so far first, so that the sweep knows those processes ended and does not
    // count their teardown as life (ProcessAccounting's recently-ended table).
    for (const l of this.listeners) l.drainNow();
    try {
      const stats = await poller.sweep((rec, idle) => {
        try {
          this.accounting.live(rec, this.metadata.live(rec), now, out, idle);
        } catch (err) {
          this.ctx.telemetry.dropped(1, DropReason.LIVE_RECORD_ERROR);
          this.ctx.logger.error(`live record of pid ${rec.pid} (${rec.comm}) failed: ${(err as Error).message}`, { key: 'live_record_error' });
        }
      });
      this.lastSweepSeconds = stats.durationMs / 1000;
      this.liveRecords.add(stats.records);
      this.recordsParsed.add(stats.parsed);
      if (stats.vanished > 0) this.vanished.add(stats.vanished);
      if (stats.errors > 0) this.ctx.logger.warn('live sweep: replies missing or unexpected', { key: 'sweep_errors', errors: stats.errors });
    } catch (err) {
      this.ctx.logger.error(`live sweep failed: ${(err as Error).message}`, { key: 'sweep_failed' });
    }
    if (this.stopped) return;
    // The kernel queues a process's exit record in do_exit, before the process leaves /proc, so
    // every process the sweep no longer listed has its record queued by now: take them all before
    // endSweep decides which processes are gone. Otherwise a listener behind the sweep (a loaded
    // machine) has a process forgotten as lost, and its late record then counts it again from
    // zero. It also keeps the cgroup remainder from holding CPU a record is about to bring.
    for (const l of this.listeners) l.drainNow();
    now = Date.now();
    this.accounting.endSweep(now, out);
    // Exits waiting in the current batch go first: they happened before the sweep ended.
    this.flushExits();
    this.cgroups?.observe(out);
    if (out.length > 0) this.metrics!.consume(out);
    if (this.cgroups) {
      const fromCgroups: SampleBatch = [];
      this.cgroups.emit(now, fromCgroups);
      if (fromCgroups.length > 0) this.metrics!.consume(fromCgroups);
    }
    this.metrics!.collectionDone();
  }
}
