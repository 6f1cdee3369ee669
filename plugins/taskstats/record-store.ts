/**
 * A compact store of TaskRecords kept across sweeps (the live poller's cache: one per live
 * process). A TaskRecord object holds its 68 numbers as heap-allocated doubles (16 bytes each
 * plus the object's slot: ~1.5 KB a record, 8.5 MB of the main heap with 5,000 processes);
 * here the numbers are rows of one Float64Array (544 bytes a record, no object per record, no
 * garbage when a row is rewritten) and the strings stay in the caller's entry.
 * docs/deploy.md, "Memory".
 */
import type { TaskRecord } from './record.js';

/** The numeric fields of a TaskRecord, in row order (every field but kind, aggregate, comm, coreDumped, cgroup, exePath, cmdline). */
export const RECORD_NUMBERS = 68;

/**
 * Rows of `stride` doubles (stride >= RECORD_NUMBERS: the columns after the record's are the
 * caller's). A row's offset stays valid until it is released (the array grows by copying).
 */
export class RecordRows {
  /** The rows; read it again after alloc() (it may have been replaced by a larger one). */
  f: Float64Array;
  private readonly freeRows: number[] = [];
  private next = 0;

  constructor(
    readonly stride: number,
    initialRows = 1024,
  ) {
    if (stride < RECORD_NUMBERS) throw new RangeError(`RecordRows stride ${stride} < ${RECORD_NUMBERS}`);
    this.f = new Float64Array(stride * initialRows);
  }

  /** Offset of a free row (its contents are undefined). */
  alloc(): number {
    const reused = this.freeRows.pop();
    if (reused !== undefined) return reused;
    const o = this.next;
    if (o + this.stride > this.f.length) {
      const grown = new Float64Array(this.f.length * 2);
      grown.set(this.f);
      this.f = grown;
    }
    this.next = o + this.stride;
    return o;
  }

  release(o: number): void {
    this.freeRows.push(o);
  }

  /** Releases every row (and memory beyond the initial size). */
  clear(initialRows = 1024): void {
    this.freeRows.length = 0;
    this.next = 0;
    if (this.f.length > this.stride * initialRows) this.f = new Float64Array(this.stride * initialRows);
  }

  /** Rows in use. */
  get size(): number {
    return this.next / this.stride - this.freeRows.length;
  }
}

/** The numbers of `s` into the row at `o` (written out: ~as cheap as copyTaskRecordInto). */
export function storeRecordNumbers(s: TaskRecord, f: Float64Array, o: number): void {
  f[o + 0] = s.version;
  f[o + 1] = s.pid;
  f[o + 2] = s.tgid;
  f[o + 3] = s.ppid;
  f[o + 4] = s.uid;
  f[o + 5] = s.gid;
  f[o + 6] = s.flags;
  f[o + 7] = s.nice;
  f[o + 8] = s.sched;
  f[o + 9] = s.startTimeSec;
  f[o + 10] = s.exitStatus;
  f[o + 11] = s.exitCode;
  f[o + 12] = s.exitSignal;
  f[o + 13] = s.elapsedUs;
  f[o + 14] = s.userUs;
  f[o + 15] = s.systemUs;
  f[o + 16] = s.userScaledUs;
  f[o + 17] = s.systemScaledUs;
  f[o + 18] = s.cpuRunRealNs;
  f[o + 19] = s.cpuRunVirtualNs;
  f[o + 20] = s.minorFaults;
  f[o + 21] = s.majorFaults;
  f[o + 22] = s.hiwaterRssKb;
  f[o + 23] = s.hiwaterVmKb;
  f[o + 24] = s.coreMemMbUs;
  f[o + 25] = s.virtMemMbUs;
  f[o + 26] = s.readCharBytes;
  f[o + 27] = s.writeCharBytes;
  f[o + 28] = s.readSyscalls;
  f[o + 29] = s.writeSyscalls;
  f[o + 30] = s.readBytes;
  f[o + 31] = s.writeBytes;
  f[o + 32] = s.cancelledWriteBytes;
  f[o + 33] = s.voluntaryCtxSwitches;
  f[o + 34] = s.involuntaryCtxSwitches;
  f[o + 35] = s.cpuDelayCount;
  f[o + 36] = s.cpuDelayTotalNs;
  f[o + 37] = s.cpuDelayMaxNs;
  f[o + 38] = s.cpuDelayMinNs;
  f[o + 39] = s.blkioDelayCount;
  f[o + 40] = s.blkioDelayTotalNs;
  f[o + 41] = s.blkioDelayMaxNs;
  f[o + 42] = s.blkioDelayMinNs;
  f[o + 43] = s.swapinDelayCount;
  f[o + 44] = s.swapinDelayTotalNs;
  f[o + 45] = s.swapinDelayMaxNs;
  f[o + 46] = s.swapinDelayMinNs;
  f[o + 47] = s.freepagesDelayCount;
  f[o + 48] = s.freepagesDelayTotalNs;
  f[o + 49] = s.freepagesDelayMaxNs;
  f[o + 50] = s.freepagesDelayMinNs;
  f[o + 51] = s.thrashingDelayCount;
  f[o + 52] = s.thrashingDelayTotalNs;
  f[o + 53] = s.thrashingDelayMaxNs;
  f[o + 54] = s.thrashingDelayMinNs;
  f[o + 55] = s.compactDelayCount;
  f[o + 56] = s.compactDelayTotalNs;
  f[o + 57] = s.compactDelayMaxNs;
  f[o + 58] = s.compactDelayMinNs;
  f[o + 59] = s.wpcopyDelayCount;
  f[o + 60] = s.wpcopyDelayTotalNs;
  f[o + 61] = s.wpcopyDelayMaxNs;
  f[o + 62] = s.wpcopyDelayMinNs;
  f[o + 63] = s.irqDelayCount;
  f[o + 64] = s.irqDelayTotalNs;
  f[o + 65] = s.irqDelayMaxNs;
  f[o + 66] = s.irqDelayMinNs;
  f[o + 67] = s.groupElapsedUs;
}

