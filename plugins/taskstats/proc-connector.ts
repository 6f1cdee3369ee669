/**
 * The kernel's process events connector (drivers/connector/cn_proc.c), used for exec events, and
 * the thread that watches it.
 *
 * Why exec events: a process that moves itself into a cgroup and then execs (what container
 * runtimes do for `kubectl exec` and exec probes) is in a cgroup its parent is not in, and is often
 * gone (reaped) by the time its taskstats exit record is read. Its exec event arrives while it
 * still exists, so reading /proc/PID/cgroup then gives the right answer, if the read comes before
 * the process ends and is reaped: /bin/true lives about half a millisecond after its exec.
 *
 * That is a race, and on a busy machine the main thread loses it: measured on this 2-core machine
 * under a load average of 12, the main event loop handled exec events with p90 2.3 ms and p99
 * 15 ms of delay, and missed 14% of `sh -c 'exec /bin/true'` processes. So a dedicated worker
 * thread blocks in recv() on the connector socket (woken by the kernel directly, no event loop in
 * between), reads /proc/PID/{cgroup,exe,cmdline} at once, and runs at a raised priority (nice -10
 * by default, when permitted): it sleeps nearly all the time, so the priority only shortens its
 * wake-up. Results go to the main thread through a MessagePort; the main thread applies them
 * synchronously (receiveMessageOnPort) before it fills a record, whenever a shared counter says
 * some are pending, so an exit record never overtakes the exec it follows once that exec was read.
 *
 * Wire format (a raw NETLINK_CONNECTOR datagram; all fields are naturally aligned u32/u64):
 *   nlmsghdr (16) | cn_msg {idx u32, val u32, seq u32, ack u32, len u16, flags u16} (20)
 *   | proc_event {what u32, cpu u32, timestamp_ns u64, event_data...}
 * so `what` is at 36, and event_data at 52: exec {process_pid u32, process_tgid u32};
 * ack (what = PROC_EVENT_NONE) {err u32}.
 *
 * Subscribing: bind to multicast group CN_IDX_PROC, send PROC_CN_MCAST_LISTEN (4 bytes). The
 * kernel answers with a PROC_EVENT_NONE message whose cn_msg.ack is ours + 1 (it overwrites seq
 * with a per-CPU counter) and whose err is EPERM without CAP_NET_ADMIN (before 6.6; bind fails
 * with EPERM there too; seen on 6.18: an unprivileged process may listen); requests from outside
 * the initial user and PID namespaces get no answer. Since Linux 6.6 a second request may carry
 * struct proc_input {mcast_op, event_type} (8 bytes) to set a per-socket event mask: with EXEC
 * only, fork loops (children that never exec) cause no connector traffic at all. The kernel
 * filters its own answer to that request through the mask (an answer is PROC_EVENT_NONE), so it
 * is sent without waiting. Kernels before 6.6 accept exactly 4 bytes and drop an 8-byte request
 * silently, so the mask is only sent on 6.6 and later.
 *
 * Overflow: when the receive buffer is full the kernel drops events and the next recv() fails
 * once with ENOBUFS; it is counted and reading goes on.
 */
import koffi from 'koffi';
import { release } from 'node:os';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  MessageChannel, Worker, isMainThread, receiveMessageOnPort, workerData, type MessagePort,
} from 'node:worker_threads';
import {
  AF_NETLINK, EAGAIN, EINTR, ENOBUFS, EPERM, NETLINK_CONNECTOR, SOCK_CLOEXEC, SOCK_DGRAM,
  SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, MSG_DONTWAIT, libc, setIntSockopt, type Libc,
} from './libc.js';
import { ProcFileReader, parseProcCgroupBytes, type CgroupSelector } from './cgroup-path.js';

