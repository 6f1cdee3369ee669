/**
 * TaskRecord: one typed record for both sources of the taskstats receiver, a live query
 * (`kind: 'live'`) and an exit event (`kind: 'exit'`), and for both aggregates (one thread, `pid`,
 * or a whole thread group, `tgid`), mirroring struct taskstats (include/uapi/linux/taskstats.h).
 * Field names say their unit.
 *
 * It is flat on purpose: the exit path handles thousands of records a second, and a nested
 * object per record costs CPU and garbage. The parser may fill and reuse one instance; consumers
 * that keep a record must copy it (`copyTaskRecord`).
 *
 * Fields the kernel's struct version does not carry are 0 (counters) or -1 where noted; check
 * `version` when the difference matters (e.g. max/min delays need version >= 16).
 *
 * TASK_RECORD_FIELDS is the one table of the fields: the initial record, the record copy, the
 * live cache's rows (record-store.ts), the counters accounting reads and `exits --json` are all
 * made from it, and the compiler rejects a field of TaskRecord the table lacks.
 */
import type { RAW } from './schema.js';

export interface TaskRecord {
  kind: 'live' | 'exit';
  aggregate: 'pid' | 'tgid';
  /** struct taskstats version the kernel sent. */
  version: number;

  // identity
  pid: number;
  tgid: number;
  ppid: number;
  /** ac_comm: the 15-character task name. Empty in TGID records (completed from a PID record or /proc). */
  comm: string;
  uid: number;
  gid: number;
  /** ac_flag bits: AFORK 0x01, ASU 0x02, ACORE 0x08, AXSIG 0x10, AGROUP 0x20. */
  flags: number;
  nice: number;
  sched: number;
  /** Process start, seconds since the epoch (ac_btime64, or ac_btime before v10). */
  startTimeSec: number;

  // exit status (exit records; 0 for live ones)
  /** Raw wait status (ac_exitcode). */
  exitStatus: number;
  /** WEXITSTATUS when the process exited normally, else -1. */
  exitCode: number;
  /** Signal that killed the process, 0 if it exited normally. */
  exitSignal: number;
  coreDumped: boolean;

  // time
  /** ac_etime: since this thread started. */
  elapsedUs: number;
  /** ac_tgetime (version >= 12): since the thread group's leader started; 0 when absent. */
  groupElapsedUs: number;
  userUs: number;
  systemUs: number;
  userScaledUs: number;
  systemScaledUs: number;
  /** cpu_run_real_total: precise on-CPU time, nanoseconds. */
  cpuRunRealNs: number;
  cpuRunVirtualNs: number;

  // faults and memory
  minorFaults: number;
  majorFaults: number;
  /** hiwater_rss: peak resident set, KiB. */
  hiwaterRssKb: number;
  /** hiwater_vm: peak virtual memory, KiB. */
  hiwaterVmKb: number;
  /** coremem: accumulated RSS usage, MB-microseconds. */
  coreMemMbUs: number;
  /** virtmem: accumulated virtual memory usage, MB-microseconds. */
  virtMemMbUs: number;

  // I/O (the kernel rounds these down to multiples of 1024)
  readCharBytes: number;
  writeCharBytes: number;
  readSyscalls: number;
  writeSyscalls: number;
  readBytes: number;
  writeBytes: number;
  cancelledWriteBytes: number;

  // context switches
  voluntaryCtxSwitches: number;
  involuntaryCtxSwitches: number;

  // delay accounting: count, total (ns), and max/min (ns, version >= 16; else -1)
  cpuDelayCount: number;
  cpuDelayTotalNs: number;
  cpuDelayMaxNs: number;
  cpuDelayMinNs: number;
  blkioDelayCount: number;
  blkioDelayTotalNs: number;
  blkioDelayMaxNs: number;
  blkioDelayMinNs: number;
  swapinDelayCount: number;
  swapinDelayTotalNs: number;
  swapinDelayMaxNs: number;
  swapinDelayMinNs: number;
  freepagesDelayCount: number;
  freepagesDelayTotalNs: number;
  freepagesDelayMaxNs: number;
  freepagesDelayMinNs: number;
  thrashingDelayCount: number;
  thrashingDelayTotalNs: number;
  thrashingDelayMaxNs: number;
  thrashingDelayMinNs: number;
  compactDelayCount: number;
  compactDelayTotalNs: number;
  compactDelayMaxNs: number;
  compactDelayMinNs: number;
  wpcopyDelayCount: number;
  wpcopyDelayTotalNs: number;
  wpcopyDelayMaxNs: number;
  wpcopyDelayMinNs: number;
  irqDelayCount: number;
  irqDelayTotalNs: number;
  irqDelayMaxNs: number;
  irqDelayMinNs: number;
}

