/**
 * ProcessAccounting: TaskRecords (live readings and exit records) to Samples whose counter values
 * are growth, so that any number of them can be summed by attribute set without counting anything
 * twice or losing anything.
 *
 * ## The rule
 * Per process (thread group, identified by (tgid, start time)) we keep `reported`: the cumulative
 * value up to which each counter has been emitted. A live reading emits `reading - reported` and
 * raises `reported`; the end of the process emits `total - reported` with `total` the process's
 * final totals. So the emitted growth always adds up to `total`, whatever happened in between, as
 * long as (a) live readings never exceed the final total and (b) the final total is right.
 * A reading lower than `reported` (a zombie read as zeros, a kernel frame that briefly counts a
 * dying thread twice) emits 0 and leaves `reported` as it is: decreases are never emitted.
 *
 * ## Which record supplies which field at the end (kernel/taskstats.c, kernel/tsacct.c; seen on 6.18)
 * The kernel sends one AGGR_PID record per ending thread with that thread's own values. The last
 * thread of a process has AGROUP (0x20) set in ac_flag (struct version >= 12); when the process
 * ever had more than one thread, the same datagram carries an AGGR_TGID record: the kernel's
 * signal->stats, into which every ending thread's CPU run time and delays (and, on recent kernels
 * such as 6.18, utime/stime and context switches) were added. Memory integrals, faults and I/O are
 * per thread and are NOT in the TGID record.
 *
 * So the final total of each counter is the larger of two lower bounds of the truth:
 *  - the sum of the exit records of all the process's threads seen ending (kept in `deadThreads`
 *    as threads end; exact for every field when all thread exits were seen), and
 *  - the TGID record's value (exact for the fields the kernel accumulates there, including
 *    threads that ended before the agent started; 0 for fields it does not accumulate).
 * For a single-threaded process both are its one PID record.
 *
 * Why the live frame fits: a live reading is the TGID query (CPU, delays, context switches summed
 * over living and dead threads: the same signal->stats plus the living threads) completed by the
 * receiver with whole-process faults and I/O (/proc/PID/stat and /proc/PID/io include dead
 * threads). Both are <= the final totals and grow monotonically, which is all the rule needs. A
 * field the receiver leaves at 0 in live readings is simply reported at the end.
 *
 * Thread exits (no AGROUP) are not emitted when they arrive: their growth is emitted by the next
 * live reading (the whole-process frame includes them) or at the end (through `deadThreads`).
 *
 * CPU time: process.cpu.time is the scheduler's exact runtime (cpu_run_virtual_total, i.e.
 * sum_exec_runtime) split into user and system by the ac_utime : ac_stime ratio, monotonic per mode
 * (the kernel's cputime_adjust, see splitCpuTime). ac_utime/ac_stime alone are sampled at scheduler
 * ticks and miss or overcount short processes by several percent (docs/performance.md).
 *
 * Known limit: for a multi-threaded process that already had dead threads when the agent started,
 * per-thread fields (I/O, faults, memory integrals) of those dead threads are in the live frame but
 * not in `deadThreads`; the final remainder of those fields can then be too small (it is clamped
 * at 0, never negative), by at most what the process did in its last interval.
 *
 * One file over 500 lines on purpose: the rule above is one invariant over one table of process
 * states, and every method here keeps it; split, no part could be checked alone.
 */
import { constants as osConstants } from 'node:os';
import {
  ATTR,
  DropReason,
  type Attributes,
  type ComponentTelemetry,
  type Logger,
  type Sample,
  type SampleBatch,
  type SampleSchema,
} from '../../src/api/index.js';
import { DELAY_KINDS, FIELD_NAMES, TASK_RECORD_FIELDS, compileFromTable, endsProcess, type FieldSpec, type ProcessInfo, type TaskRecord } from './record.js';
import { PROCESS_SCHEMA, PROCESS_SCHEMA_PER_PROCESS, RAW, RAW_COUNTERS, RAW_SCALE, TASKSTATS_ATTR, VALUE } from './schema.js';
import { fillExitObservations, withExitDistributions, type ExitDistributionsConfig } from './exit-distributions.js';

export interface AccountingOptions {
  /** Add process.pid and process.creation.time to the attributes (one series per process). */
  perProcess: boolean;
  /** Histograms of ended processes appended to the schema (exit-distributions.ts); off when absent or disabled. */
  exitDistributions?: ExitDistributionsConfig;
  logger: Logger;
  telemetry: ComponentTelemetry;
}

/** A live reading whose CPU run time is this much below what was reported is another process. */
const CPU_BACKWARDS_NS = 10e6;
/** Slots of the table of recently ended processes (3 x 4 bytes each). */
const ENDED_SLOTS = 1 << 16;
/** Bound on the cached (cgroup, comm) attribute objects in aggregate mode. */
const ATTRIBUTE_CACHE_LIMIT = 20_000;
/**
 * ac_btime (now - elapsed, truncated) and a start time derived from /proc (boot time + start
 * ticks) may differ by this much for the same process.
 */
