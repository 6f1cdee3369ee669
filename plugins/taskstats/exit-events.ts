/**
 * Exit events: one `process.exit` log record per ended process (and, when asked, one
 * `process.thread.exit` per thread that ends before its process), built from the same exit
 * records and the same final totals as the metrics (ProcessAccounting.lastEnd), so an event and
 * the process.* counters never disagree.
 *
 * Budgets (volume.ts) are decided before a record is built: an exit held back costs a counter
 * increment, not a record, a body string and ~40 attributes.
 *
 * docs/events.md is the catalogue of what a record carries; EVENT_ATTRIBUTES below is the table a
 * test checks it against.
 */
import { constants as osConstants } from 'node:os';
import { ATTR, SeverityNumber, type Attributes, type LogBatch, type LogRecord } from '../../src/api/index.js';
import type { EndedProcess } from './accounting.js';
import { DELAY_KINDS, type ProcessInfo, type TaskRecord } from './record.js';
import { RAW, TASKSTATS_ATTR } from './schema.js';
import type { ExitBudget } from './volume.js';

export const EVENT_NAME = {
  PROCESS_EXIT: 'process.exit',
  THREAD_EXIT: 'process.thread.exit',
  SUPPRESSED: 'process.exit.suppressed',
} as const;

/**
 * Attribute names of exit events beyond ATTR (semantic conventions first, then process.linux.*).
 * The record builders below write them as literal keys: an object literal with constant keys is
 * ~40x cheaper to create in V8 than one with computed keys (0.04 vs 1.7 us for 36 keys, measured
 * on the benchmark VM); the catalogue test checks that every key they write is in EVENT_ATTRIBUTES.
 */
export const EVENT_ATTR = {
  PARENT_PID: 'process.parent_pid',
  REAL_USER_ID: 'process.real_user.id',
  REAL_GROUP_ID: 'process.real_group.id',
  EXIT_TIME: 'process.exit.time',
  THREAD_ID: 'thread.id',
  THREAD_NAME: 'thread.name',
  EXIT_SIGNAL: TASKSTATS_ATTR.EXIT_SIGNAL,
  CORE_DUMPED: 'process.linux.exit.core_dumped',
  DURATION: 'process.linux.duration',
  CPU_USER: 'process.linux.cpu.user_time',
  CPU_SYSTEM: 'process.linux.cpu.system_time',
  PEAK_RSS: 'process.linux.memory.peak_rss',
  PEAK_VIRTUAL: 'process.linux.memory.peak_virtual',
  DISK_READ: 'process.linux.disk.read_bytes',
  DISK_WRITE: 'process.linux.disk.write_bytes',
  CHARS_READ: 'process.linux.io.read_chars',
  CHARS_WRITTEN: 'process.linux.io.write_chars',
  CTX_VOLUNTARY: 'process.linux.context_switches.voluntary',
  CTX_INVOLUNTARY: 'process.linux.context_switches.involuntary',
  FAULTS_MINOR: 'process.linux.paging.faults.minor',
  FAULTS_MAJOR: 'process.linux.paging.faults.major',
  THREADS: 'process.linux.threads',
  SUPPRESSED_SUCCESSES: 'process.linux.exit.suppressed.successes',
  SUPPRESSED_FAILURES: 'process.linux.exit.suppressed.failures',
  SUPPRESSED_INTERVAL: 'process.linux.exit.suppressed.interval',
  OTHER_WORKLOADS: 'process.linux.exit.suppressed.other_workloads',
} as const;

/** `process.linux.delay.<kind>.time` (s) and `.count`, DELAY_KINDS order. */
export const DELAY_TIME_ATTR: readonly string[] = DELAY_KINDS.map((k) => `process.linux.delay.${k}.time`);
export const DELAY_COUNT_ATTR: readonly string[] = DELAY_KINDS.map((k) => `process.linux.delay.${k}.count`);

export interface EventAttributeDoc {
  name: string;
  type: 'string' | 'int' | 'double' | 'boolean';
  /** UCUM unit, '' for none. */
  unit: string;
  /** Which events carry it: p = process.exit, t = process.thread.exit, s = process.exit.suppressed. */
  events: string;
}

