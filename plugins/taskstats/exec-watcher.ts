/**
 * The exec watcher's main-thread side: starts the watcher thread (exec-watcher-thread.ts), applies
 * the results it publishes (exec-result-ring.ts) and reports its counters.
 *
 * Why a thread: a process that moves itself into a cgroup and then execs (what container runtimes
 * do for `kubectl exec` and exec probes) is in a cgroup its parent is not in, and is often gone by
 * the time its exit record is read; /bin/true lives about half a millisecond after its exec. Its
 * exec event arrives while it still exists, so reading /proc/PID/cgroup then gives the right
 * answer if the read wins that race, which the main event loop, delayed by everything else it
 * runs, loses on a busy machine (docs/performance.md). A thread blocked in recvmmsg() on the
 * connector socket is woken by the kernel directly.
 *
 * Results are applied by drain(), called before a record is filled (one shared-memory load when
 * nothing is pending), so an exit record never overtakes an exec whose result was published; the
 * thread nudges through a port only when the ring is half full, and a slow timer keeps the
 * counters fresh.
 */
import { AgentError, type ErrorCode } from '../../src/api/index.js';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { CgroupSelector } from './cgroup-path.js';
import { ProcConnector, type ProcConnectorOptions } from './proc-connector.js';
import { libc } from './libc.js';
import { ProcReader } from './proc-reader.js';
import {
  ExecNumbers,
  ResultRingReader,
  S_CGROUP_READS,
  S_DELAY_OVER_500US,
  S_DELAY_SUM_NS,
  S_DROPPED,
  S_EXECS,
  S_MISSED,
  S_OPEN_FDS,
  S_OVERFLOWS,
  S_SETUP,
  S_STOP,
  newWatcherShared,
  type ExecResultHandler,
  type WatcherShared,
} from './exec-result-ring.js';

export interface ExecWatcherOptions {
  procRoot: string;
  selector: CgroupSelector;
  executablePath: boolean;
  commandLine: boolean;
  maxCommandLineBytes: number;
  /** Nice value of the watcher thread (needs CAP_SYS_NICE to go below 0; kept as is when refused). Default -10. */
  nice?: number;
  /**
   * Run the watcher thread under SCHED_FIFO priority 1 (needs CAP_SYS_NICE and a real-time
   * budget; falls back to `nice`). Default true: it sleeps nearly all the time, so the priority
   * only shortens its wake-up, and under load it is what wins the race (docs/performance.md).
   */
  realtime?: boolean;
  connector?: ProcConnectorOptions;
}

/** What the thread is started with (workerData). */
export interface WatcherThreadData extends WatcherShared {
  options: ExecWatcherOptions;
  port: MessagePort;
}

/** The thread's first message: subscribed (`ready`) or failed (`error`). */
export interface WatcherThreadHello {
  t: 'ready' | 'error';
  message?: string;
  /** The catalogue code of the thread's error, so the main thread raises the same one. */
  code?: ErrorCode;
  masked?: boolean;
  priority?: string;
  tid?: number;
  /** The connector socket's netlink port id, for stop() to wake the thread (ProcConnector.wake). */
  portId?: number;
}

/** The thread's reason for failing, rebuilt on the main thread with its catalogue code. */
function threadError(m: WatcherThreadHello, fallback: string): Error {
  return m.code ? new AgentError(m.code, m.message ?? fallback) : new Error(m.message ?? fallback);
}

export interface ExecWatcherStats {
  execEvents: number;
  /** Exec events whose process had ended before its cgroup was read (or whose result was dropped). */
  missed: number;
  overflows: number;
  /** Cgroup reads done, and the delay from each exec (its kernel timestamp) to the end of that read. */
  cgroupReads: number;
  delaySumNs: number;
  delayedOver500us: number;
  /** Results dropped because the main thread had not taken the previous RESULT_SLOTS (in missed too when they carried the cgroup). */
  dropped: number;
}

/**
 * Main-thread side of the watcher. `drain()` applies pending results synchronously; call it
 * before using the cache.
 */
export class ExecWatcher {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly shared: WatcherShared;
  private readonly numbers: ExecNumbers;
  private readonly results: ResultRingReader;
  private drainTimer: NodeJS.Timeout | undefined;
  private overflowsSeen = 0;
  private missedSeen = 0;
  /** For threadCpuNs (benchmarks and tests), made at the first call. */
  private procReader: ProcReader | undefined;
  masked = false;
  /** The watcher thread's scheduling priority as obtained: `SCHED_FIFO 1`, `nice -10`, `unchanged ...`. */
  priority = 'unchanged';
  /** The watcher thread's kernel thread id (for its CPU time in /proc/self/task/TID/schedstat). */
  threadId = 0;
  private threadPortId = 0;
  /** Time the main thread spent applying results (decoding and caching them), nanoseconds. */
  applyNs = 0;

  constructor(
    private readonly o: ExecWatcherOptions,
    private readonly onResult: ExecResultHandler,
    private readonly onOverflow: (count: number) => void,
    private readonly onMissed: (count: number) => void = () => {},
    /** The thread ended without being asked to (a crash): attribution falls back to parents. */
    private readonly onDied: (reason: string) => void = () => {},
  ) {
    this.shared = newWatcherShared(o.maxCommandLineBytes);
    this.numbers = new ExecNumbers(this.shared.execNumbers);
    this.results = new ResultRingReader(this.shared.ring);
  }

  get stats(): ExecWatcherStats {
    const s = this.shared.counters;
    return {
      execEvents: s[S_EXECS]!,
      missed: s[S_MISSED]!,
      overflows: s[S_OVERFLOWS]!,
      cgroupReads: s[S_CGROUP_READS]!,
      delaySumNs: s[S_DELAY_SUM_NS]!,
      delayedOver500us: s[S_DELAY_OVER_500US]!,
      dropped: s[S_DROPPED]!,
    };
  }