const START_TIME_TOLERANCE_SEC = 2;

/**
 * Looks a process up by tgid for expireGone: its start time in seconds since the epoch, or -1 when
 * no process has that tgid (any other negative value: unknown, keep it).
 */
export type ProcessStartLookup = (tgid: number) => number;

const ZERO_COUNTERS = new Float64Array(RAW_COUNTERS);
/** Bytes of each store that sample value arrays are cut from (ValueSlabs). */
const SLAB_BYTES = 1 << 16;

/**
 * Sample value arrays cut from shared 64 KiB stores. A Float64Array of more than 8 values gets an
 * off-heap store of its own, which cost 1-3 us to allocate and collect here (the largest part of
 * the accounting's cost per exit, bench/workload/micro.mjs); a view into a shared store is an
 * on-heap object only (~0.3 us). Each sample owns its own range (zeros: a store is never reused);
 * a store is freed when the last sample viewing it is.
 */
class ValueSlabs {
  private store = new ArrayBuffer(SLAB_BYTES);
  private used = 0;

  take(n: number): Float64Array {
    const bytes = n * 8;
    if (this.used + bytes > SLAB_BYTES) {
      if (bytes > SLAB_BYTES) return new Float64Array(n);
      this.store = new ArrayBuffer(SLAB_BYTES);
      this.used = 0;
    }
    const v = new Float64Array(this.store, this.used, n);
    this.used += bytes;
    return v;
  }
}

const SIGNAL_NAMES: Map<number, string> = (() => {
  const m = new Map<number, string>();
  for (const [name, num] of Object.entries(osConstants.signals)) if (!m.has(num)) m.set(num, name);
  return m;
})();

/** What ProcessAccounting knew of a process when its last thread ended (reused: copy to keep). */
export interface EndedProcess {
  /**
   * The process's final totals in RAW order and raw units, except user and system: nanoseconds,
   * the scheduler's precise runtime split by the tick ratio (as process.cpu.time).
   */
  totals: Float64Array;
  /** Threads seen ending, the last included (threads that ended before the agent started are not). */
  threads: number;
  /** Process start, seconds since the epoch (the leader's ac_btime when its record was seen). */
  startTimeSec: number;
  /** The sample attributes (the leader's name, the cgroup) and context (command line, executable path). */
  attributes: Attributes;
  context: Attributes | undefined;
}

interface ProcessState {
  readonly tgid: number;
  /** Process start, seconds since the epoch; 0 while unknown (only worker-thread exits seen). */
  startTimeSec: number;
  /**
   * While startTimeSec is unknown: the earliest start of its threads seen ending (the process
   * started no later than that); 0 when none is known.
   */
  startedBySec: number;
  /** Cumulative value, per raw counter, up to which growth has been emitted. */
  readonly reported: Float64Array;
  /** Sum of the exit records of this process's threads that ended (allocated on the first). */
  deadThreads: Float64Array | null;
  /** Threads seen ending before the last one. */
  threadsEnded: number;
  comm: string;
  cgroup: string;
  cmdline: string;
  exePath: string;
  attributes: Attributes;
  context: Attributes | undefined;
  /** Per-process mode: peak memory (KiB) and worst delays (ns) seen, for the gauges. */
  peakRssKb: number;
  peakVmKb: number;
  delayMaxNs: Float64Array | null;
  /** Sweep in which the process was last seen (live or by a thread exit). */
  sweep: number;
  /** A sample with the current attributes was emitted. */
  sampled: boolean;
  /** The zero sample of this process's idle readings, reused from one sweep to the next (see liveIdle). */
  idleSample: Sample | null;
}

/** Which field of a record supplies each raw counter (from the field table), as [field, RAW index]. */
export const COUNTER_FIELDS: readonly (readonly [keyof TaskRecord, number])[] = FIELD_NAMES.flatMap((k) => {
  const f: FieldSpec<unknown> = TASK_RECORD_FIELDS[k];
  if (f.counter === undefined) return [];
  return [[k, RAW[f.counter] + (f.delay !== undefined ? DELAY_KINDS.indexOf(f.delay[0]) : 0)] as const];
});

/** Copy a record's cumulative counters into `d` (RAW order); negative / NaN inputs read as 0. */
const readCounters = compileFromTable(
  ['r', 'd'],
  [...COUNTER_FIELDS.map(([k, i]) => `d[${i}] = r.${k};`), `for (let i = 0; i < ${RAW_COUNTERS}; i++) if (!(d[i] > 0)) d[i] = 0;`].join('\n'),
) as (r: TaskRecord, d: Float64Array) => void;

