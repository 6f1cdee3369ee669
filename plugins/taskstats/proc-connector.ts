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
 * thread blocks in recvmmsg() on the connector socket (woken by the kernel directly, no event loop
 * in between), reads /proc/PID/{cgroup,exe,cmdline} at once, and runs at a raised priority
 * (SCHED_FIFO 1 by default, else nice -10, when permitted): it sleeps nearly all the time, so the
 * priority only shortens its wake-up. Results go to the main thread through a ring in shared
 * memory (strings as UTF-8 bytes), which the main thread drains synchronously before it fills a
 * record (one shared-memory load when nothing is pending), so an exit record never overtakes the
 * exec it follows once that exec was read, and the main thread is not woken per exec.
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
import { MessageChannel, Worker, isMainThread, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import {
  AF_NETLINK,
  DatagramBatch,
  EAGAIN,
  EINTR,
  ENOBUFS,
  EPERM,
  NETLINK_CONNECTOR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  MSG_DONTWAIT,
  libc,
  setIntSockopt,
  type Libc,
} from './libc.js';
import { findCgroupPath, type CgroupSelector } from './cgroup-path.js';

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
    'proc connector: permission denied: process events need CAP_NET_ADMIN (run as root or grant the capability, ' +
      'e.g. securityContext.capabilities.add: [NET_ADMIN])',
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
  private batch: DatagramBatch | undefined;
  /** [0]: the kernel timestamp (CLOCK_MONOTONIC, ns) of the exec event being handed to onExec. */
  readonly eventTimeNs = new Float64Array(1);
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

  /** The socket's file descriptor (-1 when closed). */
  get fileDescriptor(): number {
    return this.fd;
  }

  /** Takes over the socket of a thread that ended without closing it, to unsubscribe and close it here. */
  static adopt(fd: number): ProcConnector {
    const pc = new ProcConnector();
    pc.fd = fd;
    return pc;
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
          'proc connector: the kernel did not acknowledge PROC_CN_MCAST_LISTEN; it only answers processes in the ' +
            'initial user and PID namespaces (in Kubernetes: hostPID: true, no user namespace)',
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
  read(onExec: ExecEventHandler, nonBlocking = false): number {
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
    this.dispatch(this.rx, 0, n, onExec, undefined);
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
      this.dispatch(this.rx, 0, n, undefined, (err) => {
        ack = err;
      });
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

  /**
   * Receives every datagram queued (up to RECV_BATCH) in one recvmmsg() call and calls onExec for
   * each exec event; blocking until the first arrives unless `nonBlocking`. Returns the number of
   * datagrams, 0 when nothing arrived (timeout, or nothing queued with `nonBlocking`), or -1 after
   * an overflow (ENOBUFS: events were lost). One system call per wake-up however many execs are
   * queued, and none that only finds the socket empty (see the exec watcher).
   */
  readBatch(onExec: ExecEventHandler, nonBlocking: boolean): number {
    if (this.fd < 0) return 0;
    if (!LP64) return this.read(onExec, nonBlocking);
    const mm = (this.batch ??= new DatagramBatch(RECV_BATCH, RECV_SLOT_BYTES));
    const n = this.c.recvmmsg(this.fd, mm.hdrAddress, RECV_BATCH, nonBlocking ? MSG_DONTWAIT : MSG_WAITFORONE);
    if (n < 0) {
      const e = this.c.errno();
      if (e === ENOBUFS) {
        this.overflows++;
        return -1;
      }
      return 0;
    }
    for (let i = 0; i < n; i++) {
      this.messages++;
      this.dispatch(mm.buf, i * RECV_SLOT_BYTES, mm.length(i), onExec, undefined);
    }
    return n;
  }

  private dispatch(b: Buffer, base: number, n: number, onExec: ExecEventHandler | undefined, onAck: ((err: number) => void) | undefined): void {
    let off = base;
    const end = base + n;
    while (off + NLMSG_HDRLEN <= end) {
      const len = b.readUInt32LE(off);
      if (len < NLMSG_HDRLEN || off + len > end) return;
      const type = b.readUInt16LE(off + 4);
      if (type !== NLMSG_ERROR && len >= EVENT_DATA_OFFSET + 8 && b.readUInt32LE(off + 16) === CN_IDX_PROC) {
        const what = b.readUInt32LE(off + EVENT_OFFSET);
        if (what === PROC_EVENT_EXEC) {
          // proc_event.timestamp_ns (CLOCK_MONOTONIC), as a double (exact to the microsecond for
          // years of uptime), handed over in a typed array: a double argument would be boxed.
          this.eventTimeNs[0] = b.readUInt32LE(off + EVENT_OFFSET + 12) * 4294967296 + b.readUInt32LE(off + EVENT_OFFSET + 8);
          onExec?.(b.readUInt32LE(off + EVENT_DATA_OFFSET), b.readUInt32LE(off + EVENT_DATA_OFFSET + 4));
        } else if (what === PROC_EVENT_NONE) {
          // An acknowledgement: ours when it carries our nonce + 1 (other listeners' are multicast too).
          if (onAck && b.readUInt32LE(off + 28) === (this.nonce + 1) >>> 0) onAck(b.readUInt32LE(off + EVENT_DATA_OFFSET));
        } else {
          this.otherEvents++;
        }
      }
      off += (len + 3) & ~3;
    }
  }
}

/** Called for each exec event: the thread's pid and its thread group (the event's time is in ProcConnector.eventTimeNs). */
export type ExecEventHandler = (pid: number, tgid: number) => void;

const MSG_WAITFORONE = 0x10000;
/** Datagrams received per recvmmsg() call. */
const RECV_BATCH = 64;
/** Room per datagram: an exec event is 76 bytes; anything larger (not sent with the EXEC mask) is cut (MSG_TRUNC). */
const RECV_SLOT_BYTES = 256;
/** recvmmsg() through DatagramBatch assumes the LP64 struct mmsghdr layout; elsewhere single recv() calls are used. */
const LP64 = process.arch === 'x64' || process.arch === 'arm64';

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

/** A result carries the cgroup read at the exec (exe and cmdline too when EXEC_RESULT_DETAILS is set). */
export const EXEC_RESULT_CGROUP = 1;
/** A result carries the executable path and command line. Alone: the details of an exec whose cgroup came earlier. */
export const EXEC_RESULT_DETAILS = 2;

/**
 * Receives what the watcher read at one exec (see the ring below). `what` says which fields are
 * set: EXEC_RESULT_CGROUP (cgroup; exePath and cmdline '' unless EXEC_RESULT_DETAILS too), or
 * EXEC_RESULT_DETAILS alone (exePath and cmdline of the exec numbered execSeq, whose cgroup result
 * came before; cgroup ''). capturedSec: wall-clock time of the read.
 */
export type ExecResultHandler = (tgid: number, execSeq: number, what: number, cgroup: string, exePath: string, cmdline: string, capturedSec: number) => void;

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
const S_EXECS = 0;
const S_MISSED = 1; // exec events whose process was gone before /proc could be read, or whose result found the ring full
const S_OVERFLOWS = 2;
const S_STOP = 3; // read as Int32 index S_STOP * 2
const S_CGROUP_READS = 4;
const S_DELAY_SUM_NS = 5; // exec event (kernel timestamp) to the end of its cgroup read, summed
const S_DELAY_OVER_500US = 6;
const S_DROPPED = 7; // results dropped because the main thread had not taken RESULT_SLOTS of them (in S_MISSED when they carried the cgroup)
/**
 * Read as Int32 indices S_OPEN_FDS * 2 (the connector socket) and + 1 (a /proc file being read):
 * fd + 1 while the thread holds it open, else 0. A thread that ends without closing them
 * (terminate(), an error, its heap limit) leaves them to the main thread, which closes them once
 * the thread is gone; an abandoned connector socket would stay subscribed, the kernel queueing
 * every exec of the machine into its 4 MiB buffer. Cleared before each close: at worst a leak,
 * never the close of an fd number reused meanwhile.
 */
const S_OPEN_FDS = 8;
/**
 * Read as Int32 index S_SETUP * 2: 1 once the thread has made its koffi declarations (koffi.load,
 * lib.func). A worker terminated inside one aborts the whole process (FATAL ERROR:
 * Error::ThrowAsJavaScriptException napi_throw, koffi 3.3.4 on Node 26, seen in the soak test;
 * the crash of Koromix/koffi#190), and Node terminates every worker when the process exits: so
 * the thread declares everything before it reports ready, and an exit during start() first waits
 * for the declarations to end (milliseconds).
 */
const S_SETUP = 9;
const S_SLOTS = 10;

/**
 * The results ring, in shared memory: the watcher thread writes, the main thread reads when it
 * needs them (before filling a record) or when nudged, with no message passing per exec (a
 * MessagePort costs a structured clone in the thread and a wake-up of the main event loop: ~60 us
 * of main-thread CPU per exec, measured). Each result is RESULT_INTS int32 in `slots`, its capture
 * time in `captured`, and its strings as UTF-8 bytes in `arena`, a byte ring whose space is handed
 * out in publication order and given back by the reader (int32 positions that wrap; ARENA_BYTES
 * divides 2^32). Control words: published and consumed result counts, the arena position up to
 * which the reader is done, and whether a nudge is outstanding.
 */
const RESULT_SLOTS = 4096;
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
/** Longest cgroup path and executable path passed on (PATH_MAX). */
const MAX_PATH_BYTES = 4096;

interface ResultRing {
  control: Int32Array;
  slots: Int32Array;
  captured: Float64Array;
  arena: Uint8Array;
}

function newResultRing(maxCommandLineBytes: number): ResultRing {
  // Room for at least 64 results of the largest size, and 1 MiB (thousands of typical ones).
  const need = 64 * (2 * MAX_PATH_BYTES + maxCommandLineBytes);
  let arenaBytes = 1 << 20;
  while (arenaBytes < need && arenaBytes < 1 << 30) arenaBytes *= 2;
  return {
    control: new Int32Array(new SharedArrayBuffer(4 * 4)),
    slots: new Int32Array(new SharedArrayBuffer(4 * RESULT_INTS * RESULT_SLOTS)),
    captured: new Float64Array(new SharedArrayBuffer(8 * RESULT_SLOTS)),
    arena: new Uint8Array(new SharedArrayBuffer(arenaBytes)),
  };
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
 * before using the cache (it costs one shared-memory load when nothing is pending).
 */
export class ExecWatcher {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly shared = new Float64Array(new SharedArrayBuffer(8 * S_SLOTS));
  /** [0]: exec counter; then [tgid, seq] per slot. */
  private readonly execSeq = new Int32Array(new SharedArrayBuffer(4 * (1 + 2 * EXEC_SLOTS)));
  private readonly ring: ResultRing;
  private readonly arena: Buffer;
  private consumed = 0;
  private draining = false;
  private drainTimer: NodeJS.Timeout | undefined;
  /** The last cgroup decoded and its bytes: consecutive execs are mostly in one cgroup, so most results decode nothing. */
  private lastCgroup = '';
  private readonly lastCgroupBytes = Buffer.alloc(MAX_PATH_BYTES);
  private lastCgroupLen = -1;
  private overflowsSeen = 0;
  private missedSeen = 0;
  masked = false;
  /** The watcher thread's scheduling priority as obtained: `SCHED_FIFO 1`, `nice -10`, `unchanged ...`. */
  priority = 'unchanged';
  /** The watcher thread's kernel thread id (for its CPU time in /proc/self/task/TID/schedstat). */
  threadId = 0;
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
    this.ring = newResultRing(o.maxCommandLineBytes);
    this.arena = Buffer.from(this.ring.arena.buffer);
  }

  get stats(): ExecWatcherStats {
    const s = this.shared;
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
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { kind: WORKER_KIND, options: this.o, shared: this.shared, execSeq: this.execSeq, ring: this.ring, port: port2 },
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
    const setup = new Int32Array(this.shared.buffer, S_SETUP * 8, 1);
    const onProcessExit = () => void Atomics.wait(setup, 0, 0, 2000);
    process.on('exit', onProcessExit);
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        const onExit = (code: number) => {
          // The thread posts why it failed, then ends: its exit can be reported before that
          // message is delivered (Node 26), so read a pending one first.
          const pending = receiveMessageOnPort(port1)?.message as { t?: string; message?: string } | undefined;
          if (pending?.t === 'error' && pending.message) reject(new Error(pending.message));
          else reject(new Error(`proc connector thread exited with code ${code} before subscribing`));
        };
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
    } finally {
      process.off('exit', onProcessExit);
    }
    // Results are applied by drain() on demand (before a record is filled). The thread nudges
    // through the port only when the ring is half full, and a slow timer keeps the counters fresh.
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

  /** Applies every result the watcher published so far. */
  drain(): void {
    const { control, slots, captured } = this.ring;
    const published = Atomics.load(control, C_PUBLISHED);
    if (published === this.consumed || this.draining) {
      if (this.port !== undefined) this.checkOverflows();
      return;
    }
    this.draining = true;
    const t0 = performance.now();
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
        this.onResult(slots[b + R_TGID]!, slots[b + R_SEQ]!, what, cgroup, exePath, cmdline, captured[b / RESULT_INTS]!);
      }
    } finally {
      // Hand the space back (strings were decoded before each callback).
      Atomics.store(control, C_ARENA_FREED, arenaEnd);
      Atomics.store(control, C_CONSUMED, this.consumed);
      Atomics.store(control, C_NUDGED, 0);
      this.draining = false;
      this.applyNs += (performance.now() - t0) * 1e6;
    }
    this.checkOverflows();
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

  /** Closes what the thread left open (see S_OPEN_FDS); called once it has ended. */
  private closeAbandonedFds(): void {
    const open = new Int32Array(this.shared.buffer);
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

// ---------------------------------------------------------------------------------------------
// The watcher thread
// ---------------------------------------------------------------------------------------------

const O_RDONLY_CLOEXEC = 0o2000000;

/**
 * /proc/PID/{cgroup,exe,cmdline} read with one open, one read and one close each (a /proc file
 * that fits the buffer comes whole in one read: seq_file for cgroup, and cmdline's reader loops
 * until the count is met), into buffers allocated once; paths are written as bytes (no string is
 * built per exec).
 */
class ProcBytesReader {
  private readonly path = Buffer.alloc(MAX_PATH_BYTES + 64);
  private readonly rootLen: number;
  /** File contents (cgroup), the link target (exe) and the command line, valid until the next read of the same kind. */
  readonly file = Buffer.alloc(1 << 16);
  readonly link = Buffer.alloc(MAX_PATH_BYTES);
  readonly cmdline: Buffer;
  private readonly open: (path: Buffer, flags: number) => number;
  private readonly readFd: (fd: number, buf: Buffer, n: number) => number;
  private readonly close: (fd: number) => number;
  private readonly readlink: (path: Buffer, buf: Buffer, n: number) => number;

  /** openFd[0]: fd + 1 of the file being read, else 0 (see S_OPEN_FDS). */
  constructor(
    root: string,
    maxCommandLineBytes: number,
    private readonly openFd: Int32Array = new Int32Array(1),
  ) {
    const lib = koffi.load('libc.so.6');
    // ssize_t results fit an int for these sizes; declared int, they come back as plain numbers.
    this.open = lib.func('int open(void *path, int flags)') as (path: Buffer, flags: number) => number;
    this.readFd = lib.func('int read(int fd, void *buf, size_t n)') as (fd: number, buf: Buffer, n: number) => number;
    this.close = lib.func('int close(int fd)') as (fd: number) => number;
    this.readlink = lib.func('int readlink(void *path, void *buf, size_t n)') as (path: Buffer, buf: Buffer, n: number) => number;
    this.rootLen = this.path.write(`${root}/`, 0, 'utf8');
    if (this.rootLen > MAX_PATH_BYTES) throw new Error(`procRoot is too long: ${root}`);
    this.cmdline = Buffer.alloc(Math.max(1, maxCommandLineBytes));
  }

  /** Reads /proc/TGID/NAME into `into` (at most its length); returns the length, or -1 when unreadable. */
  read(tgid: number, name: Buffer, into: Buffer): number {
    this.setPath(tgid, name);
    const fd = this.open(this.path, O_RDONLY_CLOEXEC);
    if (fd < 0) return -1;
    this.openFd[0] = fd + 1;
    const n = this.readFd(fd, into, into.length);
    this.openFd[0] = 0;
    this.close(fd);
    return n;
  }

  /** Reads the link /proc/TGID/NAME into `link`; returns its length, or -1. */
  readLink(tgid: number, name: Buffer): number {
    this.setPath(tgid, name);
    return this.readlink(this.path, this.link, this.link.length);
  }

  /** ROOT/TGID/NAME\0 into the path buffer, without a string. */
  private setPath(tgid: number, name: Buffer): void {
    const p = this.path;
    let digits = 1;
    for (let v = tgid; v >= 10; v = Math.floor(v / 10)) digits++;
    let i = this.rootLen + digits;
    for (let v = tgid; i > this.rootLen; v = Math.floor(v / 10)) p[--i] = 48 + (v % 10);
    i = this.rootLen + digits;
    name.copy(p, i);
    p[i + name.length] = 0;
  }
}

const NAME_CGROUP = Buffer.from('/cgroup');
const NAME_EXE = Buffer.from('/exe');
const NAME_CMDLINE = Buffer.from('/cmdline');
/** Copies short byte strings: Buffer.copy with offsets allocates a view per call (Node 20). */
function copyBytes(from: Uint8Array, fromStart: number, to: Uint8Array, toStart: number, len: number): void {
  for (let i = 0; i < len; i++) to[toStart + i] = from[fromStart + i]!;
}

/** /proc/PID/cmdline bytes in place: NUL separators become spaces, trailing NULs dropped; returns the length kept. */
function cmdlineBytes(b: Buffer, n: number): number {
  let end = n;
  while (end > 0 && b[end - 1] === 0) end--;
  for (let i = 0; i < end; i++) if (b[i] === 0) b[i] = 32;
  return end;
}

interface WatcherThreadData {
  options: ExecWatcherOptions;
  shared: Float64Array;
  execSeq: Int32Array;
  ring: ResultRing;
  port: MessagePort;
}

/**
 * The watcher thread's loop. Per wake-up: one recvmmsg() takes every exec event queued (blocking
 * only when no work is left, so no call ever just finds the socket empty); each exec is numbered
 * at once; then the cgroups of everything queued are read (the race that matters: at most 256
 * reads before looking at the socket again) and published; then, when configured, one process's
 * executable and command line. With a single exec queued (the usual case) its details are read
 * right after its cgroup and published with it, as one result. A process that exec'd twice in a
 * row is read once, for its last image. Nothing is allocated per exec (the isolate's garbage
 * collector runs on threads of normal priority: a collection would hold up this SCHED_FIFO one).
 */
function runExecWatcher(data: WatcherThreadData): void {
  const { options: o, shared, execSeq, ring, port } = data;
  const stop = new Int32Array(shared.buffer);
  const openFds = new Int32Array(shared.buffer, S_OPEN_FDS * 8, 2);
  const setup = new Int32Array(shared.buffer, S_SETUP * 8, 1);
  const connector = new ProcConnector(o.connector);
  // Every koffi declaration comes before 'ready' (see S_SETUP).
  let reader: ProcBytesReader;
  let clockGettime: (clock: number, ts: Buffer) => number;
  let thread: { priority: string; tid: number };
  try {
    connector.open();
    openFds[0] = connector.fileDescriptor + 1;
    reader = new ProcBytesReader(o.procRoot, o.maxCommandLineBytes, openFds.subarray(1, 2));
    // CLOCK_MONOTONIC in ns, the clock of the kernel's event timestamps (vDSO: no system call, no allocation).
    clockGettime = koffi.load('libc.so.6').func('int clock_gettime(int clock, void *ts)') as (clock: number, ts: Buffer) => number;
    thread = raiseThreadPriority(o.nice ?? -10, o.realtime ?? true);
  } catch (e) {
    openFds[0] = 0;
    connector.close();
    port.postMessage({ t: 'error', message: (e as Error).message });
    port.close();
    return;
  } finally {
    Atomics.store(setup, 0, 1);
    Atomics.notify(setup, 0);
  }
  port.postMessage({ t: 'ready', masked: connector.masked, priority: thread.priority, tid: thread.tid });
  const details = o.executablePath || o.commandLine;
  const hierarchy = o.selector.kind === 'v1' ? Buffer.from(o.selector.hierarchy, 'latin1') : undefined;
  const cgroupRange = new Int32Array(2);
  const timespec = Buffer.alloc(16);
  const clock = new Float64Array(1); // doubles stay in typed arrays: a returned double would be boxed
  const readClock = (): void => {
    clockGettime(1 /* CLOCK_MONOTONIC */, timespec);
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
    const seq = (Atomics.add(execSeq, 0, 1) + 1) | 0;
    const slot = 1 + 2 * (tgid & EXEC_SLOT_MASK);
    Atomics.store(execSeq, slot + 1, seq);
    Atomics.store(execSeq, slot, tgid);
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

  // Publishing into the shared ring (see ResultRing). arenaWrite: int32 position, wrapping.
  const { control, slots, captured } = ring;
  const arena = Buffer.from(ring.arena.buffer);
  const arenaMask = arena.length - 1;
  let arenaWrite = 0;
  let published = 0;
  let recStart = 0;
  /** Space for len bytes, contiguous; returns its offset, or -1 when the reader is too far behind. */
  const alloc = (len: number): number => {
    let pos = arenaWrite & arenaMask;
    let skip = 0;
    if (pos + len > arena.length) {
      skip = arena.length - pos;
      pos = 0;
    }
    const used = (arenaWrite - Atomics.load(control, C_ARENA_FREED)) | 0;
    if (used + skip + len > arena.length) return -1;
    arenaWrite = (arenaWrite + skip + len) | 0;
    return pos;
  };
  const publish = (tgid: number, seq: number, what: number, cgStart: number, cgEnd: number, exeLen: number, cmdLen: number): void => {
    recStart = arenaWrite;
    if (((published - Atomics.load(control, C_CONSUMED)) | 0) >= RESULT_SLOTS) {
      drop(what);
      return;
    }
    const b = (published & RESULT_MASK) * RESULT_INTS;
    if ((what & EXEC_RESULT_CGROUP) !== 0) {
      const len = Math.min(cgEnd - cgStart, MAX_PATH_BYTES);
      const off = alloc(len);
      if (off < 0) {
        drop(what);
        return;
      }
      copyBytes(reader.file, cgStart, arena, off, len);
      slots[b + R_CG_OFF] = off;
      slots[b + R_CG_LEN] = len;
    }
    if ((what & EXEC_RESULT_DETAILS) !== 0) {
      const exeOff = exeLen > 0 ? alloc(exeLen) : 0;
      const cmdOff = cmdLen > 0 && exeOff >= 0 ? alloc(cmdLen) : 0;
      if (exeOff < 0 || cmdOff < 0) {
        drop(what);
        return;
      }
      copyBytes(reader.link, 0, arena, exeOff, exeLen);
      copyBytes(reader.cmdline, 0, arena, cmdOff, cmdLen);
      slots[b + R_EXE_OFF] = exeOff;
      slots[b + R_EXE_LEN] = exeLen;
      slots[b + R_CMD_OFF] = cmdOff;
      slots[b + R_CMD_LEN] = cmdLen;
    }
    slots[b + R_TGID] = tgid;
    slots[b + R_SEQ] = seq;
    slots[b + R_WHAT] = what;
    slots[b + R_ARENA_END] = arenaWrite;
    captured[b / RESULT_INTS] = Date.now() / 1000;
    published = (published + 1) | 0;
    Atomics.store(control, C_PUBLISHED, published); // after the fields: the reader loads this first
    // Half full: ask the main thread to drain (once until it does); otherwise it drains on its own schedule.
    if (
      (((published - Atomics.load(control, C_CONSUMED)) | 0) >= RESULT_SLOTS / 2 ||
        ((arenaWrite - Atomics.load(control, C_ARENA_FREED)) | 0) >= arena.length / 2) &&
      Atomics.compareExchange(control, C_NUDGED, 0, 1) === 0
    ) {
      port.postMessage(0);
    }
  };
  /**
   * The main thread has not taken the last RESULT_SLOTS results (or arena bytes): this one is lost,
   * and counted; as a miss when it carried the cgroup (details alone leave the exec attributed).
   */
  const drop = (what: number): void => {
    arenaWrite = recStart;
    shared[S_DROPPED] = shared[S_DROPPED]! + 1;
    if ((what & EXEC_RESULT_CGROUP) !== 0) shared[S_MISSED] = shared[S_MISSED]! + 1;
    if (Atomics.compareExchange(control, C_NUDGED, 0, 1) === 0) port.postMessage(0);
  };
  /** Reads the executable path and command line of tgid into the reader's buffers; their lengths go to exeLen and cmdLen. */
  let exeLen = 0;
  let cmdLen = 0;
  const readDetails = (tgid: number): void => {
    exeLen = o.executablePath ? Math.max(0, reader.readLink(tgid, NAME_EXE)) : 0; // 0 when ended
    cmdLen = 0;
    if (o.commandLine) {
      const n = reader.read(tgid, NAME_CMDLINE, reader.cmdline);
      if (n > 0) cmdLen = cmdlineBytes(reader.cmdline, n);
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
      const n = reader.read(tgid, NAME_CGROUP, reader.file);
      readClock();
      const delayNs = clock[0]! - pendTs[j]!;
      shared[S_CGROUP_READS] = shared[S_CGROUP_READS]! + 1;
      shared[S_DELAY_SUM_NS] = shared[S_DELAY_SUM_NS]! + delayNs;
      if (delayNs > 500_000) shared[S_DELAY_OVER_500US] = shared[S_DELAY_OVER_500US]! + 1;
      if (n <= 0 || !findCgroupPath(reader.file, n, o.selector, hierarchy, cgroupRange)) {
        shared[S_MISSED] = shared[S_MISSED]! + 1;
        continue;
      }
      const seq = pendSeq[j]!;
      if (details && pendLen === 0 && detLen === 0) {
        // The usual case, one exec at a time: its details now, in the same result.
        readDetails(tgid);
        publish(tgid, seq, EXEC_RESULT_CGROUP | EXEC_RESULT_DETAILS, cgroupRange[0]!, cgroupRange[1]!, exeLen, cmdLen);
        continue;
      }
      publish(tgid, seq, EXEC_RESULT_CGROUP, cgroupRange[0]!, cgroupRange[1]!, 0, 0);
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
        if (exeLen > 0 || cmdLen > 0) publish(tgid, detSeq[k]!, EXEC_RESULT_DETAILS, 0, 0, exeLen, cmdLen);
      }
    }
  };
  while (Atomics.load(stop, S_STOP * 2) === 0) wake();
  openFds[0] = 0;
  connector.close();
  port.close();
}

/** Command line from /proc/PID/cmdline bytes: NUL separators become spaces, trailing NULs dropped. */
export function cmdlineText(b: Buffer, n: number): string {
  return b.toString('utf8', 0, cmdlineBytes(b, n));
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
  runExecWatcher(workerData as WatcherThreadData);
}
