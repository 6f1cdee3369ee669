/**
 * LivePoller: one sweep queries every thread group listed in /proc and hands a complete
 * TaskRecord per process to a callback.
 *
 * What each query gives (kernel/taskstats.c, seen on 6.18): a GET by TGID sums CPU times, delays
 * and context switches over all threads, living and dead, but leaves identity (comm, uid, btime,
 * ppid), memory, faults and I/O at zero. A GET by PID of the leader fills every field for that
 * one thread; memory peaks belong to the address space (the same for every thread), faults and
 * I/O to the thread. So per process:
 *   1. GET by TGID, queued in one send() with the other processes of the batch, the replies read
 *      by one recvmmsg() (one datagram per request, matched by sequence number);
 *   2. a process none of whose threads ran since its last full query (same runs, CPU time and
 *      context switches, read from the reply without parsing it) gets its cached complete record;
 *   3. otherwise the TGID record is parsed and a GET by PID of the leader follows (batched the
 *      same way); identity, memory, faults and I/O come from the leader's record;
 *   4. when the group's CPU exceeds the leader's (other threads run or ran: the TGID query is
 *      sent first, so a single-threaded process can only show the leader ahead), the leader's
 *      faults and I/O are not the process's: read /proc/PID/io and the fault counters of
 *      /proc/PID/stat, which cover all threads including dead ones (I/O rounded down to 1024
 *      as the kernel does for taskstats, so live and exit values stay comparable).
 * Nothing is allocated per process in the steady state. The measured cost of each choice is in
 * README.md (bench/live/sweep-micro.mjs): the kernel's GET and /proc listing are most of it.
 *
 * A process that ended meanwhile answers ESRCH: skipped, not an error.
 */
import { TaskstatsSocket } from './libnl.js';
import { TaskstatsParser, PARSED_PID, PARSED_TGID, PARSE_NETLINK_ERROR, activityOf } from './parser.js';
import { copyTaskRecord, newTaskRecord, type TaskRecord } from './record.js';
import { RECORD_NUMBERS, RecordRows, loadRecordNumbers, storeRecordNumbers } from './record-store.js';
import { DatagramBatch, capNetAdminError, EAGAIN, EINTR, ENOENT, EPERM, ESRCH } from './libc.js';
import { ProcReader, statField } from './proc-reader.js';
import { listProcessIdsYielding } from './proc-listing.js';

export interface LivePollerOptions {
  procRoot?: string;
  /** Processes per chunk before yielding to the event loop. */
  chunk?: number;
  /** Processes whose GETs share one send() and whose replies are read by one recvmmsg(). */
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
  /** Replies parsed into records (a group's and its leader's per process that ran; none for a cached one). */
  parsed: number;
  /** Replies missing or unexpected (should stay 0). */
  errors: number;
  durationMs: number;
}

/** Called per complete record of a sweep; `idle`: see LivePoller.sweep. */
export type SweepCallback = (rec: TaskRecord, idle: boolean) => void;

/** Longest stretch of sweeping without yielding to the event loop (exit events wait meanwhile). */
const YIELD_AFTER_MS = 20;
/** Bytes per getdents64() call when listing /proc (~24-32 bytes per entry: ~1,000 processes, ~1.3 ms here). */
const DIRENT_BUFFER_BYTES = 32 * 1024;

/** Columns of a cache row after the record's numbers: the group's activity at its last full query (see activityOf), and when. */
const ROW_RUNS = RECORD_NUMBERS;
const ROW_RUN_NS = RECORD_NUMBERS + 1;
const ROW_SWITCHES = RECORD_NUMBERS + 2;
const ROW_AT_MS = RECORD_NUMBERS + 3;
const ROW_STRIDE = RECORD_NUMBERS + 4;

/**
 * A process's complete record at its last full query (before any consumer touched it): its
 * numbers in a row of `LivePoller.rows` (RecordRows: no heap number per field), the rest here.
 */
interface CacheEntry {
  row: number;
  seen: number;
  kind: TaskRecord['kind'];
  aggregate: TaskRecord['aggregate'];
  comm: string;
  coreDumped: boolean;
}