/**
 * What the receiver knows of a process beyond the kernel's record (process-metadata.ts hands it
 * out beside each record, valid until its next call; the record itself stays the kernel's).
 */
export interface ProcessInfo {
  /** cgroup path, e.g. `/system.slice/foo.service`; '' when unknown. */
  readonly cgroup: string;
  /** Executable path when configured, else ''. */
  readonly exePath: string;
  /** Command line (arguments joined by spaces) when configured, else ''. */
  readonly cmdline: string;
}

/** Nothing known. */
export const NO_PROCESS_INFO: ProcessInfo = Object.freeze({ cgroup: '', exePath: '', cmdline: '' });

/** ac_flag bits (include/uapi/linux/acct.h). */
export const AFORK = 0x01;
/** The record of a thread group's last thread (struct taskstats version >= 12). */
export const AGROUP = 0x20;

/**
 * Whether an exit datagram ends its process: the last thread's record has AGROUP (struct version
 * >= 12; seen on 6.18 on the last worker when the leader ended first, and on the only thread of a
 * single-threaded process), and a group record comes with it when there were several threads.
 * Older structs have no AGROUP: there the leader's record is taken as the end (it is, unless the
 * leader ended before its other threads). The one place this is decided: metadata forgets the
 * process and accounting emits its final sample on the same answer.
 */
export function endsProcess(thread: TaskRecord, group: TaskRecord | null): boolean {
  if (group !== null) return true;
  return thread.version >= 12 ? (thread.flags & AGROUP) !== 0 : thread.pid === (thread.tgid > 0 ? thread.tgid : thread.pid);
}

export const DELAY_KINDS = ['cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq'] as const;
export type DelayKind = (typeof DELAY_KINDS)[number];

/** What the table says of one field. */
export interface FieldSpec<T> {
  /** Value of a fresh record (and of a field the kernel's struct version lacks). */
  readonly initial: T;
  /** Name in `exits --json` / `pid --json` (snake_case, unit in the name); absent: not printed. */
  readonly json?: string;
  /** A delay accounting field: printed under `delays.KIND.PART` (max/min only when known, >= 0). */
  readonly delay?: readonly [DelayKind, 'count' | 'total_ns' | 'max_ns' | 'min_ns'];
  /** The cumulative counter this field supplies to accounting (schema.ts RAW; delays add their kind's index). */
  readonly counter?: keyof typeof RAW;
}

const delayFields = <K extends DelayKind>(k: K) =>
  ({
    [`${k}DelayCount`]: { initial: 0, delay: [k, 'count'], counter: 'DELAY_COUNT' },
    [`${k}DelayTotalNs`]: { initial: 0, delay: [k, 'total_ns'], counter: 'DELAY_TIME' },
    [`${k}DelayMaxNs`]: { initial: -1, delay: [k, 'max_ns'] },
    [`${k}DelayMinNs`]: { initial: -1, delay: [k, 'min_ns'] },
  }) as unknown as Record<`${K}DelayCount` | `${K}DelayTotalNs` | `${K}DelayMaxNs` | `${K}DelayMinNs`, FieldSpec<number>>;

