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
 * string. (Over 500 lines because of the offset tables of struct taskstats' versions, which must
 * sit next to the code that reads them.)
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
  cpuCount: number;
  cpuTotal: number;
  cpuMax: number;
  cpuMin: number;
  blkioCount: number;
  blkioTotal: number;
  blkioMax: number;
  blkioMin: number;
  swapinCount: number;
  swapinTotal: number;
  swapinMax: number;
  swapinMin: number;
  runReal: number;
  runVirtual: number;
  comm: number;
  sched: number;
  uid: number;
  gid: number;
  pid: number;
  ppid: number;
  btime: number;
  etime: number;
  utime: number;
  stime: number;
  minflt: number;
  majflt: number;
  coremem: number;
  virtmem: number;
  hiwaterRss: number;
  hiwaterVm: number;
  readChar: number;
  writeChar: number;
  readSyscalls: number;
  writeSyscalls: number;
  readBytes: number;
  writeBytes: number;
  cancelledWriteBytes: number;
  nvcsw: number;
  nivcsw: number;
  utimeScaled: number;
  stimeScaled: number;
  freepagesCount: number;
  freepagesTotal: number;
  freepagesMax: number;
  freepagesMin: number;
  thrashingCount: number;
  thrashingTotal: number;
  thrashingMax: number;
  thrashingMin: number;
  btime64: number;
  compactCount: number;
  compactTotal: number;
  compactMax: number;
  compactMin: number;
  tgid: number;
  tgetime: number;
  wpcopyCount: number;
  wpcopyTotal: number;
  wpcopyMax: number;
  wpcopyMin: number;
  irqCount: number;
  irqTotal: number;
  irqMax: number;
  irqMin: number;
  /** Size of the struct this table describes fully. */
  size: number;
}

/** Versions 4-14, 16, 17: append-only; max/min at the end since v16. v17 adds 8 timespecs (688 bytes). */
const LAYOUT: Layout = {
  cpuCount: 16,
  cpuTotal: 24,
  blkioCount: 32,
  blkioTotal: 40,
  swapinCount: 48,
  swapinTotal: 56,
  runReal: 64,
  runVirtual: 72,
  comm: 80,
  sched: 112,
  uid: 120,
  gid: 124,
  pid: 128,
  ppid: 132,
  btime: 136,
  etime: 144,
  utime: 152,
  stime: 160,
  minflt: 168,
  majflt: 176,
  coremem: 184,
  virtmem: 192,
  hiwaterRss: 200,
  hiwaterVm: 208,
  readChar: 216,
  writeChar: 224,
  readSyscalls: 232,
  writeSyscalls: 240,
  readBytes: 248,
  writeBytes: 256,
  cancelledWriteBytes: 264,
  nvcsw: 272,
  nivcsw: 280,
  utimeScaled: 288,
  stimeScaled: 296,
  freepagesCount: 312,
  freepagesTotal: 320,
  thrashingCount: 328,
  thrashingTotal: 336,
  btime64: 344,
  compactCount: 352,
  compactTotal: 360,
  tgid: 368,
  tgetime: 376,
  wpcopyCount: 400,
  wpcopyTotal: 408,
  irqCount: 416,
  irqTotal: 424,
  cpuMax: 432,
  cpuMin: 440,
  blkioMax: 448,
  blkioMin: 456,
  swapinMax: 464,
  swapinMin: 472,
  freepagesMax: 480,
  freepagesMin: 488,
  thrashingMax: 496,
  thrashingMin: 504,
  compactMax: 512,
  compactMin: 520,
  wpcopyMax: 528,
  wpcopyMin: 536,
  irqMax: 544,
  irqMin: 552,
  size: 688,
};

/**
 * Version 15 only: max and min were inserted after each delay total, shifting everything behind
 * them (kernel commit "taskstats: fix struct taskstats breaks backward compatibility since
 * version 15"). Same total size as v16 (560).
 */
