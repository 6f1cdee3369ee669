/**
 * The taskstats receiver's sample schemas: which metrics a process sample carries, in which
 * order, with which names, units and attributes. docs/metrics.md is the catalogue of the same.
 *
 * Names follow the OpenTelemetry semantic conventions where they exist (process.cpu.time,
 * process.disk.io, process.context_switches, process.paging.faults, process.exits); what only
 * taskstats knows lives under `process.linux.*`.
 *
 * Two schemas share one layout: the aggregate schema (one series per workload: counters only,
 * because the "last value" of a gauge summed over many processes means nothing) and the
 * per-process schema, which appends gauges (peak memory, worst delays) after the counters.
 */
import type { MetricDescriptor, SampleSchema } from '../../src/api/index.js';
import { DELAY_KINDS } from './record.js';

/** Attribute names used by the taskstats metrics (beyond ATTR in the API). */
export const TASKSTATS_ATTR = {
  CPU_MODE: 'cpu.mode',
  DISK_IO_DIRECTION: 'disk.io.direction',
  CONTEXT_SWITCH_TYPE: 'process.context_switch.type',
  PAGING_FAULT_TYPE: 'system.paging.fault.type',
  /** read | write, for character I/O and syscalls (not disk I/O, hence not disk.io.direction). */
  IO_DIRECTION: 'process.linux.io.direction',
  DELAY_TYPE: 'process.linux.delay.type',
  /** Point attribute of process.exits when a signal ended the process: its name, e.g. SIGKILL. */
  EXIT_SIGNAL: 'process.linux.exit.signal',
  EXIT_CODE: 'process.exit.code',
} as const;

function counter(name: string, unit: string, valueType: 'int' | 'double', description: string, pointAttributes?: Record<string, string>): MetricDescriptor {
  return { name, unit, description, instrument: 'counter', valueType, ...(pointAttributes ? { pointAttributes } : {}) };
}
function gauge(name: string, unit: string, valueType: 'int' | 'double', description: string, pointAttributes?: Record<string, string>): MetricDescriptor {
  return { name, unit, description, instrument: 'gauge', valueType, ...(pointAttributes ? { pointAttributes } : {}) };
}

const D = {
  cpu: 'Total CPU seconds broken down by mode: the scheduler runtime (cpu_run_virtual_total) split by the ac_utime / ac_stime ratio, as the kernel does for /proc.',
  disk: 'Bytes the process caused to be read from / written to storage (read_bytes / write_bytes).',
  ctx: 'Context switches (nvcsw / nivcsw).',
  faults: 'Page faults (ac_minflt / ac_majflt).',
  exits: 'Processes that ended, by exit code (or by the signal that killed them).',
  chars: 'Bytes passed to read/write-like system calls, cache hits included (read_char / write_char).',
  syscalls: 'Read/write-like system calls (read_syscalls / write_syscalls).',
  cancelled: 'Bytes whose writeback was cancelled, e.g. by truncating dirty pages (cancelled_write_bytes).',
  delayTime: 'Time spent waiting, by cause (delay accounting: *_delay_total).',
  delayCount: 'Number of waits, by cause (delay accounting: *_count).',
  rssTime: 'Resident memory integrated over CPU time (coremem), MiB x seconds.',
  virtTime: 'Virtual memory integrated over CPU time (virtmem), MiB x seconds.',
  runTime: 'Time on CPU as accounted by the scheduler (cpu_run_virtual_total = sum_exec_runtime), nanosecond precision; process.cpu.time summed over cpu.mode.',
  peakRss: 'Peak resident set size (hiwater_rss).',
  peakVirtual: 'Peak virtual memory size (hiwater_vm).',
  delayMax: 'Longest single wait, by cause (delay accounting *_delay_max; kernel struct version >= 16).',
};

/**
 * Index of each raw counter in a process's counter vector (ProcessAccounting's per-process state)
 * and of the sample value it becomes: the first RAW_COUNTERS sample values map 1:1 to these.
 */
export const RAW = {
  USER: 0,
  SYSTEM: 1,
  DISK_READ: 2,
  DISK_WRITE: 3,
  VOLUNTARY: 4,
  INVOLUNTARY: 5,
  MINOR: 6,
  MAJOR: 7,
  CHAR_READ: 8,
  CHAR_WRITE: 9,
  SYSCALL_READ: 10,
  SYSCALL_WRITE: 11,
  CANCELLED_WRITE: 12,
  /** 8 delay totals (DELAY_KINDS order) from here. */
  DELAY_TIME: 13,
  /** 8 delay counts from here. */
  DELAY_COUNT: 21,
  RSS_TIME: 29,
  VIRTUAL_TIME: 30,
  RUN_TIME: 31,
} as const;
export const RAW_COUNTERS = 32;

/** Sample value indices beyond the raw counters. */
export const VALUE = {
  ...RAW,
  /** process.exits: 1 on the final sample of a process, else 0. */
  EXITS: 32,
  /** Per-process schema only: gauges. */
  PEAK_RSS: 33,
  PEAK_VIRTUAL: 34,
  /** 8 delay maxima from here (per-process schema only). */
  DELAY_MAX: 35,
} as const;

/**
 * Multiplier from the raw unit to the exported unit, per raw counter: nanoseconds to seconds,
 * MiB x microseconds to MiB x seconds.
 */
export const RAW_SCALE: Float64Array = (() => {
  const s = new Float64Array(RAW_COUNTERS).fill(1);
  // user/system are carried in ns once split from the scheduler's runtime (see accounting.ts).
  s[RAW.USER] = 1e-9;
  s[RAW.SYSTEM] = 1e-9;
  for (let k = 0; k < DELAY_KINDS.length; k++) s[RAW.DELAY_TIME + k] = 1e-9;
  s[RAW.RSS_TIME] = 1e-6;
  s[RAW.VIRTUAL_TIME] = 1e-6;
  s[RAW.RUN_TIME] = 1e-9;
  return s;
})();