/** Every attribute an event record of this receiver can carry (docs/events.md lists the same). */
export const EVENT_ATTRIBUTES: readonly EventAttributeDoc[] = [
  { name: ATTR.PID, type: 'int', unit: '', events: 'pt' },
  { name: EVENT_ATTR.PARENT_PID, type: 'int', unit: '', events: 'pt' },
  { name: ATTR.EXECUTABLE_NAME, type: 'string', unit: '', events: 'pts' },
  { name: ATTR.EXECUTABLE_PATH, type: 'string', unit: '', events: 'p' },
  { name: ATTR.COMMAND_LINE, type: 'string', unit: '', events: 'p' },
  { name: EVENT_ATTR.REAL_USER_ID, type: 'int', unit: '', events: 'pt' },
  { name: EVENT_ATTR.REAL_GROUP_ID, type: 'int', unit: '', events: 'pt' },
  { name: ATTR.EXIT_CODE, type: 'int', unit: '', events: 'pt' },
  { name: ATTR.START_TIME, type: 'string', unit: '', events: 'p' },
  { name: EVENT_ATTR.EXIT_TIME, type: 'string', unit: '', events: 'pt' },
  { name: ATTR.CGROUP, type: 'string', unit: '', events: 'pts' },
  { name: EVENT_ATTR.THREAD_ID, type: 'int', unit: '', events: 't' },
  { name: EVENT_ATTR.THREAD_NAME, type: 'string', unit: '', events: 't' },
  { name: EVENT_ATTR.EXIT_SIGNAL, type: 'string', unit: '', events: 'pt' },
  { name: EVENT_ATTR.CORE_DUMPED, type: 'boolean', unit: '', events: 'pt' },
  { name: EVENT_ATTR.DURATION, type: 'double', unit: 's', events: 'pt' },
  { name: EVENT_ATTR.CPU_USER, type: 'double', unit: 's', events: 'pt' },
  { name: EVENT_ATTR.CPU_SYSTEM, type: 'double', unit: 's', events: 'pt' },
  { name: EVENT_ATTR.PEAK_RSS, type: 'int', unit: 'By', events: 'pt' },
  { name: EVENT_ATTR.PEAK_VIRTUAL, type: 'int', unit: 'By', events: 'pt' },
  { name: EVENT_ATTR.DISK_READ, type: 'int', unit: 'By', events: 'pt' },
  { name: EVENT_ATTR.DISK_WRITE, type: 'int', unit: 'By', events: 'pt' },
  { name: EVENT_ATTR.CHARS_READ, type: 'int', unit: 'By', events: 'pt' },
  { name: EVENT_ATTR.CHARS_WRITTEN, type: 'int', unit: 'By', events: 'pt' },
  { name: EVENT_ATTR.CTX_VOLUNTARY, type: 'int', unit: '{context_switch}', events: 'pt' },
  { name: EVENT_ATTR.CTX_INVOLUNTARY, type: 'int', unit: '{context_switch}', events: 'pt' },
  { name: EVENT_ATTR.FAULTS_MINOR, type: 'int', unit: '{fault}', events: 'pt' },
  { name: EVENT_ATTR.FAULTS_MAJOR, type: 'int', unit: '{fault}', events: 'pt' },
  { name: EVENT_ATTR.THREADS, type: 'int', unit: '{thread}', events: 'p' },
  ...DELAY_KINDS.flatMap((_, k): EventAttributeDoc[] => [
    { name: DELAY_TIME_ATTR[k]!, type: 'double', unit: 's', events: 'pt' },
    { name: DELAY_COUNT_ATTR[k]!, type: 'int', unit: '{delay}', events: 'pt' },
  ]),
  { name: EVENT_ATTR.SUPPRESSED_SUCCESSES, type: 'int', unit: '{process}', events: 's' },
  { name: EVENT_ATTR.SUPPRESSED_FAILURES, type: 'int', unit: '{process}', events: 's' },
  { name: EVENT_ATTR.SUPPRESSED_INTERVAL, type: 'double', unit: 's', events: 's' },
  { name: EVENT_ATTR.OTHER_WORKLOADS, type: 'boolean', unit: '', events: 's' },
];

const SIGNAL_NAMES: Map<number, string> = (() => {
  const m = new Map<number, string>();
  for (const [name, num] of Object.entries(osConstants.signals)) if (!m.has(num)) m.set(num, name);
  return m;
})();