const LAYOUT_V15: Layout = {
  cpuCount: 16,
  cpuTotal: 24,
  cpuMax: 32,
  cpuMin: 40,
  blkioCount: 48,
  blkioTotal: 56,
  blkioMax: 64,
  blkioMin: 72,
  swapinCount: 80,
  swapinTotal: 88,
  swapinMax: 96,
  swapinMin: 104,
  runReal: 112,
  runVirtual: 120,
  comm: 128,
  sched: 160,
  uid: 168,
  gid: 172,
  pid: 176,
  ppid: 180,
  btime: 184,
  etime: 192,
  utime: 200,
  stime: 208,
  minflt: 216,
  majflt: 224,
  coremem: 232,
  virtmem: 240,
  hiwaterRss: 248,
  hiwaterVm: 256,
  readChar: 264,
  writeChar: 272,
  readSyscalls: 280,
  writeSyscalls: 288,
  readBytes: 296,
  writeBytes: 304,
  cancelledWriteBytes: 312,
  nvcsw: 320,
  nivcsw: 328,
  utimeScaled: 336,
  stimeScaled: 344,
  freepagesCount: 360,
  freepagesTotal: 368,
  freepagesMax: 376,
  freepagesMin: 384,
  thrashingCount: 392,
  thrashingTotal: 400,
  thrashingMax: 408,
  thrashingMin: 416,
  btime64: 424,
  compactCount: 432,
  compactTotal: 440,
  compactMax: 448,
  compactMin: 456,
  tgid: 464,
  tgetime: 472,
  wpcopyCount: 496,
  wpcopyTotal: 504,
  wpcopyMax: 512,
  wpcopyMin: 520,
  irqCount: 528,
  irqTotal: 536,
  irqMax: 544,
  irqMin: 552,
  size: 560,
};

/**
 * Version 1 only (Linux 2.6.18): `__u16 version; __u16 padding[3];` then the eight delay
 * accounting u64s from offset 8, 72 bytes in all. Version 2 put ac_exitcode, ac_flag and ac_nice
 * in front and aligned cpu_count to 16, which every later version keeps.
 */
const LAYOUT_V1: Layout = {
  ...LAYOUT,
  cpuCount: 8,
  cpuTotal: 16,
  blkioCount: 24,
  blkioTotal: 32,
  swapinCount: 40,
  swapinTotal: 48,
  runReal: 56,
  runVirtual: 64,
  size: 72,
};

/**
 * Versions 2 and 3 (Linux 2.6.19, 2.6.20-rc): before the aligned(8) attributes of v4 (kernel
 * commit 7e40f2ab0a7e, whose message lists these x86-64 offsets), ac_uid followed ac_pad at 116
 * and every field from there on sat 4 or 8 bytes lower. v2 ends after write_syscalls (240 bytes),
 * v3 after cancelled_write_bytes (264).
 */
const LAYOUT_V2_V3: Layout = {
  ...LAYOUT,
  uid: 116,
  gid: 120,
  pid: 124,
  ppid: 128,
  btime: 132,
  etime: 136,
  utime: 144,
  stime: 152,
  minflt: 160,
  majflt: 168,
  coremem: 176,
  virtmem: 184,
  hiwaterRss: 192,
  hiwaterVm: 200,
  readChar: 208,
  writeChar: 216,
  readSyscalls: 224,
  writeSyscalls: 232,
  readBytes: 240,
  writeBytes: 248,
  cancelledWriteBytes: 256,
  size: 264,
};

function layoutOf(version: number): Layout {
  return version === 15 ? LAYOUT_V15 : version === 1 ? LAYOUT_V1 : version < 4 ? LAYOUT_V2_V3 : LAYOUT;
}