/**
 * Turn the raw user/system ticks (µs) in `c` into user/system nanoseconds that add up to the
 * scheduler's precise runtime, never going below what `prev` (reported) holds. This is the
 * kernel's own cputime_adjust() (kernel/sched/cputime.c, used for /proc/PID/stat and getrusage):
 * ac_utime/ac_stime are sampled at scheduler ticks, so a process of 10 ms may show 0 or 4 ms,
 * while cpu_run_virtual_total (sum_exec_runtime) is exact; the ticks only give the ratio.
 * Monotonic per process, and user + system == runtime, so growth sums to the exact runtime.
 * Without a runtime (a kernel without delay accounting support) the ticks are used as they are.
 */
function splitCpuTime(c: Float64Array, prev: Float64Array): void {
  const prevUser = prev[RAW.USER]!;
  const prevSystem = prev[RAW.SYSTEM]!;
  const rtime = c[RAW.RUN_TIME]!;
  const u = c[RAW.USER]!;
  const s = c[RAW.SYSTEM]!;
  if (!(rtime > 0)) {
    c[RAW.USER] = Math.max(prevUser, u * 1000);
    c[RAW.SYSTEM] = Math.max(prevSystem, s * 1000);
    return;
  }
  if (rtime <= prevUser + prevSystem) {
    // Nothing new (or a reading behind the last one): no growth.
    c[RAW.USER] = prevUser;
    c[RAW.SYSTEM] = prevSystem;
    return;
  }
  let system = s === 0 ? 0 : u === 0 ? rtime : (rtime * s) / (u + s);
  if (system < prevSystem) system = prevSystem;
  let user = rtime - system;
  if (user < prevUser) {
    user = prevUser;
    system = rtime - user;
  }
  c[RAW.USER] = user;
  c[RAW.SYSTEM] = system;
}

/** Worst single delay per kind (ns, DELAY_KINDS order), -1 where the struct version has none. Made from the field table. */
const readDelayMax = compileFromTable(
  ['r', 'd'],
  FIELD_NAMES.flatMap((k) => {
    const f: FieldSpec<unknown> = TASK_RECORD_FIELDS[k];
    return f.delay?.[1] === 'max_ns' ? [`d[${DELAY_KINDS.indexOf(f.delay[0])}] = r.${k};`] : [];
  }).join('\n'),
) as (r: TaskRecord, d: Float64Array) => void;

// Processes ending in a burst mostly started in the same second: remember the last conversion.
let lastRfc3339Sec = -1;
let lastRfc3339 = '';
function rfc3339(sec: number): string {
  if (sec !== lastRfc3339Sec) {
    lastRfc3339 = new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
    lastRfc3339Sec = sec;
  }
  return lastRfc3339;
}

export class ProcessAccounting {
  private readonly perProcess: boolean;
  private readonly logger: Logger;
  private readonly telemetry: ComponentTelemetry;
  private readonly schema: SampleSchema;
  private readonly valueCount: number;
  /** Index of the first exit-distribution value (-1: none); the gauges of per-process mode end there. */
  private readonly observationsAt: number;
  private readonly allDelays: boolean;
  /** Live processes (and processes known only by thread exits so far), by tgid. */
  private readonly table = new Map<number, ProcessState>();
  /** Processes whose tgid was taken by a newer process before their exit record arrived. */
  private readonly replaced = new Map<number, ProcessState>();
  private sweep = 0;
  /**
   * Processes whose end (final exit record) was handled, for endedRecently: the kernel sends the
   * record at the start of do_exit, and the process stays visible, with its CPU still growing,
   * while it tears itself down (exit_mm, exit_files, exit_notify: 0.1 ms for a small process,
   * seconds for a huge one); a live sweep that reads it then must not count it again as a new
   * process. Direct-mapped by the tgid's low bits (the latest end per slot: fixed memory whatever
   * the exit rate; with pid_max <= ENDED_SLOTS no two tgids share a slot), allocated by the first
   * live reading (exits-only mode needs none).
   */
  private endedTgid: Int32Array | null = null;
  private endedStartSec = new Uint32Array(0);
  private endedSweep = new Int32Array(0);
  private readonly lostCounter: { add(value: number): void };
  private readonly afterEndCounter: { add(value: number): void };
  private readonly reuseCounter: { add(value: number): void };
  /** Aggregate mode: cgroup -> comm -> shared attributes object. */
  private readonly attributeCache = new Map<string, Map<string, Attributes>>();
  private attributeCacheSize = 0;
  private readonly exitCodeAttributes = new Map<number, Attributes>();
  private readonly exitSignalAttributes = new Map<number, Attributes>();
  private readonly scratch = new Float64Array(RAW_COUNTERS);
  private readonly scratchGroup = new Float64Array(RAW_COUNTERS);
  private readonly scratchDelayMax = new Float64Array(8);
  private readonly slabs = new ValueSlabs();
  private readonly endedProcess: EndedProcess = { totals: this.scratch, threads: 0, startTimeSec: 0, attributes: {}, context: undefined };
  /**
   * The process the last exit() ended, null when it ended none (a thread of a living process, or
   * a record it could not use). Valid until the next call: exit events read it right after.
   */
  lastEnd: EndedProcess | null = null;

