/**
 * Everything the exec watcher thread (exec-watcher-thread.ts) and the main thread
 * (exec-watcher.ts) share, in one layout: the results ring (writer and reader side by side), the
 * exec numbers, and the counters. Shared memory, not messages: a MessagePort costs a structured
 * clone in the thread and a wake-up of the main event loop per exec (~60 us of main-thread CPU
 * per exec, measured), while the main thread drains the ring synchronously before it fills a
 * record (one shared-memory load when nothing is pending).
 *
 * Results: each is RESULT_INTS int32 in `slots` (fields R_*), its capture time in `captured`,
 * and its strings as UTF-8 bytes in `arena`, a byte ring whose space is handed out in publication
 * order and given back by the reader (int32 positions that wrap; the arena's size divides 2^32).
 * Control words (C_*): published and consumed result counts, the arena position up to which the
 * reader is done, and whether a nudge is outstanding. The writer stores a result's fields, then
 * C_PUBLISHED; the reader loads C_PUBLISHED first, then the fields.
 */
import { MAX_PATH_BYTES } from './proc-reader.js';

/** A result carries the cgroup read at the exec (exe and cmdline too when EXEC_RESULT_DETAILS is set). */
export const EXEC_RESULT_CGROUP = 1;
/** A result carries the executable path and command line. Alone: the details of an exec whose cgroup came earlier. */
export const EXEC_RESULT_DETAILS = 2;

/**
 * Receives what the watcher read at one exec. `what` says which fields are set:
 * EXEC_RESULT_CGROUP (cgroup; exePath and cmdline '' unless EXEC_RESULT_DETAILS too), or
 * EXEC_RESULT_DETAILS alone (exePath and cmdline of the exec numbered execSeq, whose cgroup result
 * came before; cgroup ''). capturedSec: wall-clock time of the read.
 */
export type ExecResultHandler = (tgid: number, execSeq: number, what: number, cgroup: string, exePath: string, cmdline: string, capturedSec: number) => void;

// ---- counters (Float64 slots, written by the thread, read by the main thread) ----

export const S_EXECS = 0;
/** Exec events whose process was gone before /proc could be read, or whose result found the ring full. */
export const S_MISSED = 1;
export const S_OVERFLOWS = 2;
/** The main thread's request to stop, read as Int32 index S_STOP * 2. */
export const S_STOP = 3;
export const S_CGROUP_READS = 4;
/** Exec event (kernel timestamp) to the end of its cgroup read, summed. */
export const S_DELAY_SUM_NS = 5;
export const S_DELAY_OVER_500US = 6;
/** Results dropped because the main thread had not taken RESULT_SLOTS of them (in S_MISSED when they carried the cgroup). */
export const S_DROPPED = 7;
/**
 * Read as Int32 indices S_OPEN_FDS * 2 (the connector socket) and + 1 (a /proc file being read):
 * fd + 1 while the thread holds it open, else 0. A thread that ends without closing them
 * (terminate(), an error, its heap limit) leaves them to the main thread, which closes them once
 * the thread is gone; an abandoned connector socket would stay subscribed, the kernel queueing
 * every exec of the machine into its 4 MiB buffer. Cleared before each close: at worst a leak,
 * never the close of an fd number reused meanwhile.
 */
export const S_OPEN_FDS = 8;
/**
 * Read as Int32 index S_SETUP * 2: 1 once the thread has made its koffi declarations (koffi.load,
 * lib.func). A worker terminated inside one aborts the whole process (FATAL ERROR:
 * Error::ThrowAsJavaScriptException napi_throw, koffi 3.3.4 on Node 26, seen in the soak test;
 * the crash of Koromix/koffi#190), and Node terminates every worker when the process exits: so
 * the thread declares everything before it reports ready, and an exit during start() first waits
 * for the declarations to end (milliseconds).
 */
export const S_SETUP = 9;
const S_SLOTS = 10;

// ---- exec numbers ----

