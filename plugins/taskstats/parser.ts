/**
 * Parser of TASKSTATS netlink datagrams: nlmsghdr -> genlmsghdr -> attributes (AGGR_PID /
 * AGGR_TGID nests holding PID/TGID + STATS) -> struct taskstats, into reusable TaskRecords.
 *
 * struct taskstats is versioned and (except v15) append-only. Fields are read with explicit
 * offsets (the STATS payload sits at a 4-mod-8 offset in the datagram) from the first
 * min(payload length, known size) bytes: a field beyond what the kernel sent is absent (0, or -1
 * for max/min delays). A newer version than known parses the known prefix. v15 inserted the
 * max/min delays in the middle of the struct (fixed by v16, which moved them to the end): it
 * has its own offset table.
 *
 * Never throws on malformed input: every read is bounds-checked against the message and the
 * attribute lengths, and the result is a status code. No allocation per record except the comm
 * string.
 */
import type { TaskRecord } from './record.js';

/** Bits of a successful parse: which records were filled. */
export const PARSED_PID = 1;
export const PARSED_TGID = 2;
/** Not a record: an acknowledgement, NLMSG_DONE/NOOP, another family, a command we ignore. */
export const PARSE_IGNORED = 0;
/** Fewer bytes than an nlmsghdr, or nlmsg_len out of range: the rest of the datagram is unusable. */
export const PARSE_TRUNCATED = -1;
/** NLMSG_ERROR with a non-zero error: `parser.errno` holds it (e.g. ESRCH for a vanished pid). */
export const PARSE_NETLINK_ERROR = -2;
/** A taskstats message whose attributes are inconsistent (bad lengths, nest without STATS...). */
export const PARSE_MALFORMED = -3;

const NLMSG_HDRLEN = 16;
const GENL_HDRLEN = 4;
const NLMSG_ERROR = 2;
const TASKSTATS_CMD_NEW = 2;
const TYPE_PID = 1;
const TYPE_TGID = 2;
const TYPE_STATS = 3;
const TYPE_AGGR_PID = 4;
const TYPE_AGGR_TGID = 5;
const NLA_TYPE_MASK = 0x3fff;

const TWO32 = 4294967296;

/** Offsets of struct taskstats fields (x86-64 / all 64-bit and 32-bit ABIs: the struct is packed by design). */
interface Layout {
  cpuCount: number; cpuTotal: number; cpuMax: number; cpuMin: number;
  blkioCount: number; blkioTotal: number; blkioMax: number; blkioMin: number;
  swapinCount: number; swapinTotal: number; swapinMax: number; swapinMin: number;
  runReal: number; runVirtual: number;
  comm: number; sched: number; uid: number; gid: number; pid: number; ppid: number; btime: number;
  etime: number; utime: number; stime: number; minflt: number; majflt: number;
  coremem: number; virtmem: number; hiwaterRss: number; hiwaterVm: number;
  readChar: number; writeChar: number; readSyscalls: number; writeSyscalls: number;
  readBytes: number; writeBytes: number; cancelledWriteBytes: number;
  nvcsw: number; nivcsw: number; utimeScaled: number; stimeScaled: number;
  freepagesCount: number; freepagesTotal: number; freepagesMax: number; freepagesMin: number;
  thrashingCount: number; thrashingTotal: number; thrashingMax: number; thrashingMin: number;
  btime64: number;
  compactCount: number; compactTotal: number; compactMax: number; compactMin: number;
  tgid: number;
  wpcopyCount: number; wpcopyTotal: number; wpcopyMax: number; wpcopyMin: number;
  irqCount: number; irqTotal: number; irqMax: number; irqMin: number;
  /** Size of the struct this table describes fully. */
  size: number;
}

