/**
 * Process metadata for task records: the cgroup path and, when configured, the executable path and
 * command line, kept in a cache per process so that the hot path (exit records, ~14,000 a second
 * under two fork loops) almost never reads /proc.
 *
 * Where the metadata of a process comes from, in order:
 *  1. Its exec event (proc connector): /proc/PID/{cgroup,exe,cmdline} are read as soon as the event
 *     arrives, while the process still exists. This is what attributes a process that moved itself
 *     into another cgroup right before exec (container runtimes do this for `kubectl exec` and exec
 *     probes) and a program that lives a millisecond.
 *  2. The first live record of the process (live()): processes that were running before start.
 *  3. For a child that was forked and never exec'd (AFORK in its exit record, and no exec event):
 *     its parent's entry. Such a child shares its parent's executable and command line, and was
 *     created in its parent's cgroup. A parent entry is re-read from /proc the first time it serves
 *     as a parent and then at most once per `cgroupRecheckMs`, because a parent may have moved
 *     itself since its exec (a shell that writes $$ into cgroup.procs and then forks subshells).
 *     That is one /proc read per parent per interval, not one per child.
 *     Likewise a process's own entry older than that interval is re-read at its exit (it may
 *     still be readable as a zombie), for processes moved without an exec.
 *  4. Otherwise /proc/PID itself (a process exec'd before start, whose exec we never saw), and then
 *     the parent.
 * At the exit of an exec'd process (not a forked child), its cgroup is read once more if it is
 * still there (a zombie until reaped): that is its final cgroup, right even when the watcher had
 * not yet received its last exec (`exitReread`, default true).
 *
 * Entries are keyed by thread-group id as the kernel reports it in the initial PID namespace
 * (exit records and exec events both carry initial-namespace pids; /proc must be that namespace's:
 * hostPID, or `procRoot` pointing at a host /proc mount). A pid can be reused, so an entry also
 * records which process it describes: its start time once a record told it, else the time it was
 * captured (an entry captured before a process started cannot describe it).
 *
 * One file over 500 lines on purpose: one cache and the rules above, which decide together which
 * entry an exit record gets (README-attribution.md); the exec watcher, the /proc reader and the
 * cgroup parsing it uses live in their own files.
 */
import type { ComponentTelemetry, Logger } from '../../src/api/index.js';
import { AFORK, NO_PROCESS_INFO, type ProcessInfo, type TaskRecord } from './record.js';
import { StringInterner, chooseCgroupSelector, parseProcCgroupBytes, resolveCgroupNamespace, type CgroupSelector } from './cgroup-path.js';
import { EXEC_RESULT_CGROUP, EXEC_RESULT_DETAILS, seqAfter } from './exec-result-ring.js';
import { ExecWatcher, type ExecWatcherStats } from './exec-watcher.js';
import { ProcReader, cmdlineText } from './proc-reader.js';

export interface ProcessMetadataOptions {
  /** On a host without cgroup v2: which v1 hierarchy names a process's cgroup (`cpuacct`, `name=systemd`). */
  cgroupV1Hierarchy?: string;
  /** Read /proc/PID/cmdline (arguments joined by spaces, at most `maxCommandLineBytes`). */
  commandLine: boolean;
  /** Read /proc/PID/exe. */
  executablePath: boolean;
  /** Where the initial PID namespace's /proc is mounted; default `/proc`. */
  procRoot?: string;
  logger: Logger;
  telemetry: ComponentTelemetry;
  /** Upper bound of cached processes; the least recently used eighth is evicted beyond it. Default 65,536. */
  maxEntries?: number;
  /**
   * A cached cgroup older than this is re-read when it is used for an exit record: for a parent
   * whose forked children exit (at most once per interval), and for a process's own exit (it may
   * still be readable as a zombie). Catches processes moved to another cgroup without an exec.
   * Default 1000 ms.
   */
  cgroupRecheckMs?: number;
  /** Command lines longer than this are cut; default 4096 bytes. */
  maxCommandLineBytes?: number;
  /**
   * Read the cgroup of an exec'd process again at its exit (a zombie until reaped; forked
   * children excepted): catches an exec the watcher had not received yet and moves after exec,
   * for one /proc read (~15 us) per exit of an exec'd process. Default true.
   */
  exitReread?: boolean;
  /**
   * Scheduling of the exec watcher thread (see proc-connector.ts): SCHED_FIFO 1 when
   * `execWatcherRealtime` (default true) and permitted, else nice `execWatcherNice` (default -10).
   * Both need CAP_SYS_NICE; without it the thread keeps normal priority and, on a CPU-starved
   * host, misses more self-moving short-lived processes (counted as exec_metadata_missed).
   */
  execWatcherRealtime?: boolean;
  execWatcherNice?: number;
}

