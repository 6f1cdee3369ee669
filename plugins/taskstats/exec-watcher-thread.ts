/**
 * The exec watcher thread (started by exec-watcher.ts): blocks in recvmmsg() on the proc
 * connector, reads /proc/PID/{cgroup,exe,cmdline} at each exec, and publishes what it read in the
 * results ring (exec-result-ring.ts). It runs at a raised priority when permitted (SCHED_FIFO 1,
 * else a nice value): it sleeps nearly all the time, so the priority only shortens its wake-up.
 *
 * Nothing is allocated per exec: the isolate's garbage collector runs on threads of normal
 * priority, and a collection would hold up this SCHED_FIFO one.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { errorCodeOf } from '../../src/api/index.js';
import { findCgroupPath } from './cgroup-path.js';
import { CLOCK_MONOTONIC, PRIO_PROCESS, SCHED_FIFO, libc, type Libc } from './libc.js';
import { ProcConnector } from './proc-connector.js';
import { MAX_PATH_BYTES, ProcReader, cmdlineBytes } from './proc-reader.js';
import {
  EXEC_RESULT_CGROUP,
  EXEC_RESULT_DETAILS,
  ExecNumbers,
  ResultRingWriter,
  S_CGROUP_READS,
  S_DELAY_OVER_500US,
  S_DELAY_SUM_NS,
  S_EXECS,
  S_MISSED,
  S_OPEN_FDS,
  S_OVERFLOWS,
  S_SETUP,
  S_STOP,
} from './exec-result-ring.js';
import type { WatcherThreadData, WatcherThreadHello } from './exec-watcher.js';

const NAME_CGROUP = Buffer.from('/cgroup');
const NAME_EXE = Buffer.from('/exe');
const NAME_CMDLINE = Buffer.from('/cmdline');

/**
 * The thread's loop. Per wake-up: one recvmmsg() takes every exec event queued (blocking only
 * when no work is left, so no call ever just finds the socket empty); each exec is numbered at
 * once; then the cgroups of everything queued are read (the race that matters: at most 256 reads
 * before looking at the socket again) and published; then, when configured, one process's
 * executable and command line. With a single exec queued (the usual case) its details are read
 * right after its cgroup and published with it, as one result. A process that exec'd twice in a
 * row is read once, for its last image.
 */