  async start(): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    const data: WatcherThreadData = { ...this.shared, options: this.o, port: port2 };
    const worker = new Worker(new URL('./exec-watcher-thread.js', import.meta.url), {
      workerData: data,
      transferList: [port2],
      // The worker needs none of the parent's flags, and inheriting them breaks its start: V8 and
      // process-wide flags (`node --max-old-space-size=... bin/taskstats-agent`, a heap cap users
      // set) are refused in a worker's execArgv, and --input-type applies only to inline scripts.
      execArgv: [],
      // Its loop allocates next to nothing: a small heap keeps the second isolate's memory down.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 1, stackSizeMb: 1 },
    });
    this.worker = worker;
    this.port = port1;
    this.exited = new Promise<void>((resolve) =>
      worker.once('exit', () => {
        this.closeAbandonedFds();
        resolve();
      }),
    );
    const setup = new Int32Array(this.shared.counters.buffer, S_SETUP * 8, 1);
    const onProcessExit = () => void Atomics.wait(setup, 0, 0, 2000);
    process.on('exit', onProcessExit);
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        const onExit = (code: number) => {
          // The thread posts why it failed, then ends: its exit can be reported before that
          // message is delivered (Node 26), so read a pending one first.
          const pending = receiveMessageOnPort(port1)?.message as WatcherThreadHello | undefined;
          if (pending?.t === 'error' && pending.message) reject(threadError(pending, ''));
          else reject(new Error(`proc connector thread exited with code ${code} before subscribing`));
        };
        worker.once('error', onError);
        worker.once('exit', onExit);
        port1.once('message', (m: WatcherThreadHello) => {
          worker.off('error', onError);
          worker.off('exit', onExit);
          if (m.t === 'ready') {
            this.masked = m.masked === true;
            this.priority = m.priority ?? 'unchanged';
            this.threadId = m.tid ?? 0;
            this.threadPortId = m.portId ?? 0;
            resolve();
          } else {
            reject(threadError(m, 'proc connector thread failed'));
          }
        });
      });
    } catch (e) {
      await this.stop();
      throw e;
    } finally {
      process.off('exit', onProcessExit);
    }
    port1.on('message', () => this.drain());
    this.drainTimer = setInterval(() => this.drain(), 1000);
    this.drainTimer.unref();
    worker.on('error', (e: Error) => {
      if (this.worker === worker) this.onDied(e.message);
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.onDied(`exit code ${code}`);
    });
    port1.unref();
    worker.unref();
  }

  /** The number of the last exec received (see ExecNumbers); entries read from /proc now reflect it. */
  currentSeq(): number {
    return this.numbers.current();
  }

  /** Whether an exec of tgid numbered after `seq` was received (its result may not be applied yet). */
  execAfter(tgid: number, seq: number): boolean {
    return this.numbers.after(tgid, seq);
  }

  /** Whether `seq` numbers the latest exec of tgid received (its slot was not taken since). */
  isLatestExec(tgid: number, seq: number): boolean {
    return this.numbers.isLatest(tgid, seq);
  }

  /** Whether the last exec received in tgid's slot was tgid's. */
  execSeen(tgid: number): boolean {
    return this.numbers.seen(tgid);
  }

  /** Applies every result the watcher published so far. */
  drain(): void {
    if (!this.results.pending) {
      if (this.port !== undefined) this.checkCounters();
      return;
    }
    const t0 = performance.now();
    try {
      this.results.drain(this.onResult);
    } finally {
      this.applyNs += (performance.now() - t0) * 1e6;
    }
    this.checkCounters();
  }

  /** CPU time the watcher thread has used so far (ns), from the kernel's schedstat; 0 if unknown. */
  threadCpuNs(): number {
    if (this.threadId === 0) return 0;
    this.procReader ??= new ProcReader();
    return this.procReader.threadCpuNs(this.threadId);
  }

  private checkCounters(): void {
    const o = this.shared.counters[S_OVERFLOWS]!;
    if (o !== this.overflowsSeen) {
      this.onOverflow(o - this.overflowsSeen);
      this.overflowsSeen = o;
    }
    const m = this.shared.counters[S_MISSED]!;
    if (m !== this.missedSeen) {
      this.onMissed(m - this.missedSeen);
      this.missedSeen = m;
    }
  }

  /** Closes what the thread left open (see S_OPEN_FDS); called once it has ended. */
  private closeAbandonedFds(): void {
    const open = new Int32Array(this.shared.counters.buffer);
    const conn = open[S_OPEN_FDS * 2]!;
    const file = open[S_OPEN_FDS * 2 + 1]!;
    open[S_OPEN_FDS * 2] = 0;
    open[S_OPEN_FDS * 2 + 1] = 0;
    if (conn > 0) ProcConnector.adopt(conn - 1).close();
    if (file > 0) libc().close(file - 1);
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (this.drainTimer) clearInterval(this.drainTimer);
    this.drainTimer = undefined;
    if (worker) {
      const shared = new Int32Array(this.shared.counters.buffer);
      Atomics.store(shared, S_STOP * 2, 1);
      // Woken now, the thread notices at once; else within one read timeout (1 s). Terminate only
      // if it does not. Only while its socket is open (S_OPEN_FDS): a closed one's port id may
      // already name another process's socket.
      if (this.threadPortId !== 0 && Atomics.load(shared, S_OPEN_FDS * 2) !== 0) ProcConnector.wake(this.threadPortId);
      const timer = setTimeout(() => void worker.terminate(), 3000);
      await this.exited;
      clearTimeout(timer);
    }
    this.port?.close();
    this.port = undefined;
  }
}