  constructor(o: AccountingOptions) {
    this.perProcess = o.perProcess;
    this.logger = o.logger;
    this.telemetry = o.telemetry;
    const base = o.perProcess ? PROCESS_SCHEMA_PER_PROCESS : PROCESS_SCHEMA;
    const distributions = o.exitDistributions?.enabled === true ? o.exitDistributions : undefined;
    this.schema = distributions ? withExitDistributions(base, distributions) : base;
    this.observationsAt = distributions ? base.metrics.length : -1;
    this.allDelays = distributions?.all_delays === true;
    this.valueCount = this.schema.metrics.length;
    this.lostCounter = o.telemetry.counter(
      'processes_lost',
      'Processes forgotten without an exit record (exit events lost, e.g. to ENOBUFS); their last interval is not counted',
      '{process}',
    );
    this.afterEndCounter = o.telemetry.counter(
      'live_after_exit',
      'Live readings of a process whose final exit record was already handled (read while it tore itself down, or as a zombie): ignored, not counted twice',
      '{process}',
    );
    this.reuseCounter = o.telemetry.counter('pid_reuses', 'Live readings of a new process under a tgid still tracked for an older one', '{process}');
  }

  /** The schema of the samples produced (depends on perProcess). */
  get sampleSchema() {
    return this.schema;
  }

  /** Number of processes tracked. */
  get size(): number {
    return this.table.size + this.replaced.size;
  }

  /** Is a process with this tgid tracked (alive, or ended and not yet forgotten)? */
  tracks(tgid: number): boolean {
    return this.table.has(tgid) || this.replaced.has(tgid);
  }

  /**
   * A live reading of a whole process (see the file comment for the frame it must be in), with
   * its metadata. Appends one sample with the growth since this process's previous sample (zeros
   * included: a sample per live process per sweep keeps its series fresh in the metrics stage).
   */
  live(rec: TaskRecord, info: ProcessInfo, nowMs: number, out: SampleBatch, idle = false): void {
    const tgid = rec.tgid > 0 ? rec.tgid : rec.pid;
    if (!(tgid > 0)) {
      this.telemetry.dropped(1, DropReason.RECORD_WITHOUT_PID);
      return;
    }
    if (idle && this.liveIdle(tgid, rec, info, nowMs, out)) return;
    const counters = this.scratch;
    readCounters(rec, counters);
    let st = this.table.get(tgid);
    if (st !== undefined && !this.isSameProcess(st, rec.startTimeSec, counters)) {
      // The tgid now names another process: the old one ended and its exit record is late or
      // lost. Keep it aside for one sweep so that a late exit record still finds it.
      this.reuseCounter.add(1);
      this.logger.debug('taskstats: tgid reused by a new process', { tgid, oldStart: st.startTimeSec, newStart: rec.startTimeSec });
      const previous = this.replaced.get(tgid);
      if (previous !== undefined) this.forget(previous, nowMs, out);
      st.sweep = this.sweep;
      this.replaced.set(tgid, st);
      st = undefined;
    }
    if (st === undefined) {
      if (this.endedTgid === null) {
        this.endedTgid = new Int32Array(ENDED_SLOTS);
        this.endedStartSec = new Uint32Array(ENDED_SLOTS);
        this.endedSweep = new Int32Array(ENDED_SLOTS);
      } else if (this.endedRecently(tgid, rec.startTimeSec)) {
        // The process already ended (its exit record was handled) and is still tearing itself
        // down: everything it did is counted. A new process that reused the tgid within the same
        // second is only counted a sweep or two later, never lost.
        this.afterEndCounter.add(1);
        return;
      }
      st = this.newState(tgid, rec.startTimeSec, rec, info);
      this.table.set(tgid, st);
    } else {
      if (st.startTimeSec === 0) st.startTimeSec = rec.startTimeSec;
      const before = st.attributes;
      this.updateIdentity(st, rec.comm, info.cgroup, info.cmdline, info.exePath);
      if (this.perProcess && st.attributes !== before && st.sampled) this.endSeries(before, st.context, nowMs, out);
    }
    st.sweep = this.sweep;
    st.sampled = true;

    const values = this.newValues();
    const reported = st.reported;
    splitCpuTime(counters, reported);
    for (let i = 0; i < RAW_COUNTERS; i++) {
      const growth = counters[i]! - reported[i]!;
      if (growth > 0) {
        values[i] = growth * RAW_SCALE[i]!;
        reported[i] = counters[i]!;
      }
    }
    if (this.perProcess) this.fillGauges(st, rec, values);
    out.push({ schema: this.schema, attributes: st.attributes, context: st.context, values, final: false, timeMs: nowMs });
  }