/**
 * The watcher numbers every exec event it receives (a global counter, wrapping int32) and
 * records, before reading /proc, the last exec per slot (tgid & mask) as [tgid, seq]. A metadata
 * entry remembers the number of the exec it reflects (or the counter's value when it was read
 * from /proc); a larger number for the same pid in its slot at exit time means an exec of that
 * process is not applied yet (the exit record overtook the watcher's reads). Only a second exec
 * hashing to the same slot within the watcher's reaction time can hide one.
 */
const EXEC_SLOTS = 1 << 16;
const EXEC_SLOT_MASK = EXEC_SLOTS - 1;

/** a after b, for wrapping int32 sequence numbers. */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** [0]: the exec counter; then [tgid, seq] per slot. */
export class ExecNumbers {
  constructor(readonly words: Int32Array = new Int32Array(new SharedArrayBuffer(4 * (1 + 2 * EXEC_SLOTS)))) {}

  /** Thread side: numbers an exec of tgid and records it in tgid's slot; returns its number. */
  next(tgid: number): number {
    const seq = (Atomics.add(this.words, 0, 1) + 1) | 0;
    const slot = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    Atomics.store(this.words, slot + 1, seq);
    Atomics.store(this.words, slot, tgid);
    return seq;
  }

  /** The number of the last exec received; entries read from /proc now reflect it. */
  current(): number {
    return Atomics.load(this.words, 0);
  }

  /** Whether an exec of tgid numbered after `seq` was received (its result may not be applied yet). */
  after(tgid: number, seq: number): boolean {
    const i = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    return Atomics.load(this.words, i) === tgid && seqAfter(Atomics.load(this.words, i + 1), seq);
  }

  /** Whether `seq` numbers the latest exec of tgid received (its slot was not taken since). */
  isLatest(tgid: number, seq: number): boolean {
    const i = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    return Atomics.load(this.words, i) === tgid && Atomics.load(this.words, i + 1) === seq;
  }

  /** Whether the last exec received in tgid's slot was tgid's. */
  seen(tgid: number): boolean {
    return Atomics.load(this.words, 1 + 2 * (tgid & EXEC_SLOT_MASK)) === tgid;
  }
}

// ---- the results ring ----

export const RESULT_SLOTS = 4096;
const RESULT_MASK = RESULT_SLOTS - 1;
const RESULT_INTS = 10;
const R_TGID = 0;
const R_SEQ = 1;
const R_WHAT = 2;
const R_CG_OFF = 3;
const R_CG_LEN = 4;
const R_EXE_OFF = 5;
const R_EXE_LEN = 6;
const R_CMD_OFF = 7;
const R_CMD_LEN = 8;
const R_ARENA_END = 9;
const C_PUBLISHED = 0;
const C_CONSUMED = 1;
const C_ARENA_FREED = 2;
const C_NUDGED = 3;

export interface ResultRing {
  control: Int32Array;
  slots: Int32Array;
  captured: Float64Array;
  arena: Uint8Array;
}

/** The shared memory of one watcher (passed to its thread in workerData). */
export interface WatcherShared {
  counters: Float64Array;
  execNumbers: Int32Array;
  ring: ResultRing;
}

export function newWatcherShared(maxCommandLineBytes: number): WatcherShared {
  // Room for at least 64 results of the largest size, and 1 MiB (thousands of typical ones).
  const need = 64 * (2 * MAX_PATH_BYTES + maxCommandLineBytes);
  let arenaBytes = 1 << 20;
  while (arenaBytes < need && arenaBytes < 1 << 30) arenaBytes *= 2;
  return {
    counters: new Float64Array(new SharedArrayBuffer(8 * S_SLOTS)),
    execNumbers: new ExecNumbers().words,
    ring: {
      control: new Int32Array(new SharedArrayBuffer(4 * 4)),
      slots: new Int32Array(new SharedArrayBuffer(4 * RESULT_INTS * RESULT_SLOTS)),
      captured: new Float64Array(new SharedArrayBuffer(8 * RESULT_SLOTS)),
      arena: new Uint8Array(new SharedArrayBuffer(arenaBytes)),
    },
  };
}