export class LivePoller {
  private sock: TaskstatsSocket | null = null;
  private parser: TaskstatsParser | null = null;
  private readonly procRoot: string;
  private readonly chunk: number;
  private readonly batch: number;
  /** Replies of one exchange (one slot per request). */
  private readonly replies: DatagramBatch;
  /** Per batch slot: the TGID record and the leader's PID record. */
  private readonly groupRecs: TaskRecord[] = [];
  private readonly leaderRecs: TaskRecord[] = [];
  /** Per batch slot: the cache entry of a process found idle. */
  private readonly idleEntries: (CacheEntry | undefined)[] = [];
  private readonly state: Uint8Array;
  private readonly ids: number[] = [];
  private readonly scratch = newTaskRecord();
  /** The record handed to onRecord for a process served from the cache. */
  private readonly cachedOut = newTaskRecord();
  private readonly activity = new Float64Array(3);
  private readonly needIds: number[] = [];
  private readonly needSlots: Uint16Array;
  /** Per thread group: its activity at the last full query, and the complete record then. */
  private readonly cache = new Map<number, CacheEntry>();
  private readonly rows = new RecordRows(ROW_STRIDE);
  private pids: Int32Array = new Int32Array(8192);
  private dirents: Buffer | null = null;
  private generation = 0;
  private running: Promise<SweepStats> | null = null;
  private reader: ProcReader | undefined;
  private procBuf: Buffer | undefined;

  constructor(opts: LivePollerOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.chunk = opts.chunk ?? 512;
    this.batch = opts.batch ?? 64;
    if (!(this.batch >= 1 && this.batch <= 4096)) throw new RangeError(`LivePoller batch ${this.batch}: 1 to 4096`);
    for (let i = 0; i < this.batch; i++) {
      this.groupRecs.push(newTaskRecord());
      this.leaderRecs.push(newTaskRecord());
      this.idleEntries.push(undefined);
    }
    this.state = new Uint8Array(this.batch);
    this.needSlots = new Uint16Array(this.batch);
    // A reply is ~600 bytes (struct v16; v17 ~730): 2 KiB slots leave room for newer structs; a
    // longer one is seen as truncated and counted in `errors`.
    this.replies = new DatagramBatch(this.batch, 2048);
  }

  /** Opens the query socket and checks permission with one GET of our own process. @throws AgentError */
  open(): void {
    if (this.sock) return;
    // Replies of one batch (batch datagrams of ~600 bytes, ~1.3 KB of buffer each) must fit.
    const sock = TaskstatsSocket.open({ receiveBuffer: Math.max(4 * 1024 * 1024, this.batch * 4096) });
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
    this.rows.clear();
  }

  /** Processes whose last full reading is cached. */
  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * One thread group, completed as in a sweep (for the CLI and tests).
   * @returns the record, or null when the process does not exist. @throws AgentError missing_capability on EPERM.
   */
  query(tgid: number, out: TaskRecord): TaskRecord | null {
    if (!this.sock) this.open();
    this.ids.length = 0;
    this.ids.push(tgid);
    let found: TaskRecord | null = null;
    const stats: SweepStats = { listed: 0, records: 0, vanished: 0, procReads: 0, procDenied: 0, cached: 0, parsed: 0, errors: 0, durationMs: 0 };
    this.queryBatch(
      this.ids,
      0,
      1,
      (r) => {
        copyTaskRecord(r, out);
        found = out;
      },
      stats,
      false,
    );
    return found;
  }