/** Little-endian reads from bytes already bounds-checked by the caller (cheaper than Buffer.read*). */
function rd16(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function rdi32(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}
function rd32(b: Buffer, o: number): number {
  return rdi32(b, o) >>> 0;
}

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
    return off >= 0 && off + NLMSG_HDRLEN <= buf.length ? rd32(buf, off + 8) : 0;
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
    const msgEnd = this.header(buf, off, end);
    if (msgEnd <= 0) return msgEnd;
    let result = 0;
    let a = off + NLMSG_HDRLEN + GENL_HDRLEN;
    while (a + 4 <= msgEnd) {
      const nlaLen = rd16(buf, a);
      const nlaType = rd16(buf, a + 2) & NLA_TYPE_MASK;
      if (nlaLen < 4 || a + nlaLen > msgEnd) return result !== 0 ? result : PARSE_MALFORMED;
      if (nlaType === TYPE_AGGR_PID || nlaType === TYPE_AGGR_TGID) {
        const isPid = nlaType === TYPE_AGGR_PID;
        if (!this.findStats(buf, a + 4, a + nlaLen)) return result !== 0 ? result : PARSE_MALFORMED;
        this.fillLocated(buf, isPid, kind, isPid ? pidRec : tgidRec);
        result |= isPid ? PARSED_PID : PARSED_TGID;
      }
      // TASKSTATS_TYPE_NULL (padding) and anything unknown are skipped.
      a += (nlaLen + 3) & ~3;
    }
    return result;
  }

  /** After locate() (and during parseMessage): the record's id and where its struct lies. */
  id = 0;
  statsOff = 0;
  statsLen = 0;

  /**
   * The first record of the message at `off`, found but not read (a GET reply holds one): its
   * id, struct offset and length go to `id`, `statsOff`, `statsLen`; `seq`, `next`, `errno` as
   * in parseMessage. Lets a caller look at a few fields (activityOf) before paying for the
   * whole record (fillLocated).
   * @returns PARSED_PID or PARSED_TGID (the nest found), PARSE_IGNORED, or a negative PARSE_* status.
   */
  locate(buf: Buffer, off: number, end: number): number {
    const msgEnd = this.header(buf, off, end);
    if (msgEnd <= 0) return msgEnd;
    let a = off + NLMSG_HDRLEN + GENL_HDRLEN;
    while (a + 4 <= msgEnd) {
      const nlaLen = rd16(buf, a);
      const nlaType = rd16(buf, a + 2) & NLA_TYPE_MASK;
      if (nlaLen < 4 || a + nlaLen > msgEnd) return PARSE_MALFORMED;
      if (nlaType === TYPE_AGGR_PID || nlaType === TYPE_AGGR_TGID) {
        if (!this.findStats(buf, a + 4, a + nlaLen)) return PARSE_MALFORMED;
        return nlaType === TYPE_AGGR_PID ? PARSED_PID : PARSED_TGID;
      }
      a += (nlaLen + 3) & ~3;
    }
    return PARSE_IGNORED;
  }

  /**
   * Fill `rec` from the record found by the last locate() (or parseMessage) in the same `buf`.
   * `isPid`: the nest was AGGR_PID (locate returned PARSED_PID).
   */
  fillLocated(buf: Buffer, isPid: boolean, kind: 'live' | 'exit', rec: TaskRecord): void {
    fillRecord(buf, this.statsOff, this.statsLen, rec);
    rec.kind = kind;
    rec.aggregate = isPid ? 'pid' : 'tgid';
    // Metadata comes from process-metadata.ts, never from a previous message.
    // TGID records leave pid/tgid at 0 (seen on 6.18): the nest's id is the group's.
    const id = this.id;
    if (isPid) {
      rec.pid = id;
      if (rec.tgid === 0) rec.tgid = id;
    } else {
      rec.tgid = id;
      if (rec.pid === 0) rec.pid = id;
    }
  }

  /**
   * Checks the netlink and generic netlink headers of the message at `off`; sets next, type,
   * seq (and errno). @returns the message's end (> 0) when it is a taskstats record message to
   * walk, else a PARSE_* status (<= 0).
   */
  private header(buf: Buffer, off: number, end: number): number {
    this.next = end;
    if (end > buf.length) end = buf.length;
    if (off < 0 || off + NLMSG_HDRLEN > end) return PARSE_TRUNCATED;
    const msgLen = rd32(buf, off);
    if (msgLen < NLMSG_HDRLEN || msgLen > end - off) return PARSE_TRUNCATED;
    this.next = Math.min(end, off + ((msgLen + 3) & ~3));
    const type = rd16(buf, off + 4);
    this.type = type;
    this.seq = rd32(buf, off + 8);
    if (type === NLMSG_ERROR) {
      if (msgLen < NLMSG_HDRLEN + 4) return PARSE_MALFORMED;
      const err = rdi32(buf, off + NLMSG_HDRLEN);
      if (err === 0) return PARSE_IGNORED; // an ACK
      this.errno = -err;
      return PARSE_NETLINK_ERROR;
    }
    if (type !== this.familyId) return PARSE_IGNORED;
    if (msgLen < NLMSG_HDRLEN + GENL_HDRLEN) return PARSE_MALFORMED;
    if (buf[off + NLMSG_HDRLEN] !== TASKSTATS_CMD_NEW) return PARSE_IGNORED;
    return off + msgLen;
  }

  /** One AGGR_* nest: the id attribute and STATS; sets id, statsOff, statsLen. */
  private findStats(buf: Buffer, p: number, end: number): boolean {
    let id = -1;
    let statsOff = -1;
    let statsLen = 0;
    while (p + 4 <= end) {
      const len = rd16(buf, p);
      const type = rd16(buf, p + 2) & NLA_TYPE_MASK;
      if (len < 4 || p + len > end) return false;
      if ((type === TYPE_PID || type === TYPE_TGID) && len >= 8) id = rd32(buf, p + 4);
      else if (type === TYPE_STATS) {
        statsOff = p + 4;
        statsLen = len - 4;
      }
      p += (len + 3) & ~3;
    }
    // The version field (u16) is the least a struct can carry.
    if (id < 0 || statsOff < 0 || statsLen < 2) return false;
    this.id = id;
    this.statsOff = statsOff;
    this.statsLen = statsLen;
    return true;
  }
}