export const CN_IDX_PROC = 1;
export const CN_VAL_PROC = 1;
export const PROC_CN_MCAST_LISTEN = 1;
export const PROC_CN_MCAST_IGNORE = 2;
export const PROC_EVENT_NONE = 0x0;
export const PROC_EVENT_FORK = 0x1;
export const PROC_EVENT_EXEC = 0x2;
export const PROC_EVENT_EXIT = 0x80000000;
const SO_RCVTIMEO = 20;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_HDRLEN = 16;
const CN_MSG_LEN = 20;
const EVENT_OFFSET = NLMSG_HDRLEN + CN_MSG_LEN; // proc_event.what
const EVENT_DATA_OFFSET = EVENT_OFFSET + 16; // proc_event.event_data

/** Whether this kernel accepts the 8-byte listen request with an event mask (Linux >= 6.6). */
export function kernelSupportsEventMask(osRelease = release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(osRelease);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 6 || (major === 6 && minor >= 6);
}

export function capNetAdminError(): Error {
  return new Error(
    'proc connector: permission denied: process events need CAP_NET_ADMIN (run as root or grant the capability, '
    + 'e.g. securityContext.capabilities.add: [NET_ADMIN])',
  );
}

export interface ProcConnectorOptions {
  /** Bitmask of PROC_EVENT_* the kernel should send (Linux >= 6.6); default EXEC only. */
  eventMask?: number;
  /** Socket receive buffer in bytes (SO_RCVBUFFORCE, else SO_RCVBUF); default 4 MiB. */
  receiveBufferBytes?: number;
  /** How long open() waits for the kernel's acknowledgement; default 2000 ms. */
  ackTimeoutMs?: number;
  /** Receive timeout of blocking reads (so a reading thread can notice it should stop); default 200 ms. */
  readTimeoutMs?: number;
  /** Override kernel version detection: whether the event mask is sent. */
  useEventMask?: boolean;
}

/** A synchronous proc connector socket: open, read one datagram at a time (blocking or not), close. */
export class ProcConnector {
  private readonly c: Libc;
  private fd = -1;
  private readonly rx = Buffer.alloc(8192);
  /** Our cn_msg.ack nonce: the kernel answers with nonce + 1. */
  private readonly nonce = (Math.random() * 0x7ffffff0) >>> 0;
  /** Whether the event mask was sent (Linux >= 6.6). */
  masked = false;
  messages = 0;
  overflows = 0;
  /** Events other than exec and acknowledgements (fork, exit, ...): none once the mask applies. */
  otherEvents = 0;

  constructor(private readonly o: ProcConnectorOptions = {}) {
    this.c = libc();
  }

  get isOpen(): boolean {
    return this.fd >= 0;
  }