  /**
   * `idle` (LivePoller): the record's counters are the ones this process's previous reading
   * delivered. When that reading was this state's, nothing grew and nothing of its identity
   * changed: the zero sample without reading the counters again. Otherwise (a state made since,
   * another start time, new metadata): false, and live() takes the full path.
   */
  private liveIdle(tgid: number, rec: TaskRecord, info: ProcessInfo, nowMs: number, out: SampleBatch): boolean {
    const st = this.table.get(tgid);
    if (
      st === undefined ||
      !st.sampled ||
      st.sweep !== this.sweep - 1 ||
      st.startTimeSec !== rec.startTimeSec ||
      st.comm !== rec.comm ||
      (this.perProcess && st.attributes[ATTR.START_TIME] === undefined) ||
      (info.cgroup !== '' && info.cgroup !== st.cgroup) ||
      (info.cmdline !== '' && info.cmdline !== st.cmdline) ||
      (info.exePath !== '' && info.exePath !== st.exePath)
    ) {
      return false;
    }
    st.sweep = this.sweep;
    // Most processes sleep: their sample is the same object every sweep, every field set again
    // (a processor may have replaced its attributes or values in place), so an idle process
    // allocates nothing. The stage and the processors are done with a batch before the next
    // sweep; a sample is never kept.
    let sample = st.idleSample;
    if (sample === null) {
      sample = st.idleSample = {
        schema: this.schema,
        attributes: st.attributes,
        context: st.context,
        values: new Float64Array(this.valueCount),
        final: false,
        timeMs: nowMs,
      };
    } else {
      sample.attributes = st.attributes;
      sample.context = st.context;
      sample.pointAttributes = undefined;
      sample.final = false;
      sample.timeMs = nowMs;
      if (!(sample.values instanceof Float64Array) || sample.values.length !== this.valueCount) sample.values = new Float64Array(this.valueCount);
      else sample.values.fill(0);
    }
    const values = sample.values;
    for (let i = this.observationsAt; i >= 0 && i < values.length; i++) values[i] = NaN;
    if (this.perProcess) this.fillGauges(st, rec, values);
    out.push(sample);
    return true;
  }

  /**
   * One exit datagram: `thread` is the ending thread's PID record, `group` the process's TGID
   * record when the kernel sent one (the last thread of a process that ever had several threads),
   * `info` the process's metadata. A thread that is not the last of its process only updates the
   * process's state; the end of a process appends its final sample (the remainder,
   * process.exits = 1, final: true).
   */
  exit(thread: TaskRecord, group: TaskRecord | null, info: ProcessInfo, nowMs: number, out: SampleBatch): void {
    this.lastEnd = null;
    const tgid = thread.tgid > 0 ? thread.tgid : group !== null && group.tgid > 0 ? group.tgid : thread.pid;
    if (!(tgid > 0)) {
      this.telemetry.dropped(1, DropReason.RECORD_WITHOUT_PID);
      return;
    }
    const isLeader = thread.pid === tgid;
    const processEnded = endsProcess(thread, group);

    let st = this.table.get(tgid);
    let fromReplaced = false;
    if (st !== undefined && !this.threadBelongsTo(st, thread)) st = undefined;
    if (st === undefined) {
      const old = this.replaced.get(tgid);
      if (old !== undefined && this.threadBelongsTo(old, thread)) {
        st = old;
        fromReplaced = true;
      }
    }

    const counters = this.scratch;
    readCounters(thread, counters);

    if (!processEnded) {
      // A thread of a living process ended: remember its per-thread totals for the end.
      if (st === undefined) {
        st = this.newState(tgid, isLeader ? thread.startTimeSec : 0, thread, info);
        if (!this.table.has(tgid)) this.table.set(tgid, st);
        else if (!this.replaced.has(tgid)) {
          // The thread belongs to an older process than the one tracked under its tgid.
          this.replaced.set(tgid, st);
          fromReplaced = true;
        } else {
          // A third process under one tgid at once: its thread totals cannot be kept.
          this.telemetry.dropped(1, DropReason.THREAD_EXIT_UNMATCHED);
          return;
        }
      } else if (isLeader) {
        // The leader's record carries the process's start time and name.
        if (st.startTimeSec === 0) st.startTimeSec = thread.startTimeSec;
        this.updateIdentity(st, thread.comm, info.cgroup, info.cmdline, info.exePath);
      } else if (thread.startTimeSec > 0 && (st.startedBySec === 0 || thread.startTimeSec < st.startedBySec)) {
        st.startedBySec = thread.startTimeSec;
      }
      if (!fromReplaced) st.sweep = this.sweep;
      const dead = (st.deadThreads ??= new Float64Array(RAW_COUNTERS));
      for (let i = 0; i < RAW_COUNTERS; i++) dead[i]! += counters[i]!;
      st.threadsEnded++;
      if (this.perProcess) this.updatePeaks(st, thread);
      return;
    }

    // The process ended. Its totals: the larger of the thread sum and the group record (see top).
    if (st !== undefined && st.deadThreads !== null) {
      const dead = st.deadThreads;
      for (let i = 0; i < RAW_COUNTERS; i++) counters[i]! += dead[i]!;
    }
    if (group !== null) {
      const g = this.scratchGroup;
      readCounters(group, g);
      for (let i = 0; i < RAW_COUNTERS; i++) if (g[i]! > counters[i]!) counters[i] = g[i]!;
    }

    if (this.endedTgid !== null) {
      const slot = tgid & (ENDED_SLOTS - 1);
      const startSec = st !== undefined && st.startTimeSec > 0 ? st.startTimeSec : isLeader ? thread.startTimeSec : 0;
      this.endedTgid[slot] = tgid;
      this.endedStartSec[slot] = startSec > 0 ? startSec : 0;
      this.endedSweep[slot] = this.sweep;
    }

    let attributes: Attributes;
    let context: Attributes | undefined;
    if (st !== undefined) {
      // The final thread may be a worker with its own name: only the leader's record renames.
      const before = st.attributes;
      if (isLeader) this.updateIdentity(st, thread.comm, info.cgroup, info.cmdline, info.exePath);
      else this.updateIdentity(st, st.comm === '' ? thread.comm : st.comm, info.cgroup, '', '');
      if (this.perProcess && st.attributes !== before && st.sampled) this.endSeries(before, st.context, nowMs, out);
      attributes = st.attributes;
      context = st.context;
      if (fromReplaced) this.replaced.delete(tgid);
      else this.table.delete(tgid);
    } else {
      attributes = this.attributesFor(thread.comm, info.cgroup, tgid, thread.startTimeSec);
      context = this.contextFor(info.cmdline, info.exePath, tgid);
    }

    const values = this.newValues();
    const reported = st?.reported;
    splitCpuTime(counters, reported ?? ZERO_COUNTERS);
    for (let i = 0; i < RAW_COUNTERS; i++) {
      const remainder = reported === undefined ? counters[i]! : counters[i]! - reported[i]!;
      if (remainder > 0) values[i] = remainder * RAW_SCALE[i]!;
    }
    values[VALUE.EXITS] = 1;
    const end = this.endedProcess;
    end.totals = counters;
    end.threads = 1 + (st?.threadsEnded ?? 0);
    end.startTimeSec = st !== undefined && st.startTimeSec > 0 ? st.startTimeSec : thread.startTimeSec;
    end.attributes = attributes;
    end.context = context;
    this.lastEnd = end;
    if (this.perProcess) this.fillGauges(st ?? null, thread, values);
    if (this.observationsAt >= 0) fillExitObservations(values, this.observationsAt, thread, counters, this.allDelays);
    out.push({
      schema: this.schema,
      attributes,
      context,
      pointAttributes: this.exitPointAttributes(thread),
      values,
      final: true,
      timeMs: nowMs,
    });
  }

