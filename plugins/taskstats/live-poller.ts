/**
 * LivePoller: one sweep queries every thread group listed in /proc and hands a complete
 * TaskRecord per process to a callback.
 *
 * What each query gives (taskstats-facts.md, seen on 6.18): a GET by TGID sums CPU times, delays
 * and context switches over all threads, living and dead, but leaves identity (comm, uid, btime,
 * ppid), memory, faults and I/O at zero. A GET by PID of the leader fills every field for that
 * one thread; memory peaks belong to the address space (the same for every thread), faults and
 * I/O to the thread. So per process:
 *   1. GET by TGID, then GET by PID of the leader, both queued in one send() with the other
 *      processes of the batch (one reply datagram per request, matched by sequence number);
 *   2. take identity, memory, faults and I/O from the leader's record;
 *   3. when the group's CPU exceeds the leader's (other threads run or ran: the TGID query is
 *      sent first, so a single-threaded process can only show the leader ahead), the leader's
 *      faults and I/O are not the process's: read /proc/PID/io and the fault counters of
 *      /proc/PID/stat, which cover all threads including dead ones (I/O rounded down to 1024
 *      as the kernel does for taskstats, so live and exit values stay comparable).
 * The measured cost of each option is in README.md.
 *
 * A process that ended meanwhile answers ESRCH: skipped, not an error.
 */
import { readdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { TaskstatsSocket, capNetAdminError, TaskstatsError } from './libnl.js';
import { TaskstatsParser, PARSED_PID, PARSED_TGID, PARSE_NETLINK_ERROR } from './parser.js';
import { newTaskRecord, type TaskRecord } from './record.js';
import { EAGAIN, EPERM, ESRCH } from './libc.js';

export interface LivePollerOptions {
  procRoot?: string;
  /** Processes per chunk before yielding to the event loop. */
  chunk?: number;
  /** Processes whose two GETs share one send(). */
  batch?: number;
}

export interface SweepStats {
  /** Thread groups listed in /proc. */
  listed: number;
  /** Complete records delivered. */
  records: number;
  /** Processes that ended between the listing and the query (ESRCH). */
  vanished: number;
  /** Multi-threaded processes whose I/O and faults were read from /proc. */
  procReads: number;
  /** ... of which /proc/PID/io was not readable (the leader's values were used). */
  procDenied: number;
  /** Processes none of whose threads ran since the previous sweep: no PID query, cached values. */
  cached: number;
  /** Replies missing or unexpected (should stay 0). */
  errors: number;
  durationMs: number;
}

/** Longest stretch of sweeping without yielding to the event loop (exit events wait meanwhile). */
const YIELD_AFTER_MS = 20;

interface CacheEntry {
  runs: number;
  runNs: number;
  switches: number;
  atMs: number;
  seen: number;
  leader: TaskRecord;
}

export class LivePoller {
  private sock: TaskstatsSocket | null = null;
  private parser: TaskstatsParser | null = null;
  private readonly buf = Buffer.alloc(64 * 1024);
  private readonly procRoot: string;
  private readonly chunk: number;
  private readonly batch: number;
  /** Per batch slot: the TGID record and the leader's PID record. */
  private readonly groupRecs: TaskRecord[] = [];
  private readonly leaderRecs: TaskRecord[] = [];
  private readonly state: Uint8Array;
  private readonly ids: number[] = [];
  private readonly scratch = newTaskRecord();
  private readonly needIds: number[] = [];
  private readonly needSlots: Uint16Array;
  /** Per thread group: the group sums of its last full query, and the leader's record then. */
  private readonly cache = new Map<number, CacheEntry>();
  private generation = 0;
  private running: Promise<SweepStats> | null = null;

  constructor(opts: LivePollerOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.chunk = opts.chunk ?? 500;
    this.batch = opts.batch ?? 64;
    for (let i = 0; i < this.batch; i++) {
      this.groupRecs.push(newTaskRecord());
      this.leaderRecs.push(newTaskRecord());
    }
    this.state = new Uint8Array(this.batch);
    this.needSlots = new Uint16Array(this.batch);
  }

  /** Opens the query socket and checks permission with one GET of our own process. @throws TaskstatsError */
  open(): void {
    if (this.sock) return;
    // Replies of one batch (2 x batch datagrams of ~600 bytes, ~1.3 KB of buffer each) must fit.
    const sock = TaskstatsSocket.open({ receiveBuffer: 4 * 1024 * 1024 });
    this.sock = sock;
    this.parser = new TaskstatsParser(sock.familyId);
    try {
      this.query(process.pid, this.scratch);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  close(): void {
    this.sock?.close();
    this.sock = null;
    this.cache.clear();
  }

  /** Processes whose last full reading is cached. */
  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * One thread group, completed as in a sweep (for the CLI and tests).
   * @returns the record, or null when the process does not exist. @throws TaskstatsError on EPERM.
   */
  query(tgid: number, out: TaskRecord): TaskRecord | null {
    if (!this.sock) this.open();
    this.ids.length = 0;
    this.ids.push(tgid);
    let found: TaskRecord | null = null;
    const stats: SweepStats = { listed: 0, records: 0, vanished: 0, procReads: 0, procDenied: 0, cached: 0, errors: 0, durationMs: 0 };
    this.queryBatch(this.ids, 0, 1, (r) => {
      Object.assign(out, r);
      found = out;
    }, stats, false);
    return found;
  }

  /**
   * Query every process once, calling `onRecord` per complete record (reused: copy to keep).
   * Yields to the event loop every `chunk` processes. Concurrent calls share one sweep.
   */
  sweep(onRecord: (rec: TaskRecord) => void): Promise<SweepStats> {
    if (this.running) return this.running;
    this.running = this.runSweep(onRecord).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runSweep(onRecord: (rec: TaskRecord) => void): Promise<SweepStats> {
    const t0 = performance.now();
    if (!this.sock) this.open();
    const stats: SweepStats = { listed: 0, records: 0, vanished: 0, procReads: 0, procDenied: 0, cached: 0, errors: 0, durationMs: 0 };
    const names = await readdir(this.procRoot);
    const ids: number[] = [];
    for (const n of names) {
      const c = n.charCodeAt(0);
      if (c >= 48 && c <= 57) {
        const id = Number(n);
        if (Number.isInteger(id)) ids.push(id);
      }
    }
    stats.listed = ids.length;
    const generation = ++this.generation;
    // Yield to the event loop every `chunk` processes, or sooner when a stretch took longer than
    // YIELD_AFTER_MS (a busy machine stretches the wall time of the same work).
    let sinceYield = 0;
    let stretchStart = performance.now();
    for (let i = 0; i < ids.length; i += this.batch) {
      if (!this.sock) return stats; // closed during the sweep (shutdown)
      const n = Math.min(this.batch, ids.length - i);
      this.queryBatch(ids, i, n, onRecord, stats);
      sinceYield += n;
      if (i + n < ids.length && (sinceYield >= this.chunk || performance.now() - stretchStart >= YIELD_AFTER_MS)) {
        await new Promise<void>((r) => setImmediate(r));
        sinceYield = 0;
        stretchStart = performance.now();
      }
    }
    // Forget processes that ended (not listed, or vanished, in this sweep).
    for (const [tgid, e] of this.cache) if (e.seen !== generation) this.cache.delete(tgid);
    stats.durationMs = performance.now() - t0;
    return stats;
  }

  /** Slot states while collecting replies. */
  private static readonly GOT_GROUP = 1;
  private static readonly GOT_LEADER = 2;
  private static readonly GONE = 4;
  private static readonly CACHED = 8;

  /**
   * Send `count` GETs (`by`) for `ids[from..]` in one send() and parse the replies into
   * `recs[slots[i]]` (or `recs[i]`); marks `state` with `got` or GONE; counts errors.
   */
  private exchange(by: 'pid' | 'tgid', ids: ArrayLike<number>, from: number, count: number, slots: Uint16Array | null, got: number, stats: SweepStats): void {
    const sock = this.sock!;
    const p = this.parser!;
    const firstSeq = sock.sendGets(by, ids, from, count);
    if (firstSeq < 0) {
      stats.errors += count;
      return;
    }
    const state = this.state;
    const recs = by === 'tgid' ? this.groupRecs : this.leaderRecs;
    const want = by === 'tgid' ? PARSED_TGID : PARSED_PID;
    let received = 0;
    while (received < count) {
      const n = sock.recv(this.buf);
      if (n === -EAGAIN) break; // replies lost (receive buffer overflow): counted below
      if (n < 0) continue;
      for (let off = 0; off < n; off = p.next) {
        const idx = (p.seqOf(this.buf, off) - firstSeq) >>> 0;
        if (idx >= count) {
          p.next = n; // a stale reply of an earlier exchange
          break;
        }
        const slot = slots ? slots[idx]! : idx;
        const rec = recs[slot]!;
        const st = p.parseMessage(this.buf, off, n, 'live', rec, rec);
        received++;
        if (st === PARSE_NETLINK_ERROR) {
          if (p.errno === ESRCH) state[slot]! |= LivePoller.GONE;
          else if (p.errno === EPERM) throw capNetAdminError('querying a process with TASKSTATS_CMD_GET');
          else stats.errors++;
        } else if (st & want) state[slot]! |= got;
        else stats.errors++;
        if (p.next <= off) break;
      }
    }
    if (received < count) stats.errors += count - received;
  }

  /**
   * One batch: GET by TGID for every process; then GET by PID of the leader only for the
   * processes that are new or ran since the previous sweep. A process none of whose threads ran
   * (same number of runs, CPU time and context switches in the group's sums) cannot have
   * changed its identity, memory, faults or I/O: those come from the cache.
   */
  private queryBatch(ids: ArrayLike<number>, from: number, count: number, onRecord: (rec: TaskRecord) => void, stats: SweepStats, useCache = true): void {
    const state = this.state;
    state.fill(0, 0, count);
    this.exchange('tgid', ids, from, count, null, LivePoller.GOT_GROUP, stats);
    const needIds = this.needIds;
    const needSlots = this.needSlots;
    let need = 0;
    for (let i = 0; i < count; i++) {
      if (state[i] !== LivePoller.GOT_GROUP) continue;
      const g = this.groupRecs[i]!;
      const e = useCache ? this.cache.get(g.tgid) : undefined;
      if (e && e.runs === g.cpuDelayCount && e.runNs === g.cpuRunRealNs && e.switches === g.voluntaryCtxSwitches + g.involuntaryCtxSwitches) {
        state[i]! |= LivePoller.CACHED;
        continue;
      }
      needIds[need] = g.tgid;
      needSlots[need] = i;
      need++;
    }
    if (need > 0) this.exchange('pid', needIds, 0, need, needSlots, LivePoller.GOT_LEADER, stats);
    const nowMs = Date.now();
    for (let i = 0; i < count; i++) {
      const s = state[i]!;
      if (s & LivePoller.GONE) {
        stats.vanished++;
        continue;
      }
      const g = this.groupRecs[i]!;
      let rec: TaskRecord | null = null;
      if (s & LivePoller.CACHED) {
        const e = this.cache.get(g.tgid)!;
        rec = this.copyFromLeader(g, e.leader);
        g.elapsedUs = e.leader.elapsedUs + (nowMs - e.atMs) * 1000;
        e.seen = this.generation;
        stats.cached++;
      } else if ((s & 3) === 3) {
        const l = this.leaderRecs[i]!;
        rec = this.complete(g, l, stats);
        if (rec && useCache) this.remember(g, l, nowMs);
      }
      if (rec) {
        stats.records++;
        onRecord(rec);
      }
    }
  }

  private remember(g: TaskRecord, l: TaskRecord, nowMs: number): void {
    let e = this.cache.get(g.tgid);
    if (!e) {
      e = { runs: 0, runNs: 0, switches: 0, atMs: 0, seen: 0, leader: newTaskRecord() };
      this.cache.set(g.tgid, e);
    }
    e.runs = g.cpuDelayCount;
    e.runNs = g.cpuRunRealNs;
    e.switches = g.voluntaryCtxSwitches + g.involuntaryCtxSwitches;
    e.atMs = nowMs;
    e.seen = this.generation;
    Object.assign(e.leader, l);
  }

  /** Identity and memory from the leader's record; faults and I/O too (the group's, when known). */
  private copyFromLeader(g: TaskRecord, l: TaskRecord): TaskRecord {
    g.pid = l.pid;
    g.tgid = l.tgid || g.tgid;
    g.ppid = l.ppid;
    g.comm = l.comm;
    g.uid = l.uid;
    g.gid = l.gid;
    g.flags = l.flags;
    g.nice = l.nice;
    g.sched = l.sched;
    g.startTimeSec = l.startTimeSec;
    g.elapsedUs = l.elapsedUs;
    g.exitStatus = 0;
    g.exitCode = -1;
    g.exitSignal = 0;
    g.coreDumped = false;
    g.hiwaterRssKb = l.hiwaterRssKb;
    g.hiwaterVmKb = l.hiwaterVmKb;
    g.coreMemMbUs = l.coreMemMbUs;
    g.virtMemMbUs = l.virtMemMbUs;
    g.minorFaults = l.minorFaults;
    g.majorFaults = l.majorFaults;
    g.readCharBytes = l.readCharBytes;
    g.writeCharBytes = l.writeCharBytes;
    g.readSyscalls = l.readSyscalls;
    g.writeSyscalls = l.writeSyscalls;
    g.readBytes = l.readBytes;
    g.writeBytes = l.writeBytes;
    g.cancelledWriteBytes = l.cancelledWriteBytes;
    return g;
  }

  /**
   * Completes the group record from the leader's record, and for a multi-threaded group its
   * faults and I/O from /proc (written into `l` too, so that the cache holds the group's values).
   */
  private complete(g: TaskRecord, l: TaskRecord, stats: SweepStats): TaskRecord | null {
    // The group was queried first: for a single-threaded process every sum of the group is at
    // most the leader's. More runs (sched_info pcount, counted even for a thread that never got
    // a tick), more CPU or more context switches mean other threads run or ran.
    const multiThreaded =
      g.cpuDelayCount > l.cpuDelayCount ||
      g.cpuRunRealNs > l.cpuRunRealNs ||
      g.voluntaryCtxSwitches + g.involuntaryCtxSwitches > l.voluntaryCtxSwitches + l.involuntaryCtxSwitches;
    if (multiThreaded) {
      // /proc has the group's faults and I/O (dead threads included).
      stats.procReads++;
      const read = this.readGroupCounters(l);
      if (read === 'gone') {
        stats.vanished++;
        return null;
      }
      // denied (ptrace access mode, e.g. without CAP_SYS_PTRACE): the leader's values stay.
      if (read === 'denied') stats.procDenied++;
    }
    return this.copyFromLeader(g, l);
  }

  /** /proc/PID/io and the faults of /proc/PID/stat into `g` (g.tgid names the process). */
  private readGroupCounters(g: TaskRecord): 'ok' | 'gone' | 'denied' {
    let io: string;
    let stat: string;
    try {
      io = readFileSync(`${this.procRoot}/${g.tgid}/io`, 'latin1');
      stat = readFileSync(`${this.procRoot}/${g.tgid}/stat`, 'latin1');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' || code === 'ESRCH' ? 'gone' : 'denied';
    }
    g.writeCharBytes = roundKb(ioField(io, 'wchar: '));
    g.readCharBytes = roundKb(ioField(io, 'rchar: '));
    g.readSyscalls = roundKb(ioField(io, 'syscr: '));
    g.writeSyscalls = roundKb(ioField(io, 'syscw: '));
    g.readBytes = roundKb(ioField(io, 'read_bytes: '));
    g.writeBytes = roundKb(ioField(io, 'write_bytes: '));
    g.cancelledWriteBytes = roundKb(ioField(io, 'cancelled_write_bytes: '));
    // stat: "pid (comm) state ppid ..." - comm may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    g.minorFaults = Number(fields[7]) || 0; // field 10 (minflt) counted from 'state' = field 3
    g.majorFaults = Number(fields[9]) || 0; // field 12 (majflt)
    return 'ok';
  }
}

function ioField(text: string, key: string): number {
  const i = text.indexOf(key);
  if (i < 0) return 0;
  let v = 0;
  for (let j = i + key.length; j < text.length; j++) {
    const c = text.charCodeAt(j) - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
  }
  return v;
}

/** The kernel rounds taskstats I/O down to a multiple of 1024 (KB_MASK): do the same with /proc. */
function roundKb(v: number): number {
  return v - (v % 1024);
}

export { TaskstatsError };