  /** Opens, subscribes and waits for the kernel's acknowledgement. Throws naming CAP_NET_ADMIN when missing. */
  open(): void {
    const c = this.c;
    const fd = c.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) {
      const e = c.errno();
      throw new Error(`proc connector: socket(AF_NETLINK, NETLINK_CONNECTOR) failed: ${c.strerror(e)} (errno ${e})`);
    }
    this.fd = fd;
    try {
      const bytes = this.o.receiveBufferBytes ?? 4 << 20;
      if (setIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes) !== 0) setIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUF, bytes);
      const addr = Buffer.alloc(12);
      addr.writeUInt16LE(AF_NETLINK, 0);
      addr.writeUInt32LE(0, 4); // port id: assigned by the kernel
      addr.writeUInt32LE(CN_IDX_PROC, 8); // multicast groups bitmask
      if (c.bind(fd, addr, 12) !== 0) {
        const e = c.errno();
        if (e === EPERM) throw capNetAdminError();
        throw new Error(`proc connector: bind to CN_IDX_PROC failed: ${c.strerror(e)} (errno ${e})`);
      }
      this.setReadTimeout(50);
      const sendErr = this.sendListen(PROC_CN_MCAST_LISTEN, undefined);
      if (sendErr === EPERM) throw capNetAdminError();
      if (sendErr !== 0) throw new Error(`proc connector: send failed: ${c.strerror(sendErr)} (errno ${sendErr})`);
      const err = this.awaitAck(this.o.ackTimeoutMs ?? 2000);
      if (err === undefined) {
        throw new Error(
          'proc connector: the kernel did not acknowledge PROC_CN_MCAST_LISTEN; it only answers processes in the '
          + 'initial user and PID namespaces (in Kubernetes: hostPID: true, no user namespace)',
        );
      }
      if (err === EPERM) throw capNetAdminError();
      if (err !== 0) throw new Error(`proc connector: listen refused: ${c.strerror(err)} (errno ${err})`);
      if (this.o.useEventMask ?? kernelSupportsEventMask()) {
        const e = this.sendListen(PROC_CN_MCAST_LISTEN, this.o.eventMask ?? PROC_EVENT_EXEC);
        if (e !== 0) throw new Error(`proc connector: send failed: ${c.strerror(e)} (errno ${e})`);
        this.masked = true;
      }
      this.setReadTimeout(this.o.readTimeoutMs ?? 200);
    } catch (e) {
      this.c.close(fd);
      this.fd = -1;
      throw e;
    }
  }

  /**
   * Receives one datagram and calls onExec for each exec event in it. Returns the datagram's
   * length, 0 when nothing arrived (timeout, or nothing queued with `nonBlocking`), or -1 after an
   * overflow (ENOBUFS: events were lost).
   */
  read(onExec: (pid: number, tgid: number) => void, nonBlocking = false): number {
    if (this.fd < 0) return 0;
    const n = this.c.recv(this.fd, this.rx, this.rx.length, nonBlocking ? MSG_DONTWAIT : 0);
    if (n < 0) {
      const e = this.c.errno();
      if (e === ENOBUFS) {
        this.overflows++;
        return -1;
      }
      return 0; // EAGAIN (timeout / nothing queued), EINTR
    }
    this.messages++;
    this.dispatch(n, onExec, undefined);
    return n;
  }

  /** Unsubscribes (kernels before 6.6 count listeners until told) and closes. */
  close(): void {
    if (this.fd < 0) return;
    this.sendListen(PROC_CN_MCAST_IGNORE, undefined);
    this.c.close(this.fd);
    this.fd = -1;
  }

  private setReadTimeout(ms: number): void {
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
    tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
    this.c.setsockopt(this.fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
  }

  private awaitAck(timeoutMs: number): number | undefined {
    const deadline = Date.now() + timeoutMs;
    let ack: number | undefined;
    while (ack === undefined && Date.now() < deadline) {
      const n = this.c.recv(this.fd, this.rx, this.rx.length, 0);
      if (n < 0) {
        const e = this.c.errno();
        if (e === EAGAIN || e === EINTR || e === ENOBUFS) continue;
        throw new Error(`proc connector: recv failed: ${this.c.strerror(e)} (errno ${e})`);
      }
      this.dispatch(n, undefined, (err) => { ack = err; });
    }
    return ack;
  }

  /** Returns 0 or the errno of send(). */
  private sendListen(op: number, mask: number | undefined): number {
    const payload = mask === undefined ? 4 : 8;
    const len = NLMSG_HDRLEN + CN_MSG_LEN + payload;
    const m = Buffer.alloc(len);
    m.writeUInt32LE(len, 0);
    m.writeUInt16LE(NLMSG_DONE, 4);
    m.writeUInt32LE(CN_IDX_PROC, 16);
    m.writeUInt32LE(CN_VAL_PROC, 20);
    m.writeUInt32LE(this.nonce, 28); // cn_msg.ack: answered as nonce + 1
    m.writeUInt16LE(payload, 32);
    m.writeUInt32LE(op, 36);
    if (mask !== undefined) m.writeUInt32LE(mask >>> 0, 40);
    return this.c.send(this.fd, m, len, 0) < 0 ? this.c.errno() : 0;
  }

  private dispatch(n: number, onExec: ((pid: number, tgid: number) => void) | undefined, onAck: ((err: number) => void) | undefined): void {
    const b = this.rx;
    let off = 0;
    while (off + NLMSG_HDRLEN <= n) {
      const len = b.readUInt32LE(off);
      if (len < NLMSG_HDRLEN || off + len > n) return;
      const type = b.readUInt16LE(off + 4);
      if (type !== NLMSG_ERROR && len >= EVENT_DATA_OFFSET + 8 && b.readUInt32LE(off + 16) === CN_IDX_PROC) {
        const what = b.readUInt32LE(off + EVENT_OFFSET);
        if (what === PROC_EVENT_EXEC) {
          onExec?.(b.readUInt32LE(off + EVENT_DATA_OFFSET), b.readUInt32LE(off + EVENT_DATA_OFFSET + 4));
        } else if (what === PROC_EVENT_NONE) {
          // An acknowledgement: ours when it carries our nonce + 1 (other listeners' are multicast too).
          if (onAck && b.readUInt32LE(off + 28) === ((this.nonce + 1) >>> 0)) onAck(b.readUInt32LE(off + EVENT_DATA_OFFSET));
        } else {
          this.otherEvents++;
        }
      }
      off += (len + 3) & ~3;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The exec watcher: a worker thread that reads /proc at each exec event
// ---------------------------------------------------------------------------------------------

const WORKER_KIND = 'taskstats-exec-watcher';

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
   * budget; falls back to `nice`). Default true: measured here under a load average of 13 on 2
   * cores, SCHED_FIFO missed 0 of 2000 `sh -c 'exec /bin/true'` processes, nice -10 about 6%.
   * The thread only wakes for exec events and does bounded work for each (a few /proc reads).
   */
  realtime?: boolean;
  connector?: ProcConnectorOptions;
}

/** What the watcher read at one exec: [tgid, cgroup, exePath, cmdline, capturedSec, execSeq]. */
export type ExecInfo = [number, string, string, string, number, number];

/**
 * Exec sequence numbers shared with the main thread. The watcher numbers every exec event it
 * receives (a global counter, wrapping int32) and records, before reading /proc, the last exec per
 * slot (tgid & mask) as [tgid, seq]. An entry remembers the number of the exec it reflects (or the
 * counter's value when it was read from /proc); a larger number for the same pid in its slot at
 * exit time means an exec of that process is not applied yet (the exit record overtook the
 * watcher's reads). Only a second exec hashing to the same slot within the watcher's reaction
 * time can hide one.
 */
const EXEC_SLOTS = 1 << 16;
const EXEC_SLOT_MASK = EXEC_SLOTS - 1;

/** a - b for wrapping int32 sequence numbers. */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** Counters shared with the watcher thread (Float64 slots). */
const S_POSTED = 0; // messages posted to the port
const S_EXECS = 1;
const S_MISSED = 2; // exec events whose process was gone before /proc could be read
const S_OVERFLOWS = 3;
const S_HANDLER_NS = 4; // time from recv() returning to the result being posted
const S_STOP = 5;
const S_SLOTS = 6;

export interface ExecWatcherStats {
  execEvents: number;
  missed: number;
  overflows: number;
  /** Time the watcher spent handling exec events (/proc reads, posting), summed (ns). */
  handlerNs: number;
}

/**
 * Main-thread side of the watcher. `drain()` applies pending results synchronously; call it
 * before using the cache (it costs one shared-memory load when nothing is pending).
 */
export class ExecWatcher {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly shared = new Float64Array(new SharedArrayBuffer(8 * S_SLOTS));
  /** [0]: exec counter; then [tgid, seq] per slot. */
  private readonly execSeq = new Int32Array(new SharedArrayBuffer(4 * (1 + 2 * EXEC_SLOTS)));
  private received = 0;
  private overflowsSeen = 0;
  private missedSeen = 0;
  masked = false;
  /** The watcher thread's scheduling priority as obtained: `SCHED_FIFO 1`, `nice -10`, `unchanged ...`. */
  priority = 'unchanged';
  /** The watcher thread's kernel thread id (for its CPU time in /proc/self/task/TID/schedstat). */
  threadId = 0;
  /** Time the main thread spent applying results (receiving and caching them), nanoseconds. */
  applyNs = 0;

  constructor(
    private readonly o: ExecWatcherOptions,
    private readonly onExec: (info: ExecInfo) => void,
    private readonly onOverflow: (count: number) => void,
    private readonly onMissed: (count: number) => void = () => {},
    /** The thread ended without being asked to (a crash): attribution falls back to parents. */
    private readonly onDied: (reason: string) => void = () => {},
  ) {}

  get stats(): ExecWatcherStats {
    const s = this.shared;
    return { execEvents: s[S_EXECS]!, missed: s[S_MISSED]!, overflows: s[S_OVERFLOWS]!, handlerNs: s[S_HANDLER_NS]! };
  }

  async start(): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { kind: WORKER_KIND, options: this.o, shared: this.shared, execSeq: this.execSeq, port: port2 },
      transferList: [port2],
      // The worker needs none of the parent's flags, and inheriting them breaks its start: V8 and
      // process-wide flags (`node --max-old-space-size=... bin/taskstats-agent`, a heap cap users
      // set) are refused in a worker's execArgv, and --input-type applies only to inline scripts.
      execArgv: [],
    });
    this.worker = worker;
    this.port = port1;
    this.exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        const onExit = (code: number) => reject(new Error(`proc connector thread exited with code ${code} before subscribing`));
        worker.once('error', onError);
        worker.once('exit', onExit);
        port1.once('message', (m: { t: string; message?: string; masked?: boolean; priority?: string; tid?: number }) => {
          worker.off('error', onError);
          worker.off('exit', onExit);
          if (m.t === 'ready') {
            this.masked = m.masked === true;
            this.priority = m.priority ?? 'unchanged';
            this.threadId = m.tid ?? 0;
            resolve();
          } else {
            reject(new Error(m.message ?? 'proc connector thread failed'));
          }
        });
      });
    } catch (e) {
      await this.stop();
      throw e;
    }
    // Results are applied by drain() on demand; this listener applies them when no record asks.
    port1.on('message', (m: ExecInfo) => this.apply(m));
    worker.on('error', (e) => { if (this.worker === worker) this.onDied(e.message); });
    worker.on('exit', (code) => { if (this.worker === worker) this.onDied(`exit code ${code}`); });
    port1.unref();
    worker.unref();
  }

  /** The number of the last exec received (see EXEC_SLOTS); entries read from /proc now reflect it. */
  currentSeq(): number {
    return Atomics.load(this.execSeq, 0);
  }

  /** Whether an exec of tgid numbered after `seq` was received (its result may not be applied yet). */
  execAfter(tgid: number, seq: number): boolean {
    const i = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    return Atomics.load(this.execSeq, i) === tgid && seqAfter(Atomics.load(this.execSeq, i + 1), seq);
  }

  /** Whether `seq` numbers the latest exec of tgid received (its slot was not taken since). */
  isLatestExec(tgid: number, seq: number): boolean {
    const i = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    return Atomics.load(this.execSeq, i) === tgid && Atomics.load(this.execSeq, i + 1) === seq;
  }

  /** Whether the last exec received in tgid's slot was tgid's. */
  execSeen(tgid: number): boolean {
    return Atomics.load(this.execSeq, 1 + 2 * (tgid & EXEC_SLOT_MASK)) === tgid;
  }

  /** Applies every result the watcher posted so far. */
  drain(): void {
    if (this.port === undefined || this.shared[S_POSTED] === this.received) return;
    for (;;) {
      const m = receiveMessageOnPort(this.port);
      if (m === undefined) break;
      this.apply(m.message as ExecInfo);
    }
    this.checkOverflows();
  }

  private apply(m: ExecInfo): void {
    const t0 = performance.now();
    this.received++;
    this.onExec(m);
    this.checkOverflows();
    this.applyNs += (performance.now() - t0) * 1e6;
  }

  /** CPU time the watcher thread has used so far (ns), from the kernel's schedstat; 0 if unknown. */
  threadCpuNs(): number {
    if (this.threadId === 0) return 0;
    try {
      return Number(readFileSync(`/proc/self/task/${this.threadId}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      return 0;
    }
  }

  private checkOverflows(): void {
    const o = this.shared[S_OVERFLOWS]!;
    if (o !== this.overflowsSeen) {
      this.onOverflow(o - this.overflowsSeen);
      this.overflowsSeen = o;
    }
    const m = this.shared[S_MISSED]!;
    if (m !== this.missedSeen) {
      this.onMissed(m - this.missedSeen);
      this.missedSeen = m;
    }
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) {
      Atomics.store(new Int32Array(this.shared.buffer), S_STOP * 2, 1);
      // The thread notices within one read timeout (200 ms); terminate only if it does not.
      const timer = setTimeout(() => void worker.terminate(), 3000);
      await this.exited;
      clearTimeout(timer);
    }
    this.port?.close();
    this.port = undefined;
  }
}

/** The watcher thread's loop. */
function runExecWatcher(data: { options: ExecWatcherOptions; shared: Float64Array; execSeq: Int32Array; port: MessagePort }): void {
  const { options: o, shared, execSeq, port } = data;
  const stop = new Int32Array(shared.buffer);
  const connector = new ProcConnector(o.connector);
  try {
    connector.open();
  } catch (e) {
    port.postMessage({ t: 'error', message: (e as Error).message });
    port.close();
    return;
  }
  const { priority, tid } = raiseThreadPriority(o.nice ?? -10, o.realtime ?? true);
  port.postMessage({ t: 'ready', masked: connector.masked, priority, tid });
  const reader = new ProcFileReader();
  const root = o.procRoot;
  // Work queue, in order of arrival. The socket is drained (without blocking) between steps, so a
  // new exec's slot is numbered at once. Each round reads the cgroup of everything queued (the
  // race that matters; at most 256 reads), then one process's executable and command line and posts it;
  // with more than DETAIL_BACKLOG processes waiting, the details are skipped (the cgroup is posted
  // alone) so results never fall far behind. A process that exec'd twice in a row
  // (`sh -c '...; exec prog'`) is read once, for its last image.
  const DETAIL_BACKLOG = 64;
  const tgids: number[] = [];
  const seqs: number[] = [];
  const cgroups: (string | null | undefined)[] = []; // undefined: not read yet; null: gone
  const superseded: boolean[] = [];
  const lastIndex = new Map<number, number>(); // tgid -> absolute index of its latest queued exec
  let base = 0; // absolute index of tgids[0]
  let head = 0; // next item to post
  let cgroupsDone = 0; // items before this index have had their cgroup read
  const collect = (_pid: number, tgid: number): void => {
    shared[S_EXECS]++;
    const seq = (Atomics.add(execSeq, 0, 1) + 1) | 0;
    const slot = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    Atomics.store(execSeq, slot + 1, seq);
    Atomics.store(execSeq, slot, tgid);
    const prev = lastIndex.get(tgid);
    if (prev !== undefined && prev - base >= head) superseded[prev - base] = true;
    lastIndex.set(tgid, base + tgids.length);
    tgids.push(tgid);
    seqs.push(seq);
    cgroups.push(undefined);
    superseded.push(false);
  };
  const drainSocket = (): void => {
    for (;;) {
      const r = connector.read(collect, true);
      if (r === 0) return;
      if (r === -1) shared[S_OVERFLOWS]++;
    }
  };
  while (Atomics.load(stop, S_STOP * 2) === 0) {
    if (head === tgids.length) {
      base += tgids.length;
      head = 0;
      cgroupsDone = 0;
      tgids.length = 0;
      seqs.length = 0;
      cgroups.length = 0;
      superseded.length = 0;
      lastIndex.clear();
      const r = connector.read(collect);
      if (r === -1) shared[S_OVERFLOWS]++;
      if (r === 0) continue;
    } else if (head >= 1024) {
      // A sustained backlog: drop what was posted from the front.
      tgids.splice(0, head);
      seqs.splice(0, head);
      cgroups.splice(0, head);
      superseded.splice(0, head);
      base += head;
      cgroupsDone -= head;
      head = 0;
    }
    drainSocket();
    const t0 = process.hrtime.bigint();
    // Step 1: the cgroups of everything queued, arrivals during the step included (draining the
    // socket between reads), up to a bound so that a sustained stream cannot starve step 2.
    let budget = 256;
    while (cgroupsDone < tgids.length && budget-- > 0) {
      const i = cgroupsDone++;
      if (superseded[i]) { cgroups[i] = null; continue; }
      const n = reader.readBytes(`${root}/${tgids[i]}/cgroup`, 1 << 16);
      const cgroup = n > 0 ? parseProcCgroupBytes(reader.bytes(), n, o.selector) : undefined;
      cgroups[i] = cgroup ?? null;
      if (cgroup === undefined) shared[S_MISSED]++;
      drainSocket();
    }
    // Step 2: one item's executable and command line, then the post.
    if (head < cgroupsDone) {
      const i = head++;
      const tgid = tgids[i]!;
      if (lastIndex.get(tgid) === base + i) lastIndex.delete(tgid);
      const cgroup = cgroups[i];
      if (typeof cgroup === 'string' && !superseded[i]) {
        const details = tgids.length - head <= DETAIL_BACKLOG;
        let exe = '';
        if (o.executablePath && details) exe = reader.readLink(`${root}/${tgid}/exe`); // '' when ended
        let cmdline = '';
        if (o.commandLine && details) {
          const m = reader.readBytes(`${root}/${tgid}/cmdline`, o.maxCommandLineBytes);
          if (m > 0) cmdline = cmdlineText(reader.bytes(), m);
        }
        const info: ExecInfo = [tgid, cgroup, exe, cmdline, Date.now() / 1000, seqs[i]!];
        port.postMessage(info);
        shared[S_POSTED]++; // after posting: the main thread drains when this differs from what it received
      }
    }
    shared[S_HANDLER_NS] += Number(process.hrtime.bigint() - t0);
  }
  connector.close();
  port.close();
}

/** Command line from /proc/PID/cmdline bytes: NUL separators become spaces, trailing NULs dropped. */
export function cmdlineText(b: Buffer, n: number): string {
  let end = n;
  while (end > 0 && b[end - 1] === 0) end--;
  for (let i = 0; i < end; i++) if (b[i] === 0) b[i] = 32;
  return b.toString('utf8', 0, end);
}

/**
 * Raises this thread's scheduling priority (Linux priorities are per thread): SCHED_FIFO 1 when
 * asked and permitted, else the nice value. Refusal is not an error; returns what was obtained.
 */
function raiseThreadPriority(nice: number, realtime: boolean): { priority: string; tid: number } {
  let tid = 0;
  try {
    const lib = koffi.load('libc.so.6');
    const syscall = lib.func('long syscall(long number)');
    const SYS_gettid = process.arch === 'arm64' ? 178 : 186;
    tid = Number(syscall(SYS_gettid));
    if (realtime) {
      const setscheduler = lib.func('int sched_setscheduler(int pid, int policy, void *param)');
      const param = Buffer.alloc(4);
      param.writeInt32LE(1, 0);
      if (setscheduler(tid, 1 /* SCHED_FIFO */, param) === 0) return { priority: 'SCHED_FIFO 1', tid };
    }
    if (nice === 0) return { priority: 'unchanged', tid };
    const setpriority = lib.func('int setpriority(int which, uint32_t who, int prio)');
    const ok = setpriority(0 /* PRIO_PROCESS: a thread id here */, tid, nice) === 0;
    return { priority: ok ? `nice ${nice}` : 'unchanged (no CAP_SYS_NICE)', tid };
  } catch {
    return { priority: 'unchanged', tid };
  }
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND) {
  runExecWatcher(workerData as { options: ExecWatcherOptions; shared: Float64Array; execSeq: Int32Array; port: MessagePort });
}