  /**
   * After a full live sweep: processes not seen in it (nor touched by a thread exit since the
   * previous sweep) and not ended by an exit record are forgotten and counted (`processes_lost`).
   * Per-process mode appends a final sample with nothing to add for each, so the metrics stage
   * expires their series.
   */
  endSweep(nowMs: number, out: SampleBatch): void {
    // forEach, not for-of: under Maglev (bin/node-flags' --max-opt=2) for-of over a Map allocates a
    // [key, value] array and an iterator result per entry, ~230 bytes per process per sweep.
    // Deleting the current entry is allowed.
    const sweep = this.sweep;
    const expire = (st: ProcessState, tgid: number, map: Map<number, ProcessState>): void => {
      if (st.sweep < sweep) {
        map.delete(tgid);
        this.forget(st, nowMs, out);
      }
    };
    this.table.forEach(expire);
    this.replaced.forEach(expire);
    this.sweep++;
  }

  /**
   * Exits only (no live sweeps, so endSweep is never called): a process whose final exit record was
   * lost (ENOBUFS) while some of its threads' exits were seen would stay in the table for good.
   * Called once per collection instead: each process not touched by a thread exit since the
   * previous call is looked up (`startOf`, e.g. from /proc) and forgotten, counted in
   * processes_lost, when no process has its tgid any more or the tgid now names a process started
   * at another time (pid reuse). A process that still runs is kept, however long it lives.
   */
  expireGone(nowMs: number, out: SampleBatch, startOf: ProcessStartLookup): void {
    const expire = (st: ProcessState, tgid: number, map: Map<number, ProcessState>): void => {
      if (st.sweep >= this.sweep || !this.isGone(st, startOf(tgid))) return;
      map.delete(tgid);
      this.forget(st, nowMs, out);
    };
    this.table.forEach(expire);
    this.replaced.forEach(expire);
    this.sweep++;
  }

  // -------------------------------------------------------------------------------------------

  /** A sample's values: zeros, and no observation (NaN) for the exit distributions. */
  private newValues(): Float64Array {
    const v = this.slabs.take(this.valueCount);
    for (let i = this.observationsAt; i >= 0 && i < v.length; i++) v[i] = NaN;
    return v;
  }