interface Entry {
  cgroup: string;
  exePath: string;
  cmdline: string;
  /** Start time (seconds since the epoch) once a record told it; 0 while unknown. */
  startTimeSec: number;
  /** Wall-clock time (seconds) of the /proc read that created the entry: it describes a process started before. */
  capturedSec: number;
  /** Monotonic time (ms) of the last /proc read of the cgroup. */
  readMs: number;
  /** Whether the cgroup was re-read since the entry last served as a parent (see rule 3). */
  checkedAsParent: boolean;
  /** Access tick, for evicting the least recently used entries. */
  lastUsed: number;
  /** Number of the exec the entry reflects, or the exec counter when it was read (see proc-connector.ts). */
  execSeq: number;
  /**
   * A tombstone: the process ended while an exec of it was still in the watcher's hands. The late
   * result (sequence <= execSeq) is dropped instead of creating an entry that a new process with
   * the same pid could inherit. Treated as no entry otherwise.
   */
  ended: boolean;
}

/** Counters for tests and the README's figures (self-telemetry counts the same things). */
export interface ProcessMetadataStats {
  /** /proc files read (cgroup, exe, cmdline), successful or not. */
  procReads: number;
  execEvents: number;
  /** Exit records filled from the process's own entry. */
  exitOwn: number;
  /** Exit records filled from the parent's entry. */
  exitParent: number;
  /** Exit records left without metadata (no entry, process and parent unreadable). */
  exitUnknown: number;
  evictions: number;
  overflows: number;
  /**
   * Exit records handled before the watcher's result for the process's last exec arrived, whose
   * result then named another cgroup than the one the record was given (see `late` in the README).
   */
  lateExecResults: number;
}

export class ProcessMetadata {
  private readonly cache = new Map<number, Entry>();
  /** The answer of live() and exit(), reused. */
  private readonly out: { -readonly [K in keyof ProcessInfo]: ProcessInfo[K] } = { cgroup: '', exePath: '', cmdline: '' };
  private readonly reader = new ProcReader();
  private readonly interner: StringInterner;
  private readonly procRoot: string;
  private readonly selector: CgroupSelector;
  private readonly maxEntries: number;
  private readonly cgroupRecheckMs: number;
  private readonly exitReread: boolean;
  private readonly maxCmdline: number;
  private watcher: ExecWatcher | undefined;
  private tick = 0;
  /**
   * A monotonic clock (ms) read at most once per event-loop turn: performance.now() per exit
   * costs ~80 ns, and a timer refreshing it would wake an idle agent ten times a second.
   */
  private clockMs = 0;
  private clockFresh = false;
  private readonly clockStale = (): void => {
    this.clockFresh = false;
  };
  /** Where the last exit() took its metadata from (diagnostics in tests). */
  lastExitSource: 'entry' | 'zombie' | 'read' | 'parent' | 'none' = 'none';
  readonly stats: ProcessMetadataStats = {
    procReads: 0,
    execEvents: 0,
    exitOwn: 0,
    exitParent: 0,
    exitUnknown: 0,
    evictions: 0,
    overflows: 0,
    lateExecResults: 0,
  };
  private readonly overflowCounter: { add(v: number): void };
  private readonly evictionCounter: { add(v: number): void };
  private readonly execMissedCounter: { add(v: number): void };
  private readonly execLateCounter: { add(v: number): void };