export function signalName(signal: number): string {
  return SIGNAL_NAMES.get(signal) ?? `SIG${signal}`;
}

/** A failure: killed by a signal, dumped core, or exited with a non-zero code. */
export function isFailure(rec: TaskRecord): boolean {
  return rec.exitSignal > 0 || rec.coreDumped || rec.exitCode !== 0;
}

function severityOf(rec: TaskRecord): number {
  if (rec.exitSignal > 0 || rec.coreDumped) return SeverityNumber.ERROR;
  return rec.exitCode === 0 ? SeverityNumber.INFO : SeverityNumber.WARN;
}
const SEVERITY_TEXT: Record<number, string> = { [SeverityNumber.INFO]: 'INFO', [SeverityNumber.WARN]: 'WARN', [SeverityNumber.ERROR]: 'ERROR' };

/** 1.23 s, 12.3 ms, 45 us: what a person reads in a one-line body. */
export function formatSeconds(s: number): string {
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(1)} ms`;
  return `${Math.round(s * 1e6)} us`;
}

export function formatBytes(b: number): string {
  if (b >= 1024 ** 3) return `${(b / 1024 ** 3).toFixed(1)} GiB`;
  if (b >= 1024 ** 2) return `${(b / 1024 ** 2).toFixed(1)} MiB`;
  if (b >= 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${b} B`;
}

/**
 * RFC 3339 with milliseconds, as Date.toISOString() writes it, for whole milliseconds. The date and
 * time up to the second come from a cache (records of a burst share it); a fresh Date and
 * toISOString per record cost ~1.2 us, a third of building the record (bench/exit-storm/event-cost.mjs).
 */
