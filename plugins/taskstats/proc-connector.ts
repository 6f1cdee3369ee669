/**
 * The kernel's process events connector (drivers/connector/cn_proc.c, include/uapi/linux/cn_proc.h):
 * a synchronous socket that subscribes and reads exec events, for the exec watcher thread
 * (exec-watcher-thread.ts; why exec events matter: exec-watcher.ts).
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
 * with EPERM there too; 6.6 admitted unprivileged listeners, but builds differ: of two 6.18.44
 * builds, -fc-v657 admitted them and -fc-v1272 refuses the bind); requests from outside
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
import { release } from 'node:os';
import {
  AF_NETLINK,
  DatagramBatch,
  capNetAdminError,
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
import { AgentError, ErrorCode } from '../../src/api/index.js';

export const CN_IDX_PROC = 1;
export const CN_VAL_PROC = 1;
export const PROC_CN_MCAST_LISTEN = 1;
export const PROC_CN_MCAST_IGNORE = 2;
export const PROC_EVENT_NONE = 0x0;
export const PROC_EVENT_FORK = 0x1;
export const PROC_EVENT_EXEC = 0x2;
export const PROC_EVENT_EXIT = 0x80000000;
const SO_RCVTIMEO = 20;
const NLMSG_NOOP = 1;
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

/** struct sockaddr_nl (12 bytes): family, pad, port id, multicast groups bitmask. */
function netlinkAddress(portId: number, groups: number): Buffer {
  const addr = Buffer.alloc(12);
  addr.writeUInt16LE(AF_NETLINK, 0);
  addr.writeUInt32LE(portId >>> 0, 4);
  addr.writeUInt32LE(groups >>> 0, 8);
  return addr;
}

/** A system call of the connector failed: the errno in the message and on the error. */
function connectorError(what: string, c: Libc, e: number): AgentError {
  return new AgentError(ErrorCode.SYSTEM_ERROR, `proc connector: ${what}: ${c.strerror(e)} (errno ${e})`, { errno: e });
}

export interface ProcConnectorOptions {
  /** Bitmask of PROC_EVENT_* the kernel should send (Linux >= 6.6); default EXEC only. */
  eventMask?: number;
  /** Socket receive buffer in bytes (SO_RCVBUFFORCE, else SO_RCVBUF); default 4 MiB. */
  receiveBufferBytes?: number;
  /** How long open() waits for the kernel's acknowledgement; default 2000 ms. */
  ackTimeoutMs?: number;
  /**
   * Receive timeout of blocking reads, so that a reading thread notices it should stop even when
   * no wake() reaches it; default 1000 ms (each timeout wakes the thread of an idle agent).
   */
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

  /** Opens, subscribes and waits for the kernel's acknowledgement. Throws naming CAP_NET_ADMIN when missing. */
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

  open(): void {
    const c = this.c;
    const fd = c.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) {
      const e = c.errno();
      throw connectorError('socket(AF_NETLINK, NETLINK_CONNECTOR) failed', c, e);
    }
    this.fd = fd;
    try {
      const bytes = this.o.receiveBufferBytes ?? 4 << 20;
      if (setIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes) !== 0) setIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUF, bytes);
      // port id 0: assigned by the kernel
      if (c.bind(fd, netlinkAddress(0, CN_IDX_PROC), 12) !== 0) {
        const e = c.errno();
        if (e === EPERM) throw capNetAdminError('proc connector');
        throw connectorError('bind to CN_IDX_PROC failed', c, e);
      }
      this.setReadTimeout(50);
      const sendErr = this.sendListen(PROC_CN_MCAST_LISTEN, undefined);
      if (sendErr === EPERM) throw capNetAdminError('proc connector');
      if (sendErr !== 0) throw connectorError('send failed', c, sendErr);
      const err = this.awaitAck(this.o.ackTimeoutMs ?? 2000);
      if (err === undefined) {
        throw new AgentError(
          ErrorCode.NOT_INITIAL_NAMESPACE,
          'proc connector: the kernel did not acknowledge PROC_CN_MCAST_LISTEN; it only answers processes in the ' +
            'initial user and PID namespaces (in Kubernetes: hostPID: true, no user namespace)',
        );
      }
      if (err === EPERM) throw capNetAdminError('proc connector');
      if (err !== 0) throw connectorError('listen refused', c, err);
      if (this.o.useEventMask ?? kernelSupportsEventMask()) {
        const e = this.sendListen(PROC_CN_MCAST_LISTEN, this.o.eventMask ?? PROC_EVENT_EXEC);
        if (e !== 0) throw connectorError('send failed', c, e);
        this.masked = true;
      }
      this.setReadTimeout(this.o.readTimeoutMs ?? 1000);
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

  /** The socket's netlink port id (what wake() addresses), 0 when closed or unknown. */
  portId(): number {
    if (this.fd < 0) return 0;
    const addr = Buffer.alloc(12);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(12, 0);
    return this.c.getsockname(this.fd, addr, len) === 0 ? addr.readUInt32LE(4) : 0;
  }

  /**
   * Ends a blocking read of the socket with port id `portId` in another thread now, instead of at
   * its next read timeout: one NLMSG_NOOP datagram sent to it (read() ignores it). Unicast
   * between user sockets needs CAP_NET_ADMIN, as the exit listener does.
   * @returns 0 or the errno of sendto() (then the read ends at its timeout).
   */
  static wake(portId: number): number {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (fd < 0) return c.errno();
    const m = Buffer.alloc(NLMSG_HDRLEN);
    m.writeUInt32LE(NLMSG_HDRLEN, 0);
    m.writeUInt16LE(NLMSG_NOOP, 4);
    const err = c.sendto(fd, m, NLMSG_HDRLEN, 0, netlinkAddress(portId, 0), 12) < 0 ? c.errno() : 0;
    c.close(fd);
    return err;
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
        throw connectorError('recv failed', this.c, e);
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