  constructor(private readonly o: ProcessMetadataOptions) {
    this.procRoot = o.procRoot ?? '/proc';
    this.maxEntries = Math.max(16, o.maxEntries ?? 65_536);
    this.cgroupRecheckMs = o.cgroupRecheckMs ?? 1000;
    this.exitReread = o.exitReread ?? true;
    this.maxCmdline = o.maxCommandLineBytes ?? 4096;
    const own = this.reader.readText(`${this.procRoot}/self/cgroup`);
    if (own === undefined) throw new Error(`cannot read ${this.procRoot}/self/cgroup (is procRoot a proc file system?)`);
    this.selector = chooseCgroupSelector(own, o.cgroupV1Hierarchy);
    this.interner = new StringInterner(100_000, this.cgroupNamespaceTransform());
    this.overflowCounter = o.telemetry.counter(
      'proc_connector_overflows',
      'Times the kernel dropped process events because the proc connector socket was full (exec metadata lost)',
    );
    this.evictionCounter = o.telemetry.counter('process_metadata_evictions', 'Process metadata cache entries evicted because the cache reached its size bound');
    this.execMissedCounter = o.telemetry.counter(
      'exec_metadata_missed',
      'Exec events whose process had ended before its cgroup could be read (its exit, unless read as a zombie, ' +
        'carries the cgroup of its previous image or of its parent)',
    );
    this.execLateCounter = o.telemetry.counter(
      'exec_metadata_late',
      "Exit records given a cgroup before the result of the process's last exec arrived, which then named another cgroup",
    );
  }

  /**
   * In a cgroup namespace of its own (a pod), paths become absolute where the namespace's place is
   * known (cgroup-path.ts, resolveCgroupNamespace); the others stay as printed, are counted once
   * each, and the first few are logged.
   */
  private cgroupNamespaceTransform(): ((path: string) => string) | undefined {
    const view = resolveCgroupNamespace(this.procRoot, this.selector);
    if (!view.nested) return undefined;
    const unresolved = this.o.telemetry.counter(
      'cgroup_paths_unresolved',
      "Distinct cgroup paths left relative to the agent's cgroup namespace (its own container, or an ancestor the agent cannot name)",
    );
    const known = view.ancestors.filter((a) => a !== undefined).length;
    const summary = {
      namespaceDepth: view.depth,
      ancestorsKnown: `${known} of ${view.depth}`,
      podUid: view.podUid ?? 'not found in /proc/self/mountinfo',
      podCgroup: view.ancestors[view.depth - 1] ?? 'unknown',
    };
    if (known === view.depth) this.o.logger.info('process metadata: cgroup namespace; cgroup paths of other containers are made absolute', summary);
    else
      this.o.logger.warn(
        'process metadata: cgroup namespace whose place in the hierarchy is only partly known; cgroup paths below an unknown ancestor ' +
          'stay relative (`/../...`) and are counted as cgroup_paths_unresolved',
        summary,
      );
    let logged = 0;
    return (path) => {
      const abs = view.absolute(path);
      if (abs !== undefined) return abs;
      unresolved.add(1);
      if (logged < 5 && path.startsWith('/..')) {
        logged++;
        this.o.logger.warn("process metadata: cgroup path left relative to the agent's cgroup namespace", { key: 'cgroup_path_unresolved', path });
      }
      return path;
    };
  }

  /** Entries cached, tombstones included (for a gauge). */
  get size(): number {
    return this.cache.size;
  }

  /** Which line of /proc/PID/cgroup is used. */
  get cgroupSelector(): CgroupSelector {
    return this.selector;
  }