/**
 * What changes whenever any thread of a process runs, read from a struct taskstats without
 * filling a record: [0] runs (cpu_count: sched_info pcount), [1] on-CPU time (cpu_run_real_total,
 * ns), [2] voluntary + involuntary context switches. Absent fields read 0.
 */
export function activityOf(buf: Buffer, s: number, len: number, out: Float64Array): void {
  if (s < 0 || len < 2 || s + len > buf.length) {
    out[0] = out[1] = out[2] = 0;
    return;
  }
  const L = layoutOf(buf[s]! | (buf[s + 1]! << 8));
  const lim = s + Math.min(len, L.size);
  out[0] = u64b(buf, s + L.cpuCount, lim);
  out[1] = u64b(buf, s + L.runReal, lim);
  out[2] = u64b(buf, s + L.nvcsw, lim) + u64b(buf, s + L.nivcsw, lim);
}

function u64b(b: Buffer, o: number, lim: number): number {
  return o + 8 <= lim ? rd32(b, o) + rd32(b, o + 4) * TWO32 : 0;
}

/**
 * The payload's words are read through a Uint32Array over the datagram's memory (a typed-array
 * read costs ~1-2 ns; Buffer.readUInt32LE ~13 ns here, and a record has ~140 words: measured in
 * bench/live/sweep-micro.mjs). That needs the payload 4-byte aligned in its ArrayBuffer, which it
 * is in a receive buffer of our own (Buffer.alloc) since the kernel aligns attributes to 4 bytes.
 * Otherwise (a pooled or sliced Buffer, a fuzzed offset) the payload is first copied into an
 * aligned scratch buffer. One view is kept for the last buffer seen (a receiver reuses one).
 */
let viewOf: Buffer | null = null;
let view: Uint32Array = new Uint32Array(0);
const alignedScratch = Buffer.alloc(1024);
const ZERO_PAYLOAD = Buffer.alloc(8);
const alignedScratchView: Uint32Array = new Uint32Array(alignedScratch.buffer, alignedScratch.byteOffset, alignedScratch.length >>> 2);

function wordsOf(buf: Buffer): Uint32Array {
  if (buf !== viewOf) {
    viewOf = buf;
    view = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
  }
  return view;
}