/** Versions 1-14, 16, 17: append-only; max/min at the end since v16. v17 adds 8 timespecs (688 bytes). */
const LAYOUT: Layout = {
  cpuCount: 16, cpuTotal: 24, blkioCount: 32, blkioTotal: 40, swapinCount: 48, swapinTotal: 56,
  runReal: 64, runVirtual: 72, comm: 80, sched: 112, uid: 120, gid: 124, pid: 128, ppid: 132, btime: 136,
  etime: 144, utime: 152, stime: 160, minflt: 168, majflt: 176, coremem: 184, virtmem: 192,
  hiwaterRss: 200, hiwaterVm: 208, readChar: 216, writeChar: 224, readSyscalls: 232, writeSyscalls: 240,
  readBytes: 248, writeBytes: 256, cancelledWriteBytes: 264, nvcsw: 272, nivcsw: 280,
  utimeScaled: 288, stimeScaled: 296, freepagesCount: 312, freepagesTotal: 320,
  thrashingCount: 328, thrashingTotal: 336, btime64: 344, compactCount: 352, compactTotal: 360,
  tgid: 368, wpcopyCount: 400, wpcopyTotal: 408, irqCount: 416, irqTotal: 424,
  cpuMax: 432, cpuMin: 440, blkioMax: 448, blkioMin: 456, swapinMax: 464, swapinMin: 472,
  freepagesMax: 480, freepagesMin: 488, thrashingMax: 496, thrashingMin: 504,
  compactMax: 512, compactMin: 520, wpcopyMax: 528, wpcopyMin: 536, irqMax: 544, irqMin: 552,
  size: 688,
};

/**
 * Version 15 only: max and min were inserted after each delay total, shifting everything behind
 * them (kernel commit "taskstats: fix struct taskstats breaks backward compatibility since
 * version 15"). Same total size as v16 (560).
 */
const LAYOUT_V15: Layout = {
  cpuCount: 16, cpuTotal: 24, cpuMax: 32, cpuMin: 40,
  blkioCount: 48, blkioTotal: 56, blkioMax: 64, blkioMin: 72,
  swapinCount: 80, swapinTotal: 88, swapinMax: 96, swapinMin: 104,
  runReal: 112, runVirtual: 120, comm: 128, sched: 160, uid: 168, gid: 172, pid: 176, ppid: 180, btime: 184,
  etime: 192, utime: 200, stime: 208, minflt: 216, majflt: 224, coremem: 232, virtmem: 240,
  hiwaterRss: 248, hiwaterVm: 256, readChar: 264, writeChar: 272, readSyscalls: 280, writeSyscalls: 288,
  readBytes: 296, writeBytes: 304, cancelledWriteBytes: 312, nvcsw: 320, nivcsw: 328,
  utimeScaled: 336, stimeScaled: 344,
  freepagesCount: 360, freepagesTotal: 368, freepagesMax: 376, freepagesMin: 384,
  thrashingCount: 392, thrashingTotal: 400, thrashingMax: 408, thrashingMin: 416,
  btime64: 424, compactCount: 432, compactTotal: 440, compactMax: 448, compactMin: 456,
  tgid: 464, wpcopyCount: 496, wpcopyTotal: 504, wpcopyMax: 512, wpcopyMin: 520,
  irqCount: 528, irqTotal: 536, irqMax: 544, irqMin: 552,
  size: 560,
};

/** Highest struct version whose layout this parser knows completely. */
export const KNOWN_TASKSTATS_VERSION = 17;

/**
 * Parses one netlink message at a time from a datagram. Reuse one instance (it holds no record).
 * Typical loop: `for (let off = 0; off < len; off = p.next) { const st = p.parseMessage(buf, off, len, ...); }`
 */
export class TaskstatsParser {
  /** Offset of the next message after parseMessage (== end when nothing follows or on truncation). */
  next = 0;
  /** errno of the last PARSE_NETLINK_ERROR (positive, e.g. 3 for ESRCH). */
  errno = 0;
  /** nlmsg_seq of the last message parsed (GET replies echo the request's). */
  seq = 0;
  /** nlmsg_type of the last message parsed. */
  type = 0;

  /** nlmsg_seq of the message at `off` (0 when truncated), without parsing it. */
  seqOf(buf: Buffer, off: number): number {
    return off >= 0 && off + NLMSG_HDRLEN <= buf.length ? buf.readUInt32LE(off + 8) : 0;
  }

