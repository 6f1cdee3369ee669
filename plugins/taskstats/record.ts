/**
 * TaskRecord: one typed record for both sources of the taskstats receiver, a live query
 * (`kind: 'live'`) and an exit event (`kind: 'exit'`), and for both aggregates (one thread, `pid`,
 * or a whole thread group, `tgid`). Field names say their unit.
 *
 * It is flat on purpose: the exit path handles ~14,000 records a second, and nested objects per
 * record measurably cost CPU. The parser may fill
 * and reuse one instance; consumers that keep a record must copy it (`copyTaskRecord`).
 *
 * Fields the kernel's struct version does not carry are 0 (counters) or -1 where noted; check
 * `version` when the difference matters (e.g. max/min delays need version >= 16).
 */
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

  // process metadata (from the receiver's caches, not the kernel struct)
  /** cgroup v2 path, e.g. `/system.slice/foo.service`; '' when unknown. */
  cgroup: string;
  /** Executable path when configured, else ''. */
  exePath: string;
  /** Command line (arguments joined by spaces) when configured, else ''. */
  cmdline: string;
}

export const DELAY_KINDS = ['cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq'] as const;
export type DelayKind = (typeof DELAY_KINDS)[number];

export function newTaskRecord(): TaskRecord {
  return {
    kind: 'live',
    aggregate: 'pid',
    version: 0,
    pid: 0,
    tgid: 0,
    ppid: 0,
    comm: '',
    uid: 0,
    gid: 0,
    flags: 0,
    nice: 0,
    sched: 0,
    startTimeSec: 0,
    exitStatus: 0,
    exitCode: -1,
    exitSignal: 0,
    coreDumped: false,
    elapsedUs: 0,
    groupElapsedUs: 0,
    userUs: 0,
    systemUs: 0,
    userScaledUs: 0,
    systemScaledUs: 0,
    cpuRunRealNs: 0,
    cpuRunVirtualNs: 0,
    minorFaults: 0,
    majorFaults: 0,
    hiwaterRssKb: 0,
    hiwaterVmKb: 0,
    coreMemMbUs: 0,
    virtMemMbUs: 0,
    readCharBytes: 0,
    writeCharBytes: 0,
    readSyscalls: 0,
    writeSyscalls: 0,
    readBytes: 0,
    writeBytes: 0,
    cancelledWriteBytes: 0,
    voluntaryCtxSwitches: 0,
    involuntaryCtxSwitches: 0,
    cpuDelayCount: 0,
    cpuDelayTotalNs: 0,
    cpuDelayMaxNs: -1,
    cpuDelayMinNs: -1,
    blkioDelayCount: 0,
    blkioDelayTotalNs: 0,
    blkioDelayMaxNs: -1,
    blkioDelayMinNs: -1,
    swapinDelayCount: 0,
    swapinDelayTotalNs: 0,
    swapinDelayMaxNs: -1,
    swapinDelayMinNs: -1,
    freepagesDelayCount: 0,
    freepagesDelayTotalNs: 0,
    freepagesDelayMaxNs: -1,
    freepagesDelayMinNs: -1,
    thrashingDelayCount: 0,
    thrashingDelayTotalNs: 0,
    thrashingDelayMaxNs: -1,
    thrashingDelayMinNs: -1,
    compactDelayCount: 0,
    compactDelayTotalNs: 0,
    compactDelayMaxNs: -1,
    compactDelayMinNs: -1,
    wpcopyDelayCount: 0,
    wpcopyDelayTotalNs: 0,
    wpcopyDelayMaxNs: -1,
    wpcopyDelayMinNs: -1,
    irqDelayCount: 0,
    irqDelayTotalNs: 0,
    irqDelayMaxNs: -1,
    irqDelayMinNs: -1,
    cgroup: '',
    exePath: '',
    cmdline: '',
  };
}

export function copyTaskRecord(r: TaskRecord): TaskRecord {
  return { ...r };
}