/** Every field of TaskRecord, in the interface's order. */
export const TASK_RECORD_FIELDS = {
  kind: { initial: 'live', json: 'kind' },
  aggregate: { initial: 'pid', json: 'aggregate' },
  version: { initial: 0, json: 'version' },
  pid: { initial: 0, json: 'pid' },
  tgid: { initial: 0, json: 'tgid' },
  ppid: { initial: 0, json: 'ppid' },
  comm: { initial: '', json: 'comm' },
  uid: { initial: 0, json: 'uid' },
  gid: { initial: 0, json: 'gid' },
  flags: { initial: 0, json: 'flags' },
  nice: { initial: 0, json: 'nice' },
  sched: { initial: 0 },
  startTimeSec: { initial: 0, json: 'start_time' },
  exitStatus: { initial: 0, json: 'exit_status' },
  exitCode: { initial: -1, json: 'exit_code' },
  exitSignal: { initial: 0, json: 'exit_signal' },
  coreDumped: { initial: false, json: 'core_dumped' },
  elapsedUs: { initial: 0, json: 'elapsed_us' },
  groupElapsedUs: { initial: 0 },
  userUs: { initial: 0, json: 'utime_us', counter: 'USER' },
  systemUs: { initial: 0, json: 'stime_us', counter: 'SYSTEM' },
  userScaledUs: { initial: 0 },
  systemScaledUs: { initial: 0 },
  cpuRunRealNs: { initial: 0, json: 'cpu_run_real_ns' },
  cpuRunVirtualNs: { initial: 0, json: 'cpu_run_virtual_ns', counter: 'RUN_TIME' },
  minorFaults: { initial: 0, json: 'minflt', counter: 'MINOR' },
  majorFaults: { initial: 0, json: 'majflt', counter: 'MAJOR' },
  hiwaterRssKb: { initial: 0, json: 'hiwater_rss_kb' },
  hiwaterVmKb: { initial: 0, json: 'hiwater_vm_kb' },
  coreMemMbUs: { initial: 0, json: 'coremem_mb_us', counter: 'RSS_TIME' },
  virtMemMbUs: { initial: 0, json: 'virtmem_mb_us', counter: 'VIRTUAL_TIME' },
  readCharBytes: { initial: 0, json: 'read_char', counter: 'CHAR_READ' },
  writeCharBytes: { initial: 0, json: 'write_char', counter: 'CHAR_WRITE' },
  readSyscalls: { initial: 0, json: 'read_syscalls', counter: 'SYSCALL_READ' },
  writeSyscalls: { initial: 0, json: 'write_syscalls', counter: 'SYSCALL_WRITE' },
  readBytes: { initial: 0, json: 'read_bytes', counter: 'DISK_READ' },
  writeBytes: { initial: 0, json: 'write_bytes', counter: 'DISK_WRITE' },
  cancelledWriteBytes: { initial: 0, json: 'cancelled_write_bytes', counter: 'CANCELLED_WRITE' },
  voluntaryCtxSwitches: { initial: 0, json: 'nvcsw', counter: 'VOLUNTARY' },
  involuntaryCtxSwitches: { initial: 0, json: 'nivcsw', counter: 'INVOLUNTARY' },
  ...delayFields('cpu'),
  ...delayFields('blkio'),
  ...delayFields('swapin'),
  ...delayFields('freepages'),
  ...delayFields('thrashing'),
  ...delayFields('compact'),
  ...delayFields('wpcopy'),
  ...delayFields('irq'),
} as const satisfies { readonly [K in keyof TaskRecord]: FieldSpec<TaskRecord[K]> };

/** The fields, in table order. */
export const FIELD_NAMES = Object.keys(TASK_RECORD_FIELDS) as (keyof TaskRecord)[];

/** The fields whose value is a number (the live cache keeps these in Float64Array rows). */
export const NUMERIC_FIELDS = FIELD_NAMES.filter((k) => typeof TASK_RECORD_FIELDS[k].initial === 'number');

/**
 * Compiles a function from source made of the table (`new Function`, once at module load): the
 * record copy runs per process per sweep and per exit, and a loop over the names with `d[k] =
 * s[k]` would be a keyed, megamorphic access per field where written-out code is a fixed
 * property access (bench/live/sweep-micro.mjs compares them).
 */
export function compileFromTable(params: string[], body: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the source is made of the field table only
  return new Function(...params, body);
}

const newRecord = compileFromTable(
  [],
  `return {${FIELD_NAMES.map((k) => `${k}: ${JSON.stringify(TASK_RECORD_FIELDS[k].initial)}`).join(', ')}};`,
) as () => TaskRecord;
const copyInto = compileFromTable(['s', 'd'], FIELD_NAMES.map((k) => `d.${k} = s.${k};`).join('\n')) as (s: TaskRecord, d: TaskRecord) => void;

export function newTaskRecord(): TaskRecord {
  return newRecord();
}

/** Every field of `s` into `d` (a new record when not given); returns `d`. */
export function copyTaskRecord(s: TaskRecord, d: TaskRecord = newRecord()): TaskRecord {
  copyInto(s, d);
  return d;
}

/** One record as a JSON object with snake_case fields (units in the names), for `exits --json` and `pid --json`. */
export function recordToJson(r: TaskRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const rec = r as unknown as Record<string, unknown>;
  for (const k of FIELD_NAMES) {
    const f: FieldSpec<unknown> = TASK_RECORD_FIELDS[k];
    const v = rec[k];
    if (f.delay !== undefined) {
      const [kind, part] = f.delay;
      const delays = (o.delays ??= {}) as Record<string, Record<string, unknown>>;
      const d = (delays[kind] ??= {});
      if ((part !== 'max_ns' && part !== 'min_ns') || (v as number) >= 0) d[part] = v;
    } else if (f.json !== undefined) {
      o[f.json] = v;
    }
  }
  return o;
}