  /**
   * Opens the proc connector (exec events) in its watcher thread. Needs the initial user and PID
   * namespaces, and CAP_NET_ADMIN where the kernel admits no unprivileged listener (before 6.6,
   * and some later builds): rejects with an error naming CAP_NET_ADMIN when the kernel refuses.
   */
  async start(): Promise<void> {
    if (this.watcher) return;
    const watcher = new ExecWatcher(
      {
        procRoot: this.procRoot,
        selector: this.selector,
        executablePath: this.o.executablePath,
        commandLine: this.o.commandLine,
        maxCommandLineBytes: this.maxCmdline,
        nice: this.o.execWatcherNice,
        realtime: this.o.execWatcherRealtime,
      },
      (tgid, seq, what, cgroup, exePath, cmdline, capturedSec) => this.onExec(tgid, seq, what, cgroup, exePath, cmdline, capturedSec),
      (count) => this.onOverflow(count),
      (count) => this.onMissed(count),
      (reason) =>
        this.o.logger.error(
          'process metadata: the exec watcher thread ended unexpectedly; processes that move to another cgroup before exec ' +
            "are now attributed to their parent's cgroup",
          { key: 'exec_watcher_died', reason },
        ),
    );
    await watcher.start();
    this.watcher = watcher;
    this.o.logger.info('process metadata: exec events from the proc connector', {
      eventMask: watcher.masked ? 'exec' : 'all (kernel < 6.6)',
      watcherPriority: watcher.priority,
    });
  }

  async shutdown(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.stop();
    this.cache.clear();
  }

  /** Watcher counters (exec events, misses, overflows, handling time), once started. */
  get execWatcherStats(): ExecWatcherStats | undefined {
    return this.watcher?.stats;
  }

  /** The exec watcher itself (thread CPU time, main-thread apply time), once started. */
  get execWatcher(): ExecWatcher | undefined {
    return this.watcher;
  }

  /** Whether the kernel applies the EXEC-only event mask (Linux >= 6.6). */
  get execEventsMasked(): boolean {
    return this.watcher?.masked ?? false;
  }

  /** The exec watcher thread's scheduling priority as obtained (`SCHED_FIFO 1`, `nice -10`, `unchanged`). */
  get execWatcherPriority(): string {
    return this.watcher?.priority ?? 'unchanged';
  }

  /**
   * The metadata of a live record's process (no /proc read after the first). The answer is valid
   * until the next call (it is reused).
   */
  live(rec: TaskRecord): ProcessInfo {
    this.watcher?.drain();
    const key = rec.tgid > 0 ? rec.tgid : rec.pid;
    let e = this.cache.get(key);
    if (e !== undefined && (e.ended || !sameProcess(e, rec.startTimeSec))) e = undefined;
    if (e === undefined) {
      e = this.readEntry(key, true);
      // Ended between the query and now: its parent is the best guess left.
      if (e === undefined) return this.answer(this.parentEntry(rec.ppid));
      this.insert(key, e);
    }
    if (e.startTimeSec === 0) e.startTimeSec = rec.startTimeSec;
    e.lastUsed = ++this.tick;
    return this.answer(e);
  }