const COUNTERS: MetricDescriptor[] = [
  counter('process.cpu.time', 's', 'double', D.cpu, { [TASKSTATS_ATTR.CPU_MODE]: 'user' }),
  counter('process.cpu.time', 's', 'double', D.cpu, { [TASKSTATS_ATTR.CPU_MODE]: 'system' }),
  counter('process.disk.io', 'By', 'int', D.disk, { [TASKSTATS_ATTR.DISK_IO_DIRECTION]: 'read' }),
  counter('process.disk.io', 'By', 'int', D.disk, { [TASKSTATS_ATTR.DISK_IO_DIRECTION]: 'write' }),
  counter('process.context_switches', '{context_switch}', 'int', D.ctx, { [TASKSTATS_ATTR.CONTEXT_SWITCH_TYPE]: 'voluntary' }),
  counter('process.context_switches', '{context_switch}', 'int', D.ctx, { [TASKSTATS_ATTR.CONTEXT_SWITCH_TYPE]: 'involuntary' }),
  counter('process.paging.faults', '{fault}', 'int', D.faults, { [TASKSTATS_ATTR.PAGING_FAULT_TYPE]: 'minor' }),
  counter('process.paging.faults', '{fault}', 'int', D.faults, { [TASKSTATS_ATTR.PAGING_FAULT_TYPE]: 'major' }),
  counter('process.linux.io.chars', 'By', 'int', D.chars, { [TASKSTATS_ATTR.IO_DIRECTION]: 'read' }),
  counter('process.linux.io.chars', 'By', 'int', D.chars, { [TASKSTATS_ATTR.IO_DIRECTION]: 'write' }),
  counter('process.linux.io.syscalls', '{syscall}', 'int', D.syscalls, { [TASKSTATS_ATTR.IO_DIRECTION]: 'read' }),
  counter('process.linux.io.syscalls', '{syscall}', 'int', D.syscalls, { [TASKSTATS_ATTR.IO_DIRECTION]: 'write' }),
  counter('process.linux.disk.cancelled_write', 'By', 'int', D.cancelled),
  ...DELAY_KINDS.map((k) => counter('process.linux.delay.time', 's', 'double', D.delayTime, { [TASKSTATS_ATTR.DELAY_TYPE]: k })),
  ...DELAY_KINDS.map((k) => counter('process.linux.delay.count', '{delay}', 'int', D.delayCount, { [TASKSTATS_ATTR.DELAY_TYPE]: k })),
  counter('process.linux.memory.rss_time', 'MiBy.s', 'double', D.rssTime),
  counter('process.linux.memory.virtual_time', 'MiBy.s', 'double', D.virtTime),
  counter('process.linux.cpu.run_time', 's', 'double', D.runTime),
  {
    name: 'process.exits',
    unit: '{process}',
    description: D.exits,
    instrument: 'counter',
    valueType: 'int',
    samplePointAttributes: [TASKSTATS_ATTR.EXIT_CODE, TASKSTATS_ATTR.EXIT_SIGNAL],
  },
];

const GAUGES: MetricDescriptor[] = [
  gauge('process.linux.memory.peak_rss', 'By', 'int', D.peakRss),
  gauge('process.linux.memory.peak_virtual', 'By', 'int', D.peakVirtual),
  ...DELAY_KINDS.map((k) => gauge('process.linux.delay.max', 's', 'double', D.delayMax, { [TASKSTATS_ATTR.DELAY_TYPE]: k })),
];

/** Aggregate mode (the default): one series per (executable name, cgroup, processor attributes). */
export const PROCESS_SCHEMA: SampleSchema = Object.freeze({ id: 'taskstats.process', metrics: Object.freeze(COUNTERS) });

/** Per-process mode: the same counters, plus gauges that only mean something for one process. */
export const PROCESS_SCHEMA_PER_PROCESS: SampleSchema = Object.freeze({
  id: 'taskstats.process.per_process',
  metrics: Object.freeze([...COUNTERS, ...GAUGES]),
});

// Keep the index constants honest: a reordering above must fail loudly at load time.
function check(i: number, name: string, attr?: [string, string]): void {
  const d = PROCESS_SCHEMA_PER_PROCESS.metrics[i];
  if (!d || d.name !== name || (attr && d.pointAttributes?.[attr[0]] !== attr[1])) {
    throw new Error(`taskstats schema: index ${i} is ${d?.name}, expected ${name}`);
  }
}
check(VALUE.USER, 'process.cpu.time', [TASKSTATS_ATTR.CPU_MODE, 'user']);
check(VALUE.CANCELLED_WRITE, 'process.linux.disk.cancelled_write');
check(VALUE.DELAY_TIME, 'process.linux.delay.time', [TASKSTATS_ATTR.DELAY_TYPE, 'cpu']);
check(VALUE.DELAY_COUNT + 7, 'process.linux.delay.count', [TASKSTATS_ATTR.DELAY_TYPE, 'irq']);
check(VALUE.RUN_TIME, 'process.linux.cpu.run_time');
check(VALUE.EXITS, 'process.exits');
check(VALUE.PEAK_RSS, 'process.linux.memory.peak_rss');
check(VALUE.DELAY_MAX + 7, 'process.linux.delay.max', [TASKSTATS_ATTR.DELAY_TYPE, 'irq']);
if (PROCESS_SCHEMA.metrics.length !== VALUE.EXITS + 1 || PROCESS_SCHEMA_PER_PROCESS.metrics.length !== VALUE.DELAY_MAX + 8) {
  throw new Error('taskstats schema: value layout does not match the descriptors');
}