  /** @param familyId the resolved TASKSTATS family id; messages of other types are ignored. */
  constructor(public familyId: number) {}

  /**
   * Parse the netlink message at `off` (bytes up to `end` belong to the datagram).
   * Fills `pidRec` for an AGGR_PID record, `tgidRec` for an AGGR_TGID record (either may be
   * filled or left untouched; `kind` is stamped on what is filled).
   * @returns a bitmask of PARSED_PID / PARSED_TGID, PARSE_IGNORED, or a negative PARSE_* status.
   */
  parseMessage(buf: Buffer, off: number, end: number, kind: 'live' | 'exit', pidRec: TaskRecord, tgidRec: TaskRecord): number {
    this.next = end;
    if (end > buf.length) end = buf.length;
    if (off < 0 || off + NLMSG_HDRLEN > end) return PARSE_TRUNCATED;
    const msgLen = buf.readUInt32LE(off);
    if (msgLen < NLMSG_HDRLEN || msgLen > end - off) return PARSE_TRUNCATED;
    const msgEnd = off + msgLen;
    this.next = Math.min(end, off + ((msgLen + 3) & ~3));
    const type = buf.readUInt16LE(off + 4);
    this.type = type;
    this.seq = buf.readUInt32LE(off + 8);
    if (type === NLMSG_ERROR) {
      if (msgLen < NLMSG_HDRLEN + 4) return PARSE_MALFORMED;
      const err = buf.readInt32LE(off + NLMSG_HDRLEN);
      if (err === 0) return PARSE_IGNORED; // an ACK
      this.errno = -err;
      return PARSE_NETLINK_ERROR;
    }
    if (type !== this.familyId) return PARSE_IGNORED;
    if (msgLen < NLMSG_HDRLEN + GENL_HDRLEN) return PARSE_MALFORMED;
    if (buf[off + NLMSG_HDRLEN] !== TASKSTATS_CMD_NEW) return PARSE_IGNORED;

    let result = 0;
    let a = off + NLMSG_HDRLEN + GENL_HDRLEN;
    while (a + 4 <= msgEnd) {
      const nlaLen = buf.readUInt16LE(a);
      const nlaType = buf.readUInt16LE(a + 2) & NLA_TYPE_MASK;
      if (nlaLen < 4 || a + nlaLen > msgEnd) return result !== 0 ? result : PARSE_MALFORMED;
      if (nlaType === TYPE_AGGR_PID || nlaType === TYPE_AGGR_TGID) {
        const isPid = nlaType === TYPE_AGGR_PID;
        const rec = isPid ? pidRec : tgidRec;
        if (!this.parseAggregate(buf, a + 4, a + nlaLen, isPid, kind, rec)) return result !== 0 ? result : PARSE_MALFORMED;
        result |= isPid ? PARSED_PID : PARSED_TGID;
      }
      // TASKSTATS_TYPE_NULL (padding) and anything unknown are skipped.
      a += (nlaLen + 3) & ~3;
    }
    return result;
  }

  /** One AGGR_* nest: the id attribute, then STATS. */
  private parseAggregate(buf: Buffer, p: number, end: number, isPid: boolean, kind: 'live' | 'exit', rec: TaskRecord): boolean {
    let id = -1;
    let statsOff = -1;
    let statsLen = 0;
    while (p + 4 <= end) {
      const len = buf.readUInt16LE(p);
      const type = buf.readUInt16LE(p + 2) & NLA_TYPE_MASK;
      if (len < 4 || p + len > end) return false;
      if ((type === TYPE_PID || type === TYPE_TGID) && len >= 8) id = buf.readUInt32LE(p + 4);
      else if (type === TYPE_STATS) {
        statsOff = p + 4;
        statsLen = len - 4;
      }
      p += (len + 3) & ~3;
    }
    // The version field (u16) is the least a struct can carry.
    if (id < 0 || statsOff < 0 || statsLen < 2) return false;
    fillRecord(buf, statsOff, statsLen, rec);
    rec.kind = kind;
    rec.aggregate = isPid ? 'pid' : 'tgid';
    // Metadata comes from process-metadata.ts, never from a previous message.
    rec.cgroup = '';
    rec.exePath = '';
    rec.cmdline = '';
    // TGID records leave pid/tgid at 0 (seen on 6.18): the nest's id is the group's.
    if (isPid) {
      rec.pid = id;
      if (rec.tgid === 0) rec.tgid = id;
    } else {
      rec.tgid = id;
      if (rec.pid === 0) rec.pid = id;
    }
    return true;
  }
}