  /**
   * The metadata of an exit record's process (from what was captured at exec, or the parent's
   * entry), then forgets the process when processEnded (the last thread of the group exited).
   * Needs tgid (or pid), and for forked children ppid and flags; a TGID aggregate record should
   * carry the tgid of its group. The answer is valid until the next call (it is reused).
   */
  exit(rec: TaskRecord, processEnded: boolean): ProcessInfo {
    const w = this.watcher;
    w?.drain();
    this.lastExitSource = 'entry';
    const key = rec.tgid > 0 ? rec.tgid : rec.pid;
    let e = this.cache.get(key);
    if (e !== undefined && (e.ended || !sameProcess(e, rec.startTimeSec))) {
      if (!e.ended) this.cache.delete(key); // a previous process with the same pid, whose exit was never seen
      e = undefined;
    }
    // An exec of this pid that the watcher received but whose result is not applied yet: the
    // exit record overtook the watcher's /proc reads (or the reads missed the process).
    const execPending = w !== undefined && (e !== undefined ? w.execAfter(key, e.execSeq) : (rec.flags & AFORK) === 0 && w.execSeen(key));
    if (e !== undefined && (execPending || (processEnded && this.exitReread && (rec.flags & AFORK) === 0))) {
      // The process itself, a zombie until its parent reaps it, tells its final cgroup: right even
      // when an exec result is still in the watcher's hands (or was never received because the
      // watcher was busy), or when something moved it after its exec. Forked children skip this
      // (the fork-loop hot path); when the read fails (reaped), the entry stands.
      const seq = w?.currentSeq() ?? 0;
      const cgroup = this.readCgroup(key);
      if (cgroup !== undefined) {
        this.lastExitSource = 'zombie';
        if (processEnded) {
          this.stats.exitOwn++;
          // With an exec pending, the entry's executable and command line are the previous image's.
          const out = this.set(cgroup, execPending ? '' : e.exePath, execPending ? '' : e.cmdline);
          this.forget(key, true, execPending ? w : undefined, cgroup);
          return out;
        }
        e.cgroup = cgroup; // a thread's exit: the process goes on; the exec result will follow
        e.execSeq = seq;
        e.readMs = this.now();
      }
    }
    if (e === undefined && ((rec.flags & AFORK) === 0 || rec.pid !== key)) {
      // Exec'd but its exec was not seen (before start, or the connector overflowed), or a thread
      // of a process we have not met yet: the process itself, if it is still readable.
      e = this.readEntry(key, !processEnded);
      if (e !== undefined && !processEnded) this.insert(key, e);
      this.lastExitSource = 'read';
    }
    if (e !== undefined) {
      this.stats.exitOwn++;
      if (this.now() - e.readMs >= this.cgroupRecheckMs) {
        // Lived long enough to have been moved since the read (no event tells): if it is still
        // readable (a zombie not yet reaped), its cgroup now is the right one.
        const cgroup = this.readCgroup(key);
        if (cgroup !== undefined) e.cgroup = cgroup;
        e.readMs = this.now();
      }
      e.lastUsed = ++this.tick;
    } else {
      e = this.parentEntry(rec.ppid);
      this.lastExitSource = e !== undefined ? 'parent' : 'none';
      if (e !== undefined) this.stats.exitParent++;
      else this.stats.exitUnknown++;
    }
    const out = this.answer(e);
    this.forget(key, processEnded, execPending ? w : undefined, out.cgroup);
    return out;
  }

  /**
   * Drops an ended process's entry; when an exec result may still be on its way, leaves a
   * tombstone so that the late result cannot resurrect the entry for a later process. The
   * tombstone keeps the cgroup the exit record was given, so that a late result naming another
   * one is counted (onExec).
   */
  private forget(key: number, processEnded: boolean, pendingFrom: ExecWatcher | undefined, usedCgroup: string): void {
    if (!processEnded) return;
    if (pendingFrom === undefined) {
      this.cache.delete(key);
      return;
    }
    const seq = pendingFrom.currentSeq();
    const e = this.cache.get(key);
    if (e !== undefined) {
      e.ended = true;
      e.execSeq = seq;
      e.cgroup = usedCgroup;
      e.lastUsed = ++this.tick;
    } else {
      this.insert(key, {
        cgroup: usedCgroup,
        exePath: '',
        cmdline: '',
        startTimeSec: 0,
        capturedSec: 0,
        readMs: 0,
        checkedAsParent: false,
        lastUsed: ++this.tick,
        execSeq: seq,
        ended: true,
      });
    }
  }

  private now(): number {
    if (!this.clockFresh) {
      this.clockMs = performance.now();
      this.clockFresh = true;
      setImmediate(this.clockStale);
    }
    return this.clockMs;
  }