/** Copies short byte strings: Buffer.copy with offsets allocates a view per call. */
function copyBytes(from: Uint8Array, fromStart: number, to: Uint8Array, toStart: number, len: number): void {
  for (let i = 0; i < len; i++) to[toStart + i] = from[fromStart + i]!;
}

/**
 * The watcher thread's side: publishes results, or drops one (counted) when the reader has not
 * taken the last RESULT_SLOTS results or half the arena is still in its hands. Asks the main
 * thread to drain (`nudge`, once until it does) when the ring is half full or a result is lost;
 * otherwise the main thread drains on its own schedule. Allocates nothing.
 */
export class ResultRingWriter {
  private readonly control: Int32Array;
  private readonly slots: Int32Array;
  private readonly captured: Float64Array;
  private readonly arena: Uint8Array;
  private readonly arenaMask: number;
  /** Arena write position (int32, wrapping). */
  private arenaWrite = 0;
  private published = 0;
  private recStart = 0;

  constructor(
    ring: ResultRing,
    private readonly counters: Float64Array,
    private readonly nudge: () => void,
  ) {
    this.control = ring.control;
    this.slots = ring.slots;
    this.captured = ring.captured;
    this.arena = ring.arena;
    this.arenaMask = ring.arena.length - 1;
  }

  /**
   * One result: the cgroup bytes cg[cgStart, cgEnd) when `what` has EXEC_RESULT_CGROUP, the
   * first exeLen bytes of exe and cmdLen of cmd when it has EXEC_RESULT_DETAILS.
   */
  publish(
    tgid: number,
    seq: number,
    what: number,
    cg: Uint8Array,
    cgStart: number,
    cgEnd: number,
    exe: Uint8Array,
    exeLen: number,
    cmd: Uint8Array,
    cmdLen: number,
  ): void {
    const control = this.control;
    const slots = this.slots;
    this.recStart = this.arenaWrite;
    if (((this.published - Atomics.load(control, C_CONSUMED)) | 0) >= RESULT_SLOTS) {
      this.drop(what);
      return;
    }
    const b = (this.published & RESULT_MASK) * RESULT_INTS;
    if ((what & EXEC_RESULT_CGROUP) !== 0) {
      const len = Math.min(cgEnd - cgStart, MAX_PATH_BYTES);
      const off = this.alloc(len);
      if (off < 0) {
        this.drop(what);
        return;
      }
      copyBytes(cg, cgStart, this.arena, off, len);
      slots[b + R_CG_OFF] = off;
      slots[b + R_CG_LEN] = len;
    }
    if ((what & EXEC_RESULT_DETAILS) !== 0) {
      const exeOff = exeLen > 0 ? this.alloc(exeLen) : 0;
      const cmdOff = cmdLen > 0 && exeOff >= 0 ? this.alloc(cmdLen) : 0;
      if (exeOff < 0 || cmdOff < 0) {
        this.drop(what);
        return;
      }
      copyBytes(exe, 0, this.arena, exeOff, exeLen);
      copyBytes(cmd, 0, this.arena, cmdOff, cmdLen);
      slots[b + R_EXE_OFF] = exeOff;
      slots[b + R_EXE_LEN] = exeLen;
      slots[b + R_CMD_OFF] = cmdOff;
      slots[b + R_CMD_LEN] = cmdLen;
    }
    slots[b + R_TGID] = tgid;
    slots[b + R_SEQ] = seq;
    slots[b + R_WHAT] = what;
    slots[b + R_ARENA_END] = this.arenaWrite;
    this.captured[b / RESULT_INTS] = Date.now() / 1000;
    this.published = (this.published + 1) | 0;
    Atomics.store(control, C_PUBLISHED, this.published); // after the fields: the reader loads this first
    if (
      (((this.published - Atomics.load(control, C_CONSUMED)) | 0) >= RESULT_SLOTS / 2 ||
        ((this.arenaWrite - Atomics.load(control, C_ARENA_FREED)) | 0) >= this.arena.length / 2) &&
      Atomics.compareExchange(control, C_NUDGED, 0, 1) === 0
    ) {
      this.nudge();
    }
  }