  /**
   * Query every process once, calling `onRecord` per complete record (reused: copy to keep).
   * `idle` is true when none of the process's threads ran since its last full query: every
   * counter of the record is then what this poller delivered for the process before (only
   * elapsedUs moved), so a consumer may take a shortcut (no growth).
   * Yields to the event loop every `chunk` processes. Concurrent calls share one sweep.
   */
  sweep(onRecord: SweepCallback): Promise<SweepStats> {
    if (this.running) return this.running;
    this.running = this.runSweep(onRecord).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runSweep(onRecord: SweepCallback): Promise<SweepStats> {
    const t0 = performance.now();
    if (!this.sock) this.open();
    const stats: SweepStats = { listed: 0, records: 0, vanished: 0, procReads: 0, procDenied: 0, cached: 0, parsed: 0, errors: 0, durationMs: 0 };
    const count = await this.listPids();
    const ids = this.pids;
    stats.listed = count;
    const generation = ++this.generation;
    // Yield to the event loop every `chunk` processes, or sooner when a stretch took longer than
    // YIELD_AFTER_MS (a busy machine stretches the wall time of the same work).
    let sinceYield = 0;
    let stretchStart = performance.now();
    for (let i = 0; i < count; i += this.batch) {
      if (!this.sock) return stats; // closed during the sweep (shutdown)
      const n = Math.min(this.batch, count - i);
      this.queryBatch(ids, i, n, onRecord, stats);
      sinceYield += n;
      if (i + n < count && (sinceYield >= this.chunk || performance.now() - stretchStart >= YIELD_AFTER_MS)) {
        await new Promise<void>((r) => setImmediate(r));
        sinceYield = 0;
        stretchStart = performance.now();
      }
    }
    // Forget processes that ended (not listed, or vanished, in this sweep).
    // (forEach: no [key, value] array per entry; deleting the current entry is allowed.)
    this.cache.forEach((e, tgid, cache) => {
      if (e.seen !== generation) {
        cache.delete(tgid);
        this.rows.release(e.row);
      }
    });
    stats.durationMs = performance.now() - t0;
    return stats;
  }

  /** The thread groups of procRoot into `this.pids`. @returns how many. */
  private async listPids(): Promise<number> {
    const r = await listProcessIdsYielding(this.procRoot, this.pids, (this.dirents ??= Buffer.alloc(DIRENT_BUFFER_BYTES)), YIELD_AFTER_MS);
    this.pids = r.ids;
    return r.count;
  }

  /** Slot states while collecting replies. */
  private static readonly GOT_GROUP = 1;
  private static readonly GOT_LEADER = 2;
  private static readonly GONE = 4;
  private static readonly IDLE = 8;

  /**
   * Send `count` GETs (`by`) for `ids[from..]` in one send() and read the replies with
   * recvmmsg(); each is matched to its slot by sequence number (`slots[i]`, or i itself) and
   * handed to onGroupReply / parsed as the leader's record; marks `state` GONE for a vanished
   * process; counts errors.
   */
  private exchange(
    by: 'pid' | 'tgid',
    ids: ArrayLike<number>,
    from: number,
    count: number,
    slots: Uint16Array | null,
    stats: SweepStats,
    useCache: boolean,
  ): void {
    const sock = this.sock!;
    const p = this.parser!;
    const firstSeq = sock.sendGets(by, ids, from, count);
    if (firstSeq < 0) {
      stats.errors += count;
      return;
    }
    const state = this.state;
    const isGroup = by === 'tgid';
    const want = isGroup ? PARSED_TGID : PARSED_PID;
    const batch = this.replies;
    const buf = batch.buf;
    const slotBytes = batch.slotBytes;
    let received = 0;
    let failures = 0;
    while (received < count) {
      const n = sock.recvMany(batch, count - received);
      if (n === -EAGAIN) break; // replies lost (receive buffer overflow): counted below
      if (n < 0) {
        if (n !== -EINTR && ++failures > 3) break;
        continue;
      }
      for (let i = 0; i < n; i++) {
        const off = i * slotBytes;
        const len = batch.length(i);
        const idx = len >= 16 ? (p.seqOf(buf, off) - firstSeq) >>> 0 : count;
        if (idx >= count) continue; // a stale reply of an earlier exchange
        received++;
        const slot = slots ? slots[idx]! : idx;
        const st = p.locate(buf, off, off + len);
        if (st === PARSE_NETLINK_ERROR) {
          if (p.errno === ESRCH) state[slot]! |= LivePoller.GONE;
          else if (p.errno === EPERM) throw capNetAdminError('querying a process with TASKSTATS_CMD_GET');
          else stats.errors++;
        } else if (st !== want) stats.errors++;
        else if (isGroup) {
          if (this.onGroupReply(buf, slot, useCache)) stats.parsed++;
        } else {
          stats.parsed++;
          p.fillLocated(buf, true, 'live', this.leaderRecs[slot]!);
          state[slot]! |= LivePoller.GOT_LEADER;
        }
      }
    }
    if (received < count) stats.errors += count - received;
  }

  /**
   * A group's reply (just located by the parser): a process none of whose threads ran since its
   * last full query (same runs, CPU time and context switches in the group's sums) cannot have
   * changed anything the kernel reports: marked IDLE, served from the cache without parsing the
   * record. Otherwise the record is parsed and the leader is queued for a GET by PID.
   * @returns whether the record was parsed.
   */
  private onGroupReply(buf: Buffer, slot: number, useCache: boolean): boolean {
    const p = this.parser!;
    if (useCache) {
      const e = this.cache.get(p.id);
      if (e !== undefined) {
        const a = this.activity;
        activityOf(buf, p.statsOff, p.statsLen, a);
        const f = this.rows.f;
        if (f[e.row + ROW_RUNS] === a[0] && f[e.row + ROW_RUN_NS] === a[1] && f[e.row + ROW_SWITCHES] === a[2]) {
          this.state[slot] = LivePoller.GOT_GROUP | LivePoller.IDLE;
          this.idleEntries[slot] = e;
          return false;
        }
      }
    }
    const g = this.groupRecs[slot]!;
    p.fillLocated(buf, false, 'live', g);
    this.state[slot] = LivePoller.GOT_GROUP;
    return true;
  }

  /**
   * One batch: GET by TGID for every process; then GET by PID of the leader for those that are
   * new or ran since the previous sweep; then one complete record per process to `onRecord`.
   */
  private queryBatch(ids: ArrayLike<number>, from: number, count: number, onRecord: SweepCallback, stats: SweepStats, useCache = true): void {
    const state = this.state;
    state.fill(0, 0, count);
    this.exchange('tgid', ids, from, count, null, stats, useCache);
    const needIds = this.needIds;
    const needSlots = this.needSlots;
    let need = 0;
    for (let i = 0; i < count; i++) {
      if (state[i] !== LivePoller.GOT_GROUP) continue;
      needIds[need] = this.groupRecs[i]!.tgid;
      needSlots[need] = i;
      need++;
    }
    if (need > 0) this.exchange('pid', needIds, 0, need, needSlots, stats, false);
    const nowMs = Date.now();
    const generation = this.generation;
    for (let i = 0; i < count; i++) {
      const s = state[i]!;
      if (s & LivePoller.GONE) {
        stats.vanished++;
        continue;
      }
      let rec: TaskRecord | null = null;
      if (s & LivePoller.IDLE) {
        const e = this.idleEntries[i]!;
        this.idleEntries[i] = undefined;
        rec = this.cachedOut;
        const f = this.rows.f;
        loadRecordNumbers(f, e.row, rec);
        rec.kind = e.kind;
        rec.aggregate = e.aggregate;
        rec.comm = e.comm;
        rec.coreDumped = e.coreDumped;
        const agedUs = (nowMs - f[e.row + ROW_AT_MS]!) * 1000;
        rec.elapsedUs += agedUs;
        if (rec.groupElapsedUs > 0) rec.groupElapsedUs += agedUs;
        e.seen = generation;
        stats.cached++;
      } else if ((s & 3) === 3) {
        rec = this.complete(this.groupRecs[i]!, this.leaderRecs[i]!, stats);
        if (rec && useCache) this.remember(rec, nowMs);
      }
      if (rec) {
        stats.records++;
        onRecord(rec, (s & LivePoller.IDLE) !== 0);
      }
    }
  }

  /** Keeps a complete record (before onRecord: what a consumer does with it must not reach the cache). */
  private remember(rec: TaskRecord, nowMs: number): void {
    let e = this.cache.get(rec.tgid);
    if (!e) {
      e = { row: this.rows.alloc(), seen: 0, kind: rec.kind, aggregate: rec.aggregate, comm: '', coreDumped: false };
      this.cache.set(rec.tgid, e);
    }
    const f = this.rows.f;
    const o = e.row;
    storeRecordNumbers(rec, f, o);
    f[o + ROW_RUNS] = rec.cpuDelayCount;
    f[o + ROW_RUN_NS] = rec.cpuRunRealNs;
    f[o + ROW_SWITCHES] = rec.voluntaryCtxSwitches + rec.involuntaryCtxSwitches;
    f[o + ROW_AT_MS] = nowMs;
    e.seen = this.generation;
    e.kind = rec.kind;
    e.aggregate = rec.aggregate;
    e.comm = rec.comm;
    e.coreDumped = rec.coreDumped;
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
    g.groupElapsedUs = l.groupElapsedUs;
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

  /** /proc/PID/io and the faults of /proc/PID/stat into `g` (g.tgid names the process), parsed from bytes. */
  private readGroupCounters(g: TaskRecord): 'ok' | 'gone' | 'denied' {
    const reader = (this.reader ??= new ProcReader(this.procRoot));
    const buf = (this.procBuf ??= Buffer.allocUnsafe(PROC_FILE_BYTES));
    let n = reader.readOf(g.tgid, IO_NAME, buf);
    if (n < 0) return goneOrDenied(reader.lastErrno);
    g.writeCharBytes = roundKb(ioField(buf, n, IO_KEYS.wchar));
    g.readCharBytes = roundKb(ioField(buf, n, IO_KEYS.rchar));
    g.readSyscalls = roundKb(ioField(buf, n, IO_KEYS.syscr));
    g.writeSyscalls = roundKb(ioField(buf, n, IO_KEYS.syscw));
    g.readBytes = roundKb(ioField(buf, n, IO_KEYS.read_bytes));
    g.writeBytes = roundKb(ioField(buf, n, IO_KEYS.write_bytes));
    g.cancelledWriteBytes = roundKb(ioField(buf, n, IO_KEYS.cancelled_write_bytes));
    n = reader.readOf(g.tgid, STAT_NAME, buf);
    if (n < 0) return goneOrDenied(reader.lastErrno);
    g.minorFaults = statField(buf, n, 10);
    g.majorFaults = statField(buf, n, 12);
    return 'ok';
  }
}

/** Either file fits: io is ~100 bytes, stat ~300 (a comm of 16 bytes at most). */
const PROC_FILE_BYTES = 1024;
const IO_NAME = Buffer.from('/io');
const STAT_NAME = Buffer.from('/stat');
const IO_KEYS = Object.fromEntries(
  (['rchar', 'wchar', 'syscr', 'syscw', 'read_bytes', 'write_bytes', 'cancelled_write_bytes'] as const).map((k) => [k, Buffer.from(`\n${k}: `)]),
) as Record<'rchar' | 'wchar' | 'syscr' | 'syscw' | 'read_bytes' | 'write_bytes' | 'cancelled_write_bytes', Buffer>;

function goneOrDenied(errno: number): 'gone' | 'denied' {
  return errno === ENOENT || errno === ESRCH ? 'gone' : 'denied';
}

/** The decimal after `key` (a line start: "\nname: ") in buf[0, n); io's first line (rchar) has no newline before it. */
function ioField(buf: Buffer, n: number, key: Buffer): number {
  let i = buf.indexOf(key);
  if (i < 0 || i >= n) {
    // rchar is the first line.
    if (buf.compare(key, 1, key.length, 0, key.length - 1) !== 0) return 0;
    i = -1;
  }
  let v = 0;
  for (let j = i + key.length; j < n; j++) {
    const d = buf[j]! - 48;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
  }
  return v;
}

function roundKb(v: number): number {
  return v - (v % 1024);
}