  /** The answer of live() and exit(): an entry's values, copied (entries change as exec results arrive). */
  private answer(e: Entry | undefined): ProcessInfo {
    return e === undefined ? NO_PROCESS_INFO : this.set(e.cgroup, e.exePath, e.cmdline);
  }

  private set(cgroup: string, exePath: string, cmdline: string): ProcessInfo {
    const out = this.out;
    out.cgroup = cgroup;
    out.exePath = exePath;
    out.cmdline = cmdline;
    return out;
  }

  /** The entry of a parent process, re-reading its cgroup when due (see rule 3 above). */
  private parentEntry(ppid: number): Entry | undefined {
    if (ppid <= 0) return undefined;
    let p = this.cache.get(ppid);
    if (p !== undefined && p.ended) p = undefined;
    if (p === undefined) {
      p = this.readEntry(ppid, true);
      if (p === undefined) return undefined;
      p.checkedAsParent = true;
      this.insert(ppid, p);
    } else if (!p.checkedAsParent || this.now() - p.readMs >= this.cgroupRecheckMs) {
      const cgroup = this.readCgroup(ppid);
      if (cgroup !== undefined) p.cgroup = cgroup;
      p.readMs = this.now();
      p.checkedAsParent = true;
    }
    p.lastUsed = ++this.tick;
    return p;
  }

  /**
   * Applies what the watcher thread read at an exec: its cgroup (with the executable and command
   * line, or those later in a result of their own when the watcher had a backlog).
   */
  private onExec(tgid: number, execSeq: number, what: number, cgroupRaw: string, exePathRead: string, cmdlineRead: string, capturedSec: number): void {
    if ((what & EXEC_RESULT_CGROUP) === 0) {
      // The details of an exec whose cgroup was applied before: only for that same exec.
      const d = this.cache.get(tgid);
      if (d !== undefined && !d.ended && d.execSeq === execSeq) {
        d.exePath = exePathRead;
        d.cmdline = cmdlineRead;
      }
      return;
    }
    const withDetails = (what & EXEC_RESULT_DETAILS) !== 0;
    const exePath = withDetails ? exePathRead : '';
    const cmdline = withDetails ? cmdlineRead : '';
    this.stats.execEvents++;
    const cgroup = this.interner.intern(cgroupRaw);
    const now = this.now();
    let e = this.cache.get(tgid);
    if (e !== undefined && e.ended && !seqAfter(execSeq, e.execSeq)) {
      // The ended process's own exec, read after its exit record was handled. When it is its last
      // exec and names another cgroup than the exit record was given, that record went to the
      // previous image's (or the parent's) cgroup: counted, since it cannot be taken back.
      if (cgroup !== e.cgroup && this.watcher?.isLatestExec(tgid, execSeq) === true) {
        this.stats.lateExecResults++;
        this.execLateCounter.add(1);
        this.warnMisses(0, 1);
      }
      return;
    }
    if (e === undefined) {
      e = { cgroup, exePath, cmdline, startTimeSec: 0, capturedSec, readMs: now, checkedAsParent: false, lastUsed: ++this.tick, execSeq, ended: false };
      this.insert(tgid, e);
    } else {
      // exec keeps the pid: the same process (or a reused pid whose exit we missed) with a new image.
      e.cgroup = cgroup;
      e.exePath = exePath;
      e.cmdline = cmdline;
      e.startTimeSec = 0;
      e.capturedSec = capturedSec;
      e.readMs = now;
      e.checkedAsParent = false;
      e.lastUsed = ++this.tick;
      e.execSeq = execSeq;
      e.ended = false;
    }
  }

  private onMissed(count: number): void {
    this.execMissedCounter.add(count);
    this.warnMisses(count, 0);
  }