  /** Space for len contiguous bytes; returns its offset, or -1 when the reader is too far behind. */
  private alloc(len: number): number {
    const size = this.arena.length;
    let pos = this.arenaWrite & this.arenaMask;
    let skip = 0;
    if (pos + len > size) {
      skip = size - pos;
      pos = 0;
    }
    const used = (this.arenaWrite - Atomics.load(this.control, C_ARENA_FREED)) | 0;
    if (used + skip + len > size) return -1;
    this.arenaWrite = (this.arenaWrite + skip + len) | 0;
    return pos;
  }

  /** This result is lost, and counted; as a miss when it carried the cgroup (details alone leave the exec attributed). */
  private drop(what: number): void {
    const s = this.counters;
    this.arenaWrite = this.recStart;
    s[S_DROPPED] = s[S_DROPPED]! + 1;
    if ((what & EXEC_RESULT_CGROUP) !== 0) s[S_MISSED] = s[S_MISSED]! + 1;
    if (Atomics.compareExchange(this.control, C_NUDGED, 0, 1) === 0) this.nudge();
  }
}

/** The main thread's side: decodes every published result, in order, and gives the space back. */
export class ResultRingReader {
  private readonly arena: Buffer;
  private consumed = 0;
  private draining = false;
  /** The last cgroup decoded and its bytes: consecutive execs are mostly in one cgroup, so most results decode nothing. */
  private lastCgroup = '';
  private readonly lastCgroupBytes = Buffer.alloc(MAX_PATH_BYTES);
  private lastCgroupLen = -1;

  constructor(private readonly ring: ResultRing) {
    this.arena = Buffer.from(ring.arena.buffer);
  }

  /** Whether results wait and no drain is under way (one shared-memory load). */
  get pending(): boolean {
    return !this.draining && Atomics.load(this.ring.control, C_PUBLISHED) !== this.consumed;
  }

  /** Hands every result published so far to onResult (none while a drain is under way: onResult may drain). */
  drain(onResult: ExecResultHandler): void {
    const { control, slots, captured } = this.ring;
    const published = Atomics.load(control, C_PUBLISHED);
    if (published === this.consumed || this.draining) return;
    this.draining = true;
    const arena = this.arena;
    let c = this.consumed;
    let arenaEnd = 0;
    try {
      while (c !== published) {
        const b = (c & RESULT_MASK) * RESULT_INTS;
        c = (c + 1) | 0;
        const what = slots[b + R_WHAT]!;
        let cgroup = '';
        if ((what & EXEC_RESULT_CGROUP) !== 0) {
          const off = slots[b + R_CG_OFF]!;
          const len = slots[b + R_CG_LEN]!;
          if (len !== this.lastCgroupLen || arena.compare(this.lastCgroupBytes, 0, len, off, off + len) !== 0) {
            this.lastCgroup = arena.toString('utf8', off, off + len);
            arena.copy(this.lastCgroupBytes, 0, off, off + len);
            this.lastCgroupLen = len;
          }
          cgroup = this.lastCgroup;
        }
        let exePath = '';
        let cmdline = '';
        if ((what & EXEC_RESULT_DETAILS) !== 0) {
          const exeLen = slots[b + R_EXE_LEN]!;
          if (exeLen > 0) exePath = arena.toString('utf8', slots[b + R_EXE_OFF], slots[b + R_EXE_OFF]! + exeLen);
          const cmdLen = slots[b + R_CMD_LEN]!;
          if (cmdLen > 0) cmdline = arena.toString('utf8', slots[b + R_CMD_OFF], slots[b + R_CMD_OFF]! + cmdLen);
        }
        arenaEnd = slots[b + R_ARENA_END]!;
        this.consumed = c;
        onResult(slots[b + R_TGID]!, slots[b + R_SEQ]!, what, cgroup, exePath, cmdline, captured[b / RESULT_INTS]!);
      }
    } finally {
      // Hand the space back (strings were decoded before each callback).
      Atomics.store(control, C_ARENA_FREED, arenaEnd);
      Atomics.store(control, C_CONSUMED, this.consumed);
      Atomics.store(control, C_NUDGED, 0);
      this.draining = false;
    }
  }
}