/** u64 at byte offset `o` (4-aligned) of `w`, or `absent` when it does not end by `lim`. */
function u64w(w: Uint32Array, o: number, lim: number, absent: number): number {
  return o + 8 <= lim ? w[o >>> 2]! + w[(o >>> 2) + 1]! * TWO32 : absent;
}
function u32w(w: Uint32Array, o: number, lim: number): number {
  return o + 4 <= lim ? w[o >>> 2]! : 0;
}

/**
 * Fill `rec` from a struct taskstats payload at `s` of `len` bytes. Every field of the record is
 * written (absent ones reset), so a reused record never carries values from a previous message.
 */
export function fillRecord(buf: Buffer, s: number, len: number, rec: TaskRecord): void {
  // Callers pass a checked attribute; stay within the buffer anyway.
  if (s < 0 || s >= buf.length) len = 0;
  else if (s + len > buf.length) len = buf.length - s;
  if (len < 2) {
    buf = ZERO_PAYLOAD; // version 0: every field absent
    s = 0;
    len = 2;
  }
  const version = buf[s]! | (buf[s + 1]! << 8);
  const L = layoutOf(version);
  const n = Math.min(len, L.size);
  let w: Uint32Array;
  if (((buf.byteOffset | s) & 3) === 0) {
    w = wordsOf(buf);
  } else {
    buf.copy(alignedScratch, 0, s, s + n);
    buf = alignedScratch;
    s = 0;
    w = alignedScratchView;
  }
  const lim = s + n;
  // max/min delays: only v15's own slots or v16+'s tail; older structs have other data there.
  const mlim = version >= 15 ? lim : 0;

  rec.version = version;
  // v1 has padding where later versions have ac_exitcode, and cpu_count where they have ac_flag
  const hlim = version === 1 ? 0 : lim;
  const exitStatus = u32w(w, s + 4, hlim);
  const flags = s + 9 <= hlim ? buf[s + 8]! : 0;
  rec.flags = flags;
  rec.nice = s + 10 <= hlim ? buf[s + 9]! : 0;
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

  rec.cpuDelayCount = u64w(w, s + L.cpuCount, lim, 0);
  rec.cpuDelayTotalNs = u64w(w, s + L.cpuTotal, lim, 0);
  rec.blkioDelayCount = u64w(w, s + L.blkioCount, lim, 0);
  rec.blkioDelayTotalNs = u64w(w, s + L.blkioTotal, lim, 0);
  rec.swapinDelayCount = u64w(w, s + L.swapinCount, lim, 0);
  rec.swapinDelayTotalNs = u64w(w, s + L.swapinTotal, lim, 0);
  rec.cpuRunRealNs = u64w(w, s + L.runReal, lim, 0);
  rec.cpuRunVirtualNs = u64w(w, s + L.runVirtual, lim, 0);

  const c = s + L.comm;
  if (c + 32 <= lim) {
    let e = c;
    while (e < c + 32 && buf[e] !== 0) e++;
    rec.comm = e === c ? '' : buf.toString('utf8', c, e);
  } else rec.comm = '';
  rec.sched = s + L.sched + 1 <= lim ? buf[s + L.sched]! : 0;
  rec.uid = u32w(w, s + L.uid, lim);
  rec.gid = u32w(w, s + L.gid, lim);
  rec.pid = u32w(w, s + L.pid, lim);
  rec.ppid = u32w(w, s + L.ppid, lim);
  const btime64 = u64w(w, s + L.btime64, lim, 0);
  rec.startTimeSec = btime64 !== 0 ? btime64 : u32w(w, s + L.btime, lim);
  rec.elapsedUs = u64w(w, s + L.etime, lim, 0);
  rec.userUs = u64w(w, s + L.utime, lim, 0);
  rec.systemUs = u64w(w, s + L.stime, lim, 0);
  rec.minorFaults = u64w(w, s + L.minflt, lim, 0);
  rec.majorFaults = u64w(w, s + L.majflt, lim, 0);
  rec.coreMemMbUs = u64w(w, s + L.coremem, lim, 0);
  rec.virtMemMbUs = u64w(w, s + L.virtmem, lim, 0);
  rec.hiwaterRssKb = u64w(w, s + L.hiwaterRss, lim, 0);
  rec.hiwaterVmKb = u64w(w, s + L.hiwaterVm, lim, 0);
  rec.readCharBytes = u64w(w, s + L.readChar, lim, 0);
  rec.writeCharBytes = u64w(w, s + L.writeChar, lim, 0);
  rec.readSyscalls = u64w(w, s + L.readSyscalls, lim, 0);
  rec.writeSyscalls = u64w(w, s + L.writeSyscalls, lim, 0);
  rec.readBytes = u64w(w, s + L.readBytes, lim, 0);
  rec.writeBytes = u64w(w, s + L.writeBytes, lim, 0);
  rec.cancelledWriteBytes = u64w(w, s + L.cancelledWriteBytes, lim, 0);
  rec.voluntaryCtxSwitches = u64w(w, s + L.nvcsw, lim, 0);
  rec.involuntaryCtxSwitches = u64w(w, s + L.nivcsw, lim, 0);
  rec.userScaledUs = u64w(w, s + L.utimeScaled, lim, 0);
  rec.systemScaledUs = u64w(w, s + L.stimeScaled, lim, 0);
  rec.freepagesDelayCount = u64w(w, s + L.freepagesCount, lim, 0);
  rec.freepagesDelayTotalNs = u64w(w, s + L.freepagesTotal, lim, 0);
  rec.thrashingDelayCount = u64w(w, s + L.thrashingCount, lim, 0);
  rec.thrashingDelayTotalNs = u64w(w, s + L.thrashingTotal, lim, 0);
  rec.compactDelayCount = u64w(w, s + L.compactCount, lim, 0);
  rec.compactDelayTotalNs = u64w(w, s + L.compactTotal, lim, 0);
  rec.tgid = u32w(w, s + L.tgid, lim);
  rec.groupElapsedUs = u64w(w, s + L.tgetime, lim, 0);
  rec.wpcopyDelayCount = u64w(w, s + L.wpcopyCount, lim, 0);
  rec.wpcopyDelayTotalNs = u64w(w, s + L.wpcopyTotal, lim, 0);
  rec.irqDelayCount = u64w(w, s + L.irqCount, lim, 0);
  rec.irqDelayTotalNs = u64w(w, s + L.irqTotal, lim, 0);

  rec.cpuDelayMaxNs = u64w(w, s + L.cpuMax, mlim, -1);
  rec.cpuDelayMinNs = u64w(w, s + L.cpuMin, mlim, -1);
  rec.blkioDelayMaxNs = u64w(w, s + L.blkioMax, mlim, -1);
  rec.blkioDelayMinNs = u64w(w, s + L.blkioMin, mlim, -1);
  rec.swapinDelayMaxNs = u64w(w, s + L.swapinMax, mlim, -1);
  rec.swapinDelayMinNs = u64w(w, s + L.swapinMin, mlim, -1);
  rec.freepagesDelayMaxNs = u64w(w, s + L.freepagesMax, mlim, -1);
  rec.freepagesDelayMinNs = u64w(w, s + L.freepagesMin, mlim, -1);
  rec.thrashingDelayMaxNs = u64w(w, s + L.thrashingMax, mlim, -1);
  rec.thrashingDelayMinNs = u64w(w, s + L.thrashingMin, mlim, -1);
  rec.compactDelayMaxNs = u64w(w, s + L.compactMax, mlim, -1);
  rec.compactDelayMinNs = u64w(w, s + L.compactMin, mlim, -1);
  rec.wpcopyDelayMaxNs = u64w(w, s + L.wpcopyMax, mlim, -1);
  rec.wpcopyDelayMinNs = u64w(w, s + L.wpcopyMin, mlim, -1);
  rec.irqDelayMaxNs = u64w(w, s + L.irqMax, mlim, -1);
  rec.irqDelayMinNs = u64w(w, s + L.irqMin, mlim, -1);
}

/** True when a raw wait status says "exited normally" (WIFEXITED). */
function kindIsExitStatus(status: number): boolean {
  return (status & 0x7f) === 0;
}