  /** Exec results came too late (a CPU-starved watcher); the host's logger rate-limits the warning by its key. */
  private warnMisses(missed: number, late: number): void {
    this.o.logger.warn(
      "process metadata: exec'd processes ended before the exec watcher read their cgroup; unless read as a zombie at " +
        'exit, their exit records carry the cgroup of their previous image or of their parent, which is wrong for a ' +
        'process that moved itself into another cgroup before exec (kubectl exec, exec probes). The watcher thread ' +
        'is not getting the CPU in time (CAP_SYS_NICE lets it run SCHED_FIFO; see exec_metadata_missed/late)',
      {
        key: 'exec_metadata_missed',
        missed,
        lateAndMisattributed: late,
        watcherPriority: this.execWatcherPriority,
      },
    );
  }

  private onOverflow(count: number): void {
    this.stats.overflows += count;
    this.overflowCounter.add(count);
    this.o.logger.warn(
      'proc connector overflowed: exec events were lost, so processes that moved to another cgroup right before exec ' +
        "may be attributed to their parent's cgroup; the agent is not keeping up with the exec rate (CPU-starved?)",
      { key: 'proc_connector_overflow', overflows: count },
    );
  }

  private readEntry(tgid: number, withDetails: boolean): Entry | undefined {
    // Taken before the read: every exec received so far is reflected by what is read next.
    const execSeq = this.watcher?.currentSeq() ?? 0;
    const cgroup = this.readCgroup(tgid);
    if (cgroup === undefined) return undefined;
    return {
      cgroup,
      exePath: withDetails && this.o.executablePath ? this.readExe(tgid) : '',
      cmdline: withDetails && this.o.commandLine ? this.readCmdline(tgid) : '',
      startTimeSec: 0,
      capturedSec: Date.now() / 1000,
      readMs: this.now(),
      checkedAsParent: false,
      lastUsed: ++this.tick,
      execSeq,
      ended: false,
    };
  }

  private readCgroup(tgid: number): string | undefined {
    this.stats.procReads++;
    const n = this.reader.readBytes(`${this.procRoot}/${tgid}/cgroup`, 1 << 16);
    if (n <= 0) return undefined; // a zombie that was reaped, or a kernel thread race: empty
    const path = parseProcCgroupBytes(this.reader.bytes(), n, this.selector);
    return path === undefined ? undefined : this.interner.intern(path);
  }

  private readExe(tgid: number): string {
    this.stats.procReads++;
    return this.reader.readLink(`${this.procRoot}/${tgid}/exe`); // '' for kernel threads, or when ended
  }

  private readCmdline(tgid: number): string {
    this.stats.procReads++;
    const n = this.reader.readBytes(`${this.procRoot}/${tgid}/cmdline`, this.maxCmdline);
    return n <= 0 ? '' : cmdlineText(this.reader.bytes(), n);
  }

  private insert(key: number, e: Entry): void {
    this.cache.set(key, e);
    if (this.cache.size > this.maxEntries) this.evict();
  }

  /** Drops the least recently used eighth (amortised: one sort per maxEntries/8 insertions). */
  private evict(): void {
    const n = this.cache.size;
    const drop = Math.max(1, n >> 3);
    const ticks = new Float64Array(n);
    let i = 0;
    for (const e of this.cache.values()) ticks[i++] = e.lastUsed;
    ticks.sort();
    const threshold = ticks[drop - 1]!;
    let dropped = 0;
    for (const [k, e] of this.cache) {
      if (dropped >= drop) break;
      if (e.lastUsed <= threshold) {
        this.cache.delete(k);
        dropped++;
      }
    }
    this.stats.evictions += dropped;
    this.evictionCounter.add(dropped);
  }
}

/**
 * Whether a cached entry describes the process that started at startTimeSec. Record start times
 * are whole seconds computed by the kernel from the wall clock minus the elapsed time, so they
 * can differ by one second between two records of the same process.
 */
function sameProcess(e: Entry, startTimeSec: number): boolean {
  if (startTimeSec <= 0) return true;
  if (e.startTimeSec > 0) return Math.abs(e.startTimeSec - startTimeSec) <= 1;
  return e.capturedSec >= startTimeSec - 1;
}