/** The row at `o` into the numbers of `d` (its other fields are left as they are). */
export function loadRecordNumbers(f: Float64Array, o: number, d: TaskRecord): void {
  d.version = f[o + 0]!;
  d.pid = f[o + 1]!;
  d.tgid = f[o + 2]!;
  d.ppid = f[o + 3]!;
  d.uid = f[o + 4]!;
  d.gid = f[o + 5]!;
  d.flags = f[o + 6]!;
  d.nice = f[o + 7]!;
  d.sched = f[o + 8]!;
  d.startTimeSec = f[o + 9]!;
  d.exitStatus = f[o + 10]!;
  d.exitCode = f[o + 11]!;
  d.exitSignal = f[o + 12]!;
  d.elapsedUs = f[o + 13]!;
  d.userUs = f[o + 14]!;
  d.systemUs = f[o + 15]!;
  d.userScaledUs = f[o + 16]!;
  d.systemScaledUs = f[o + 17]!;
  d.cpuRunRealNs = f[o + 18]!;
  d.cpuRunVirtualNs = f[o + 19]!;
  d.minorFaults = f[o + 20]!;
  d.majorFaults = f[o + 21]!;
  d.hiwaterRssKb = f[o + 22]!;
  d.hiwaterVmKb = f[o + 23]!;
  d.coreMemMbUs = f[o + 24]!;
  d.virtMemMbUs = f[o + 25]!;
  d.readCharBytes = f[o + 26]!;
  d.writeCharBytes = f[o + 27]!;
  d.readSyscalls = f[o + 28]!;
  d.writeSyscalls = f[o + 29]!;
  d.readBytes = f[o + 30]!;
  d.writeBytes = f[o + 31]!;
  d.cancelledWriteBytes = f[o + 32]!;
  d.voluntaryCtxSwitches = f[o + 33]!;
  d.involuntaryCtxSwitches = f[o + 34]!;
  d.cpuDelayCount = f[o + 35]!;
  d.cpuDelayTotalNs = f[o + 36]!;
  d.cpuDelayMaxNs = f[o + 37]!;
  d.cpuDelayMinNs = f[o + 38]!;
  d.blkioDelayCount = f[o + 39]!;
  d.blkioDelayTotalNs = f[o + 40]!;
  d.blkioDelayMaxNs = f[o + 41]!;
  d.blkioDelayMinNs = f[o + 42]!;
  d.swapinDelayCount = f[o + 43]!;
  d.swapinDelayTotalNs = f[o + 44]!;
  d.swapinDelayMaxNs = f[o + 45]!;
  d.swapinDelayMinNs = f[o + 46]!;
  d.freepagesDelayCount = f[o + 47]!;
  d.freepagesDelayTotalNs = f[o + 48]!;
  d.freepagesDelayMaxNs = f[o + 49]!;
  d.freepagesDelayMinNs = f[o + 50]!;
  d.thrashingDelayCount = f[o + 51]!;
  d.thrashingDelayTotalNs = f[o + 52]!;
  d.thrashingDelayMaxNs = f[o + 53]!;
  d.thrashingDelayMinNs = f[o + 54]!;
  d.compactDelayCount = f[o + 55]!;
  d.compactDelayTotalNs = f[o + 56]!;
  d.compactDelayMaxNs = f[o + 57]!;
  d.compactDelayMinNs = f[o + 58]!;
  d.wpcopyDelayCount = f[o + 59]!;
  d.wpcopyDelayTotalNs = f[o + 60]!;
  d.wpcopyDelayMaxNs = f[o + 61]!;
  d.wpcopyDelayMinNs = f[o + 62]!;
  d.irqDelayCount = f[o + 63]!;
  d.irqDelayTotalNs = f[o + 64]!;
  d.irqDelayMaxNs = f[o + 65]!;
  d.irqDelayMinNs = f[o + 66]!;
  d.groupElapsedUs = f[o + 67]!;
}