function runExecWatcher(data: WatcherThreadData): void {
  const { options: o, counters: shared, port } = data;
  const hello = (m: WatcherThreadHello) => port.postMessage(m);
  const stop = new Int32Array(shared.buffer);
  const openFds = new Int32Array(shared.buffer, S_OPEN_FDS * 8, 2);
  const setup = new Int32Array(shared.buffer, S_SETUP * 8, 1);
  const connector = new ProcConnector(o.connector);
  // Every koffi declaration comes before 'ready' (see S_SETUP): libc() declares them all.
  let reader: ProcReader;
  let c: Libc;
  let thread: { priority: string; tid: number };
  try {
    connector.open();
    openFds[0] = connector.fileDescriptor + 1;
    c = libc();
    reader = new ProcReader(o.procRoot, openFds.subarray(1, 2));
    thread = raiseThreadPriority(o.nice ?? -10, o.realtime ?? true);
  } catch (e) {
    openFds[0] = 0;
    connector.close();
    hello({ t: 'error', message: (e as Error).message, code: errorCodeOf(e) });
    port.close();
    return;
  } finally {
    Atomics.store(setup, 0, 1);
    Atomics.notify(setup, 0);
  }
  hello({ t: 'ready', masked: connector.masked, priority: thread.priority, tid: thread.tid, portId: connector.portId() });
  const numbers = new ExecNumbers(data.execNumbers);
  const results = new ResultRingWriter(data.ring, shared, () => port.postMessage(0));
  const file = Buffer.alloc(1 << 16);
  const link = Buffer.alloc(MAX_PATH_BYTES);
  const cmdline = Buffer.alloc(Math.max(1, o.maxCommandLineBytes));
  const details = o.executablePath || o.commandLine;
  const hierarchy = o.selector.kind === 'v1' ? Buffer.from(o.selector.hierarchy, 'latin1') : undefined;
  const cgroupRange = new Int32Array(2);
  // CLOCK_MONOTONIC in ns, the clock of the kernel's event timestamps (vDSO: no system call, no allocation).
  const timespec = Buffer.alloc(16);
  const clock = new Float64Array(1); // doubles stay in typed arrays: a returned double would be boxed
  const readClock = (): void => {
    c.clockGettime(CLOCK_MONOTONIC, timespec);
    clock[0] = (timespec.readUInt32LE(4) * 4294967296 + timespec.readUInt32LE(0)) * 1e9 + timespec.readUInt32LE(8);
  };

  // Execs waiting for their cgroup read (a ring), and execs waiting for their details (a ring of
  // at most DETAIL_BACKLOG: beyond it the oldest are skipped, so results never fall far behind).
  const PENDING = 4096;
  const pendTgid = new Int32Array(PENDING);
  const pendSeq = new Int32Array(PENDING);
  const pendTs = new Float64Array(PENDING);
  let pendHead = 0;
  let pendLen = 0;
  const DETAIL_BACKLOG = 64;
  const detTgid = new Int32Array(DETAIL_BACKLOG);
  const detSeq = new Int32Array(DETAIL_BACKLOG);
  let detHead = 0;
  let detLen = 0;

  const eventTimeNs = connector.eventTimeNs;
  const collect = (_pid: number, tgid: number): void => {
    shared[S_EXECS] = shared[S_EXECS]! + 1;
    const seq = numbers.next(tgid);
    // An earlier exec of the same process still waiting is superseded (read once, for the last image).
    for (let k = 0; k < pendLen; k++) {
      const j = (pendHead + k) & (PENDING - 1);
      if (pendTgid[j] === tgid) pendTgid[j] = 0;
    }
    for (let k = 0; k < detLen; k++) {
      const j = (detHead + k) % DETAIL_BACKLOG;
      if (detTgid[j] === tgid) detTgid[j] = 0;
    }
    if (pendLen === PENDING) {
      // the oldest waited too long to matter: its process is surely gone
      pendHead = (pendHead + 1) & (PENDING - 1);
      pendLen--;
      shared[S_MISSED] = shared[S_MISSED]! + 1;
    }
    const j = (pendHead + pendLen) & (PENDING - 1);
    pendTgid[j] = tgid;
    pendSeq[j] = seq;
    pendTs[j] = eventTimeNs[0]!;
    pendLen++;
  };

  /** Reads the executable path and command line of tgid into `link` and `cmdline`; their lengths go to exeLen and cmdLen. */
  let exeLen = 0;
  let cmdLen = 0;
  const readDetails = (tgid: number): void => {
    exeLen = o.executablePath ? Math.max(0, reader.readLinkOf(tgid, NAME_EXE, link)) : 0; // 0 when ended
    cmdLen = 0;
    if (o.commandLine) {
      const n = reader.readOf(tgid, NAME_CMDLINE, cmdline);
      if (n > 0) cmdLen = cmdlineBytes(cmdline, n);
    }
  };

  // One wake-up's work in a function of its own, called in the loop: V8 optimizes a function that
  // is called often, while a loop running inside a single call waits for on-stack replacement
  // (measured: still unoptimized, boxing doubles, after thousands of execs).
  const wake = (): void => {
    const r = connector.readBatch(collect, pendLen > 0 || detLen > 0);
    if (r === -1) shared[S_OVERFLOWS] = shared[S_OVERFLOWS]! + 1;
    if (pendLen === 0 && detLen === 0) return;
    // Step 1: the cgroups of everything queued (bounded, so that a sustained stream cannot starve step 2).
    let budget = 256;
    while (pendLen > 0 && budget-- > 0) {
      const j = pendHead;
      pendHead = (pendHead + 1) & (PENDING - 1);
      pendLen--;
      const tgid = pendTgid[j]!;
      if (tgid === 0) continue; // superseded
      const n = reader.readOf(tgid, NAME_CGROUP, file);
      readClock();
      const delayNs = clock[0]! - pendTs[j]!;
      shared[S_CGROUP_READS] = shared[S_CGROUP_READS]! + 1;
      shared[S_DELAY_SUM_NS] = shared[S_DELAY_SUM_NS]! + delayNs;
      if (delayNs > 500_000) shared[S_DELAY_OVER_500US] = shared[S_DELAY_OVER_500US]! + 1;
      if (n <= 0 || !findCgroupPath(file, n, o.selector, hierarchy, cgroupRange)) {
        shared[S_MISSED] = shared[S_MISSED]! + 1;
        continue;
      }
      const seq = pendSeq[j]!;
      if (details && pendLen === 0 && detLen === 0) {
        // The usual case, one exec at a time: its details now, in the same result.
        readDetails(tgid);
        results.publish(tgid, seq, EXEC_RESULT_CGROUP | EXEC_RESULT_DETAILS, file, cgroupRange[0]!, cgroupRange[1]!, link, exeLen, cmdline, cmdLen);
        continue;
      }
      results.publish(tgid, seq, EXEC_RESULT_CGROUP, file, cgroupRange[0]!, cgroupRange[1]!, link, 0, cmdline, 0);
      if (details) {
        if (detLen === DETAIL_BACKLOG) {
          detHead = (detHead + 1) % DETAIL_BACKLOG;
          detLen--;
        } // skipped: cgroup only
        const k = (detHead + detLen) % DETAIL_BACKLOG;
        detTgid[k] = tgid;
        detSeq[k] = seq;
        detLen++;
      }
    }
    // Step 2: one process's details, once every queued cgroup is read.
    if (pendLen === 0 && detLen > 0) {
      const k = detHead;
      detHead = (detHead + 1) % DETAIL_BACKLOG;
      detLen--;
      const tgid = detTgid[k]!;
      if (tgid !== 0) {
        readDetails(tgid);
        if (exeLen > 0 || cmdLen > 0) results.publish(tgid, detSeq[k]!, EXEC_RESULT_DETAILS, file, 0, 0, link, exeLen, cmdline, cmdLen);
      }
    }
  };
  while (Atomics.load(stop, S_STOP * 2) === 0) wake();
  openFds[0] = 0;
  connector.close();
  port.close();
}

/**
 * Raises this thread's scheduling priority (Linux priorities are per thread): SCHED_FIFO 1 when
 * asked and permitted, else the nice value. Refusal is not an error; returns what was obtained.
 */
function raiseThreadPriority(nice: number, realtime: boolean): { priority: string; tid: number } {
  let tid = 0;
  try {
    const c = libc();
    tid = c.gettid();
    if (realtime && c.setScheduler(tid, SCHED_FIFO, 1) === 0) return { priority: 'SCHED_FIFO 1', tid };
    if (nice === 0) return { priority: 'unchanged', tid };
    const ok = c.setpriority(PRIO_PROCESS /* a thread id here */, tid, nice) === 0;
    return { priority: ok ? `nice ${nice}` : 'unchanged (no CAP_SYS_NICE)', tid };
  } catch {
    return { priority: 'unchanged', tid };
  }
}

if (!isMainThread) runExecWatcher(workerData as WatcherThreadData);