function u64(buf: Buffer, o: number, limit: number): number {
  return o + 8 <= limit ? buf.readUInt32LE(o) + buf.readUInt32LE(o + 4) * TWO32 : 0;
}
function u64opt(buf: Buffer, o: number, limit: number): number {
  return o + 8 <= limit ? buf.readUInt32LE(o) + buf.readUInt32LE(o + 4) * TWO32 : -1;
}
function u32(buf: Buffer, o: number, limit: number): number {
  return o + 4 <= limit ? buf.readUInt32LE(o) : 0;
}

/**
 * Fill `rec` from a struct taskstats payload at `s` of `len` bytes. Every field of the record is
 * written (absent ones reset), so a reused record never carries values from a previous message.
 */
export function fillRecord(buf: Buffer, s: number, len: number, rec: TaskRecord): void {
  const version = buf.readUInt16LE(s);
  const L = version === 15 ? LAYOUT_V15 : LAYOUT;
  const lim = s + Math.min(len, L.size);
  // max/min delays: only v15's own slots or v16+'s tail; older structs have other data there.
  const hasMaxMin = version >= 15;
  const mlim = hasMaxMin ? lim : 0;

  rec.version = version;
  const exitStatus = u32(buf, s + 4, lim);
  const flags = s + 9 <= lim ? buf[s + 8]! : 0;
  rec.flags = flags;
  rec.nice = s + 10 <= lim ? buf[s + 9]! : 0;
  rec.exitStatus = exitStatus;
  if (kindIsExitStatus(exitStatus)) {
    rec.exitCode = (exitStatus >> 8) & 0xff;
    rec.exitSignal = 0;
    rec.coreDumped = false;
  } else {
    rec.exitCode = -1;
    rec.exitSignal = exitStatus & 0x7f;
    rec.coreDumped = (exitStatus & 0x80) !== 0 || (flags & 0x08) !== 0;
  }

  rec.cpuDelayCount = u64(buf, s + L.cpuCount, lim);
  rec.cpuDelayTotalNs = u64(buf, s + L.cpuTotal, lim);
  rec.blkioDelayCount = u64(buf, s + L.blkioCount, lim);
  rec.blkioDelayTotalNs = u64(buf, s + L.blkioTotal, lim);
  rec.swapinDelayCount = u64(buf, s + L.swapinCount, lim);
  rec.swapinDelayTotalNs = u64(buf, s + L.swapinTotal, lim);
  rec.cpuRunRealNs = u64(buf, s + L.runReal, lim);
  rec.cpuRunVirtualNs = u64(buf, s + L.runVirtual, lim);

  const c = s + L.comm;
  if (c + 32 <= lim) {
    let e = c;
    while (e < c + 32 && buf[e] !== 0) e++;
    rec.comm = e === c ? '' : buf.toString('utf8', c, e);
  } else rec.comm = '';
  rec.sched = s + L.sched + 1 <= lim ? buf[s + L.sched]! : 0;
  rec.uid = u32(buf, s + L.uid, lim);
  rec.gid = u32(buf, s + L.gid, lim);
  rec.pid = u32(buf, s + L.pid, lim);
  rec.ppid = u32(buf, s + L.ppid, lim);
  const btime64 = u64(buf, s + L.btime64, lim);
  rec.startTimeSec = btime64 !== 0 ? btime64 : u32(buf, s + L.btime, lim);
  rec.elapsedUs = u64(buf, s + L.etime, lim);
  rec.userUs = u64(buf, s + L.utime, lim);
  rec.systemUs = u64(buf, s + L.stime, lim);
  rec.minorFaults = u64(buf, s + L.minflt, lim);
  rec.majorFaults = u64(buf, s + L.majflt, lim);
  rec.coreMemMbUs = u64(buf, s + L.coremem, lim);
  rec.virtMemMbUs = u64(buf, s + L.virtmem, lim);
  rec.hiwaterRssKb = u64(buf, s + L.hiwaterRss, lim);
  rec.hiwaterVmKb = u64(buf, s + L.hiwaterVm, lim);
  rec.readCharBytes = u64(buf, s + L.readChar, lim);
  rec.writeCharBytes = u64(buf, s + L.writeChar, lim);
  rec.readSyscalls = u64(buf, s + L.readSyscalls, lim);
  rec.writeSyscalls = u64(buf, s + L.writeSyscalls, lim);
  rec.readBytes = u64(buf, s + L.readBytes, lim);
  rec.writeBytes = u64(buf, s + L.writeBytes, lim);
  rec.cancelledWriteBytes = u64(buf, s + L.cancelledWriteBytes, lim);
  rec.voluntaryCtxSwitches = u64(buf, s + L.nvcsw, lim);
  rec.involuntaryCtxSwitches = u64(buf, s + L.nivcsw, lim);
  rec.userScaledUs = u64(buf, s + L.utimeScaled, lim);
  rec.systemScaledUs = u64(buf, s + L.stimeScaled, lim);
  rec.freepagesDelayCount = u64(buf, s + L.freepagesCount, lim);
  rec.freepagesDelayTotalNs = u64(buf, s + L.freepagesTotal, lim);
  rec.thrashingDelayCount = u64(buf, s + L.thrashingCount, lim);
  rec.thrashingDelayTotalNs = u64(buf, s + L.thrashingTotal, lim);
  rec.compactDelayCount = u64(buf, s + L.compactCount, lim);
  rec.compactDelayTotalNs = u64(buf, s + L.compactTotal, lim);
  rec.tgid = u32(buf, s + L.tgid, lim);
  rec.wpcopyDelayCount = u64(buf, s + L.wpcopyCount, lim);
  rec.wpcopyDelayTotalNs = u64(buf, s + L.wpcopyTotal, lim);
  rec.irqDelayCount = u64(buf, s + L.irqCount, lim);
  rec.irqDelayTotalNs = u64(buf, s + L.irqTotal, lim);

  rec.cpuDelayMaxNs = u64opt(buf, s + L.cpuMax, mlim);
  rec.cpuDelayMinNs = u64opt(buf, s + L.cpuMin, mlim);
  rec.blkioDelayMaxNs = u64opt(buf, s + L.blkioMax, mlim);
  rec.blkioDelayMinNs = u64opt(buf, s + L.blkioMin, mlim);
  rec.swapinDelayMaxNs = u64opt(buf, s + L.swapinMax, mlim);
  rec.swapinDelayMinNs = u64opt(buf, s + L.swapinMin, mlim);
  rec.freepagesDelayMaxNs = u64opt(buf, s + L.freepagesMax, mlim);
  rec.freepagesDelayMinNs = u64opt(buf, s + L.freepagesMin, mlim);
  rec.thrashingDelayMaxNs = u64opt(buf, s + L.thrashingMax, mlim);
  rec.thrashingDelayMinNs = u64opt(buf, s + L.thrashingMin, mlim);
  rec.compactDelayMaxNs = u64opt(buf, s + L.compactMax, mlim);
  rec.compactDelayMinNs = u64opt(buf, s + L.compactMin, mlim);
  rec.wpcopyDelayMaxNs = u64opt(buf, s + L.wpcopyMax, mlim);
  rec.wpcopyDelayMinNs = u64opt(buf, s + L.wpcopyMin, mlim);
  rec.irqDelayMaxNs = u64opt(buf, s + L.irqMax, mlim);
  rec.irqDelayMinNs = u64opt(buf, s + L.irqMin, mlim);
}

/** True when a raw wait status says "exited normally" (WIFEXITED). */
function kindIsExitStatus(status: number): boolean {
  return (status & 0x7f) === 0;
}