  /** Did a process with this tgid and start time end in this sweep or the previous one? */
  private endedRecently(tgid: number, startTimeSec: number): boolean {
    const slot = tgid & (ENDED_SLOTS - 1);
    if (this.endedTgid![slot] !== tgid || this.sweep - this.endedSweep[slot]! > 1) return false;
    const start = this.endedStartSec[slot]!;
    return start === 0 || !(startTimeSec > 0) || Math.abs(startTimeSec - start) <= 1;
  }

  /** Given what the tgid names now (start time, -1 for nothing), has the tracked process ended? */
  private isGone(st: ProcessState, startSec: number): boolean {
    if (startSec === -1) return true;
    if (!(startSec > 0)) return false; // unknown: keep
    if (st.startTimeSec > 0) return Math.abs(startSec - st.startTimeSec) > START_TIME_TOLERANCE_SEC;
    // Only worker threads seen: the process started no later than the earliest of them.
    return st.startedBySec > 0 && startSec > st.startedBySec + START_TIME_TOLERANCE_SEC;
  }

  private forget(st: ProcessState, nowMs: number, out: SampleBatch): void {
    this.lostCounter.add(1);
    if (this.perProcess && st.sampled) this.endSeries(st.attributes, st.context, nowMs, out);
  }

  /**
   * Per-process mode: a final sample with nothing to add, so that the metrics stage expires a
   * process's series (lost process, or attributes that changed: exec renamed it, it moved).
   * Not in aggregate mode: the series is shared and must not look ended.
   */
  private endSeries(attributes: Attributes, context: Attributes | undefined, nowMs: number, out: SampleBatch): void {
    const values = this.newValues();
    const gaugesEnd = this.observationsAt >= 0 ? this.observationsAt : this.valueCount;
    for (let i = VALUE.PEAK_RSS; i < gaugesEnd; i++) values[i] = NaN; // gauges: keep the last
    out.push({ schema: this.schema, attributes, context, values, final: true, timeMs: nowMs });
  }

  /** Does a live reading (start time, counters) continue the tracked process? */
  private isSameProcess(st: ProcessState, startTimeSec: number, counters: Float64Array): boolean {
    // ac_btime is computed as now - elapsed, so two readings of one process may differ by 1 s.
    if (st.startTimeSec > 0 && startTimeSec > 0 && Math.abs(st.startTimeSec - startTimeSec) > 1) return false;
    const run = counters[RAW.RUN_TIME]!;
    // CPU time going backwards (beyond the jitter of a dying thread counted twice) means another
    // process got the pid within the same second; an all-zero reading is a zombie, not a new one.
    return !(run > 0 && run + CPU_BACKWARDS_NS < st.reported[RAW.RUN_TIME]!);
  }

  /** A thread cannot have started before its process. */
  private threadBelongsTo(st: ProcessState, thread: TaskRecord): boolean {
    return st.startTimeSec === 0 || thread.startTimeSec === 0 || thread.startTimeSec + 1 >= st.startTimeSec;
  }

  private newState(tgid: number, startTimeSec: number, rec: TaskRecord, info: ProcessInfo): ProcessState {
    const st: ProcessState = {
      tgid,
      startTimeSec: startTimeSec > 0 ? startTimeSec : 0,
      startedBySec: !(startTimeSec > 0) && rec.startTimeSec > 0 ? rec.startTimeSec : 0,
      reported: new Float64Array(RAW_COUNTERS),
      deadThreads: null,
      threadsEnded: 0,
      comm: rec.comm,
      cgroup: info.cgroup,
      cmdline: info.cmdline,
      exePath: info.exePath,
      attributes: undefined as unknown as Attributes,
      context: undefined,
      peakRssKb: 0,
      peakVmKb: 0,
      delayMaxNs: null,
      sweep: this.sweep,
      sampled: false,
      idleSample: null,
    };
    st.attributes = this.attributesFor(st.comm, st.cgroup, tgid, st.startTimeSec);
    st.context = this.contextFor(st.cmdline, st.exePath, tgid);
    return st;
  }

  /**
   * Follow changes of name (exec), cgroup (moved) or metadata. Empty values (unknown to the
   * receiver at this moment) never overwrite known ones.
   */
  private updateIdentity(st: ProcessState, newComm: string, newCgroup: string, newCmdline: string, newExePath: string): void {
    const comm = newComm !== '' ? newComm : st.comm;
    const cgroup = newCgroup !== '' ? newCgroup : st.cgroup;
    // Per-process mode: a process first known by a worker thread's exit gets its start time later.
    const startTimeLearned = this.perProcess && st.startTimeSec > 0 && st.attributes[ATTR.START_TIME] === undefined;
    if (comm !== st.comm || cgroup !== st.cgroup || startTimeLearned) {
      st.comm = comm;
      st.cgroup = cgroup;
      st.attributes = this.attributesFor(comm, cgroup, st.tgid, st.startTimeSec);
    }
    const cmdline = newCmdline !== '' ? newCmdline : st.cmdline;
    const exePath = newExePath !== '' ? newExePath : st.exePath;
    if (cmdline !== st.cmdline || exePath !== st.exePath) {
      st.cmdline = cmdline;
      st.exePath = exePath;
      st.context = this.contextFor(cmdline, exePath, st.tgid);
    }
  }