let isoSec = Number.NaN;
let isoPrefix = '';
export function iso(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec !== isoSec) {
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, 20); // 2026-12-02T08:00:00.
    isoSec = sec;
  }
  const frac = ms - sec * 1000;
  return `${isoPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
}

/** user and system seconds of one thread record: its precise runtime split by the tick ratio. */
function threadCpuSeconds(r: TaskRecord): [number, number] {
  const rtime = r.cpuRunVirtualNs;
  const u = r.userUs;
  const s = r.systemUs;
  if (!(rtime > 0)) return [u * 1e-6, s * 1e-6];
  const system = s === 0 ? 0 : u === 0 ? rtime : (rtime * s) / (u + s);
  return [(rtime - system) * 1e-9, system * 1e-9];
}

/** A thread record's delays, DELAY_KINDS order. */
const THREAD_DELAYS: readonly { count(r: TaskRecord): number; totalNs(r: TaskRecord): number }[] = [
  { count: (r) => r.cpuDelayCount, totalNs: (r) => r.cpuDelayTotalNs },
  { count: (r) => r.blkioDelayCount, totalNs: (r) => r.blkioDelayTotalNs },
  { count: (r) => r.swapinDelayCount, totalNs: (r) => r.swapinDelayTotalNs },
  { count: (r) => r.freepagesDelayCount, totalNs: (r) => r.freepagesDelayTotalNs },
  { count: (r) => r.thrashingDelayCount, totalNs: (r) => r.thrashingDelayTotalNs },
  { count: (r) => r.compactDelayCount, totalNs: (r) => r.compactDelayTotalNs },
  { count: (r) => r.wpcopyDelayCount, totalNs: (r) => r.wpcopyDelayTotalNs },
  { count: (r) => r.irqDelayCount, totalNs: (r) => r.irqDelayTotalNs },
];

function outcomeText(rec: TaskRecord): string {
  if (rec.exitSignal > 0) return `was killed by ${signalName(rec.exitSignal)}${rec.coreDumped ? ' (core dumped)' : ''}`;
  if (rec.coreDumped) return `exited with code ${rec.exitCode} (core dumped)`;
  return `exited with code ${rec.exitCode}`;
}

export interface ExitEventsOptions {
  /** Also a record per thread that ends before its process. */
  threads: boolean;
  budget: ExitBudget;
}

/**
 * Builds the records of one receiver. `exit()` is called for every exit datagram after
 * accounting.exit(); `take()` hands over the records built since the last call (one batch per
 * drain of the exit sockets).
 */
export class ExitEvents {
  private batch: LogBatch = [];
  private readonly threads: boolean;
  private readonly budget: ExitBudget;

  constructor(o: ExitEventsOptions) {
    this.threads = o.threads;
    this.budget = o.budget;
  }

  /**
   * One exit datagram and the process's metadata. `end` is what accounting knew of the process
   * when this record ended it (null: the record ended only a thread). `nowMs`: when the record was
   * read (the kernel's record carries no time; it is taken in do_exit, normally well under a
   * millisecond before).
   */
  exit(thread: TaskRecord, info: ProcessInfo, end: EndedProcess | null, nowMs: number): void {
    if (end === null) {
      if (!this.threads) return;
      const comm = thread.comm;
      if (!this.budget.admit(isFailure(thread), nowMs, comm, info.cgroup)) return;
      this.batch.push(this.threadRecord(thread, info, nowMs));
      return;
    }
    const comm = end.attributes[ATTR.EXECUTABLE_NAME];
    const cgroup = end.attributes[ATTR.CGROUP];
    if (!this.budget.admit(isFailure(thread), nowMs, typeof comm === 'string' ? comm : thread.comm, typeof cgroup === 'string' ? cgroup : info.cgroup)) return;
    this.batch.push(this.processRecord(thread, info, end, nowMs));
  }

  /** The records built since the last call, or null when there are none. */
  take(): LogBatch | null {
    if (this.batch.length === 0) return null;
    const b = this.batch;
    this.batch = [];
    return b;
  }

  private processRecord(thread: TaskRecord, info: ProcessInfo, end: EndedProcess, nowMs: number): LogRecord {
    const t = end.totals;
    const tgid = thread.tgid > 0 ? thread.tgid : thread.pid;
    const comm = end.attributes[ATTR.EXECUTABLE_NAME] ?? thread.comm;
    const cgroup = end.attributes[ATTR.CGROUP] ?? info.cgroup;
    // The final record's elapsed time is the process's when it is the leader's (always for a
    // single-threaded process); when a worker ended last, the start is the leader's ac_btime.
    const startMs = thread.pid === tgid && thread.elapsedUs > 0 ? nowMs - thread.elapsedUs / 1000 : end.startTimeSec * 1000;
    const duration = Math.max(0, (nowMs - startMs) / 1000);
    const user = t[RAW.USER]! * 1e-9;
    const system = t[RAW.SYSTEM]! * 1e-9;
    const peakRss = thread.hiwaterRssKb * 1024;
    const diskRead = t[RAW.DISK_READ]!;
    const diskWrite = t[RAW.DISK_WRITE]!;
    const a: Attributes = {
      'process.pid': tgid,
      'process.parent_pid': thread.ppid,
      'process.executable.name': comm,
      'process.real_user.id': thread.uid,
      'process.real_group.id': thread.gid,
      'process.creation.time': iso(Math.round(startMs)),
      'process.exit.time': iso(nowMs),
      'process.linux.cgroup': cgroup,
      'process.linux.exit.core_dumped': thread.coreDumped,
      'process.linux.duration': duration,
      'process.linux.cpu.user_time': user,
      'process.linux.cpu.system_time': system,
      'process.linux.memory.peak_rss': peakRss,
      'process.linux.memory.peak_virtual': thread.hiwaterVmKb * 1024,
      'process.linux.disk.read_bytes': diskRead,
      'process.linux.disk.write_bytes': diskWrite,
      'process.linux.io.read_chars': t[RAW.CHAR_READ]!,
      'process.linux.io.write_chars': t[RAW.CHAR_WRITE]!,
      'process.linux.context_switches.voluntary': t[RAW.VOLUNTARY]!,
      'process.linux.context_switches.involuntary': t[RAW.INVOLUNTARY]!,
      'process.linux.paging.faults.minor': t[RAW.MINOR]!,
      'process.linux.paging.faults.major': t[RAW.MAJOR]!,
      'process.linux.threads': end.threads,
      'process.linux.delay.cpu.time': t[RAW.DELAY_TIME]! * 1e-9,
      'process.linux.delay.cpu.count': t[RAW.DELAY_COUNT]!,
    };
    if (thread.exitSignal > 0) a[EVENT_ATTR.EXIT_SIGNAL] = signalName(thread.exitSignal);
    else a[ATTR.EXIT_CODE] = thread.exitCode;
    // Delays: the cpu delay is always measured; the others only with delay accounting on
    // (kernel.task_delayacct), so a kind that never waited is left out rather than shown as 0.
    for (let k = 1; k < DELAY_KINDS.length; k++) {
      const count = t[RAW.DELAY_COUNT + k]!;
      if (count > 0) {
        a[DELAY_TIME_ATTR[k]!] = t[RAW.DELAY_TIME + k]! * 1e-9;
        a[DELAY_COUNT_ATTR[k]!] = count;
      }
    }
    const ctx = end.context;
    if (ctx !== undefined) {
      const cmdline = ctx[ATTR.COMMAND_LINE];
      if (cmdline !== undefined) a[ATTR.COMMAND_LINE] = cmdline;
      const exe = ctx[ATTR.EXECUTABLE_PATH];
      if (exe !== undefined) a[ATTR.EXECUTABLE_PATH] = exe;
    }
    const severity = severityOf(thread);
    return {
      timeMs: nowMs,
      severityNumber: severity,
      severityText: SEVERITY_TEXT[severity]!,
      eventName: EVENT_NAME.PROCESS_EXIT,
      body:
        `${String(comm)} (pid ${tgid}) ${outcomeText(thread)} after ${formatSeconds(duration)}: ` +
        `cpu ${formatSeconds(user)} user + ${formatSeconds(system)} system, peak RSS ${formatBytes(peakRss)}, ` +
        `disk read ${formatBytes(diskRead)} / written ${formatBytes(diskWrite)}` +
        (end.threads > 1 ? `, ${end.threads} threads` : '') +
        (cgroup !== '' ? `, cgroup ${String(cgroup)}` : ''),
      attributes: a,
    };
  }

  private threadRecord(r: TaskRecord, info: ProcessInfo, nowMs: number): LogRecord {
    const [user, system] = threadCpuSeconds(r);
    const duration = r.elapsedUs * 1e-6;
    const a: Attributes = {
      'process.pid': r.tgid > 0 ? r.tgid : r.pid,
      'thread.id': r.pid,
      'thread.name': r.comm,
      'process.parent_pid': r.ppid,
      'process.executable.name': r.comm,
      'process.real_user.id': r.uid,
      'process.real_group.id': r.gid,
      'process.exit.time': iso(nowMs),
      'process.linux.cgroup': info.cgroup,
      'process.linux.exit.core_dumped': r.coreDumped,
      'process.linux.duration': duration,
      'process.linux.cpu.user_time': user,
      'process.linux.cpu.system_time': system,
      'process.linux.memory.peak_rss': r.hiwaterRssKb * 1024,
      'process.linux.memory.peak_virtual': r.hiwaterVmKb * 1024,
      'process.linux.disk.read_bytes': r.readBytes,
      'process.linux.disk.write_bytes': r.writeBytes,
      'process.linux.io.read_chars': r.readCharBytes,
      'process.linux.io.write_chars': r.writeCharBytes,
      'process.linux.context_switches.voluntary': r.voluntaryCtxSwitches,
      'process.linux.context_switches.involuntary': r.involuntaryCtxSwitches,
      'process.linux.paging.faults.minor': r.minorFaults,
      'process.linux.paging.faults.major': r.majorFaults,
      'process.linux.delay.cpu.time': r.cpuDelayTotalNs * 1e-9,
      'process.linux.delay.cpu.count': r.cpuDelayCount,
    };
    if (r.exitSignal > 0) a[EVENT_ATTR.EXIT_SIGNAL] = signalName(r.exitSignal);
    else a[ATTR.EXIT_CODE] = r.exitCode;
    const delays = THREAD_DELAYS;
    for (let k = 1; k < delays.length; k++) {
      const count = delays[k]!.count(r);
      if (count > 0) {
        a[DELAY_TIME_ATTR[k]!] = delays[k]!.totalNs(r) * 1e-9;
        a[DELAY_COUNT_ATTR[k]!] = count;
      }
    }
    const severity = severityOf(r);
    return {
      timeMs: nowMs,
      severityNumber: severity,
      severityText: SEVERITY_TEXT[severity]!,
      eventName: EVENT_NAME.THREAD_EXIT,
      body: `thread ${r.comm} (tid ${r.pid}) of pid ${r.tgid} ended after ${formatSeconds(duration)}: cpu ${formatSeconds(user)} user + ${formatSeconds(system)} system`,
      attributes: a,
    };
  }
}