  private attributesFor(comm: string, cgroup: string, tgid: number, startTimeSec: number): Attributes {
    if (this.perProcess) {
      const a: Attributes = { [ATTR.EXECUTABLE_NAME]: comm, [ATTR.CGROUP]: cgroup, [ATTR.PID]: tgid };
      if (startTimeSec > 0) a[ATTR.START_TIME] = rfc3339(startTimeSec);
      return a;
    }
    let byComm = this.attributeCache.get(cgroup);
    let a = byComm?.get(comm);
    if (a !== undefined) return a;
    if (this.attributeCacheSize >= ATTRIBUTE_CACHE_LIMIT) {
      // Unbounded name/cgroup churn (checked on every new name, not only on a new cgroup: 100,000
      // names in one cgroup must not grow it): start over rather than grow. The metrics stage falls
      // back to its key lookup for the new objects, so nothing is miscounted.
      this.attributeCache.clear();
      this.attributeCacheSize = 0;
      byComm = undefined;
    }
    if (byComm === undefined) {
      byComm = new Map();
      this.attributeCache.set(cgroup, byComm);
    }
    a = Object.freeze({ [ATTR.EXECUTABLE_NAME]: comm, [ATTR.CGROUP]: cgroup });
    byComm.set(comm, a);
    this.attributeCacheSize++;
    return a;
  }

  private contextFor(cmdline: string, exePath: string, tgid: number): Attributes | undefined {
    if (cmdline === '' && exePath === '') return undefined;
    const c: Attributes = { [ATTR.PID]: tgid };
    if (cmdline !== '') c[ATTR.COMMAND_LINE] = cmdline;
    if (exePath !== '') c[ATTR.EXECUTABLE_PATH] = exePath;
    return c;
  }

  /** process.exit.code for a normal exit, process.linux.exit.signal (name) for death by signal. */
  private exitPointAttributes(rec: TaskRecord): Attributes {
    let code = rec.exitCode;
    let signal = rec.exitSignal;
    if (signal <= 0 && code < 0) {
      // Not decoded by the parser: decode the wait status.
      const status = rec.exitStatus;
      if ((status & 0x7f) === 0) code = (status >> 8) & 0xff;
      else signal = status & 0x7f;
    }
    if (signal > 0) {
      let a = this.exitSignalAttributes.get(signal);
      if (a === undefined) {
        a = Object.freeze({ [TASKSTATS_ATTR.EXIT_SIGNAL]: SIGNAL_NAMES.get(signal) ?? `SIG${signal}` });
        this.exitSignalAttributes.set(signal, a);
      }
      return a;
    }
    let a = this.exitCodeAttributes.get(code);
    if (a === undefined) {
      a = Object.freeze({ [TASKSTATS_ATTR.EXIT_CODE]: code });
      this.exitCodeAttributes.set(code, a);
    }
    return a;
  }

  private updatePeaks(st: ProcessState, rec: TaskRecord): void {
    if (rec.hiwaterRssKb > st.peakRssKb) st.peakRssKb = rec.hiwaterRssKb;
    if (rec.hiwaterVmKb > st.peakVmKb) st.peakVmKb = rec.hiwaterVmKb;
    if (rec.version >= 16) {
      const m = this.scratchDelayMax;
      readDelayMax(rec, m);
      const kept = (st.delayMaxNs ??= new Float64Array(8).fill(-1));
      for (let k = 0; k < 8; k++) if (m[k]! > kept[k]!) kept[k] = m[k]!;
    }
  }

  /** Per-process gauges: peaks over everything seen of the process; NaN (unknown) when none. */
  private fillGauges(st: ProcessState | null, rec: TaskRecord, values: Float64Array): void {
    let rssKb = rec.hiwaterRssKb;
    let vmKb = rec.hiwaterVmKb;
    let kept: Float64Array | null = null;
    if (st !== null) {
      this.updatePeaks(st, rec);
      rssKb = st.peakRssKb;
      vmKb = st.peakVmKb;
      kept = st.delayMaxNs;
    } else if (rec.version >= 16) {
      kept = this.scratchDelayMax;
      readDelayMax(rec, kept);
    }
    values[VALUE.PEAK_RSS] = rssKb > 0 ? rssKb * 1024 : NaN;
    values[VALUE.PEAK_VIRTUAL] = vmKb > 0 ? vmKb * 1024 : NaN;
    for (let k = 0; k < 8; k++) {
      const v = kept === null ? -1 : kept[k]!;
      values[VALUE.DELAY_MAX + k] = v >= 0 ? v * 1e-9 : NaN;
    }
  }
}
