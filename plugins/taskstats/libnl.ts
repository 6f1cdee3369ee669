/**
 * The kernel's TASKSTATS generic-netlink family, reached through libnl-3 / libnl-genl-3 (koffi).
 *
 * libnl does the setup (socket, genl_connect, resolving the dynamic family id) and builds the
 * cpumask registration. The per-process GET of the live sweep is a 28-byte message: it is built
 * once as bytes and sent with send() on the socket's fd, many GETs per send() (the kernel runs
 * each message of a datagram in turn and queues one reply per message). Measured on this
 * machine (see README.md): libnl construction (nlmsg_alloc, genlmsg_put, nla_put_u32,
 * nl_send_auto, nlmsg_free: five FFI calls per GET) costs several times the raw path.
 *
 * Replies and events are read with recv() into a caller-owned Buffer (errno stays visible:
 * ENOBUFS means the kernel dropped events, which libnl would report as NLE_NOMEM) and parsed
 * from the bytes by parser.ts.
 *
 * Traps handled here (kernel/taskstats.c, Documentation/accounting/taskstats.rst): auto-ack and
 * the sequence check are disabled (events
 * have per-CPU, non-monotonic sequence numbers); SO_RCVBUFFORCE is used for buffers above
 * net.core.rmem_max; EPERM means no CAP_NET_ADMIN; EINVAL on registration means the caller is
 * not in the initial user/pid namespace.
 */
import koffi from 'koffi';
import { AgentError, ErrorCode } from '../../src/api/index.js';
import { impossibleCpus, parseCpulist, possibleCpus } from './config.js';
import {
  libc,
  setIntSockopt,
  getIntSockopt,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  MSG_DONTWAIT,
  EAGAIN,
  EINTR,
  EPERM,
  EINVAL,
  ESRCH,
  DatagramBatch,
  capNetAdminError,
  type Libc,
} from './libc.js';

export const LIBNL_SONAME = 'libnl-3.so.200';
export const LIBNL_GENL_SONAME = 'libnl-genl-3.so.200';

export const TASKSTATS_GENL_NAME = 'TASKSTATS';
export const TASKSTATS_GENL_VERSION = 1;
export const TASKSTATS_CMD_GET = 1;
export const TASKSTATS_CMD_NEW = 2;
export const TASKSTATS_CMD_ATTR_PID = 1;
export const TASKSTATS_CMD_ATTR_TGID = 2;
export const TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 3;
export const TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const GET_MESSAGE_BYTES = 28;

export function namespaceError(what: string): AgentError {
  return new AgentError(
    ErrorCode.NOT_INITIAL_NAMESPACE,
    `${what}: invalid argument (EINVAL). The kernel accepts exit-event listeners only from the initial pid and user ` +
      'namespace: run the agent on the host, or in Kubernetes with hostPID: true and hostNetwork: true (and not in a user namespace)',
    { errno: EINVAL },
  );
}

interface LibnlFunctions {
  nl_socket_alloc(): unknown;
  nl_socket_free(sk: unknown): void;
  genl_connect(sk: unknown): number;
  genl_ctrl_resolve(sk: unknown, name: string): number;
  nl_socket_get_fd(sk: unknown): number;
  nl_socket_get_local_port(sk: unknown): number;
  nl_socket_disable_auto_ack(sk: unknown): void;
  nl_socket_disable_seq_check(sk: unknown): void;
  nlmsg_alloc(): unknown;
  nlmsg_free(msg: unknown): void;
  genlmsg_put(msg: unknown, port: number, seq: number, family: number, hdrlen: number, flags: number, cmd: number, version: number): unknown;
  nla_put_u32(msg: unknown, type: number, value: number): number;
  nla_put_string(msg: unknown, type: number, value: string): number;
  nl_send_auto(sk: unknown, msg: unknown): number;
  nl_geterror(err: number): string;
}

let loaded: LibnlFunctions | undefined;

/**
 * Loads libnl-3 and libnl-genl-3 once.
 * @throws AgentError missing_library naming the Debian packages when either is absent.
 */
export function libnl(): LibnlFunctions {
  if (loaded) return loaded;
  let nl: ReturnType<typeof koffi.load>;
  let genl: ReturnType<typeof koffi.load>;
  try {
    nl = koffi.load(LIBNL_SONAME);
    genl = koffi.load(LIBNL_GENL_SONAME);
  } catch (err) {
    throw new AgentError(
      ErrorCode.MISSING_LIBRARY,
      `cannot load ${LIBNL_SONAME} / ${LIBNL_GENL_SONAME} (${(err as Error).message.split('\n')[0]}). ` +
        'Install the libnl libraries: apt-get install libnl-3-200 libnl-genl-3-200 (Debian/Ubuntu; libnl3 on Fedora/RHEL, libnl3 on Alpine)',
    );
  }
  const sockT = koffi.pointer(koffi.opaque('nl_sock'));
  const msgT = koffi.pointer(koffi.opaque('nl_msg'));
  const fns = {
    nl_socket_alloc: nl.func('nl_socket_alloc', sockT, []),
    nl_socket_free: nl.func('nl_socket_free', 'void', [sockT]),
    nl_socket_get_fd: nl.func('nl_socket_get_fd', 'int', [sockT]),
    nl_socket_get_local_port: nl.func('nl_socket_get_local_port', 'uint32_t', [sockT]),
    nl_socket_disable_auto_ack: nl.func('nl_socket_disable_auto_ack', 'void', [sockT]),
    nl_socket_disable_seq_check: nl.func('nl_socket_disable_seq_check', 'void', [sockT]),
    nlmsg_alloc: nl.func('nlmsg_alloc', msgT, []),
    nlmsg_free: nl.func('nlmsg_free', 'void', [msgT]),
    nla_put_u32: nl.func('nla_put_u32', 'int', [msgT, 'int', 'uint32_t']),
    nla_put_string: nl.func('nla_put_string', 'int', [msgT, 'int', 'str']),
    nl_send_auto: nl.func('nl_send_auto', 'int', [sockT, msgT]),
    nl_geterror: nl.func('nl_geterror', 'str', ['int']),
    genl_connect: genl.func('genl_connect', 'int', [sockT]),
    genl_ctrl_resolve: genl.func('genl_ctrl_resolve', 'int', [sockT, 'str']),
    genlmsg_put: genl.func('genlmsg_put', 'void *', [msgT, 'uint32_t', 'uint32_t', 'int', 'int', 'int', 'uint8_t', 'uint8_t']),
  };
  loaded = fns;
  return loaded;
}

export interface TaskstatsSocketOptions {
  /** Receive buffer in bytes (SO_RCVBUFFORCE, falling back to SO_RCVBUF). 0 keeps the default. */
  receiveBuffer?: number;
}

/**
 * One netlink socket bound to the TASKSTATS family. Use one for exit events (registered for a
 * cpulist) and another for live GETs, so that replies and events never interleave.
 */
export class TaskstatsSocket {
  readonly fd: number;
  readonly familyId: number;
  readonly portId: number;
  /** Receive buffer the kernel reports after setup (it doubles the requested value). */
  readonly receiveBufferBytes: number;
  private sk: unknown;
  private readonly c: Libc;
  private readonly nl: LibnlFunctions;
  private seq = 1;
  /** Prebuilt GET messages for sendGets(); grown on demand. */
  private getBuf = Buffer.alloc(GET_MESSAGE_BYTES * 64);
  /** getBuf as 32-bit words: a GET is 7 words, written with 7 stores (Buffer.write* ~13 ns each here). */
  private getWords = new Uint32Array(this.getBuf.buffer, this.getBuf.byteOffset, this.getBuf.length >>> 2);
  private ackBuf = Buffer.alloc(8192);

  private constructor(sk: unknown, fd: number, familyId: number, portId: number, c: Libc, nl: LibnlFunctions, rcv: number) {
    this.sk = sk;
    this.fd = fd;
    this.familyId = familyId;
    this.portId = portId;
    this.c = c;
    this.nl = nl;
    this.receiveBufferBytes = rcv;
  }

  /** @throws AgentError missing_library / kernel_without_taskstats / system_error. */
  static open(opts: TaskstatsSocketOptions = {}): TaskstatsSocket {
    const nl = libnl();
    const c = libc();
    const sk = nl.nl_socket_alloc();
    if (!sk) throw new AgentError(ErrorCode.SYSTEM_ERROR, 'nl_socket_alloc failed (out of memory)');
    // Without these two, libnl adds NLM_F_ACK to every send (an extra ACK per reply) and rejects
    // exit events, whose sequence numbers are per-CPU, with NLE_SEQ_MISMATCH.
    nl.nl_socket_disable_auto_ack(sk);
    nl.nl_socket_disable_seq_check(sk);
    let rc = nl.genl_connect(sk);
    if (rc < 0) {
      nl.nl_socket_free(sk);
      throw new AgentError(ErrorCode.SYSTEM_ERROR, `genl_connect failed: ${nl.nl_geterror(rc)}`);
    }
    const family = nl.genl_ctrl_resolve(sk, TASKSTATS_GENL_NAME);
    if (family < 0) {
      nl.nl_socket_free(sk);
      throw new AgentError(
        ErrorCode.KERNEL_WITHOUT_TASKSTATS,
        `the kernel has no TASKSTATS generic netlink family (${nl.nl_geterror(family)}): it needs CONFIG_TASKSTATS=y, ` +
          'and the agent must run in the initial network namespace (hostNetwork: true in Kubernetes)',
      );
    }
    const fd = nl.nl_socket_get_fd(sk);
    if (opts.receiveBuffer && opts.receiveBuffer > 0) {
      rc = setIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUFFORCE, opts.receiveBuffer);
      // Without CAP_NET_ADMIN SO_RCVBUFFORCE fails; SO_RCVBUF (capped by rmem_max) still helps,
      // and the missing capability is reported clearly by the first GET / registration.
      if (rc !== 0) setIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUF, opts.receiveBuffer);
    }
    const rcv = getIntSockopt(c, fd, SOL_SOCKET, SO_RCVBUF) ?? 0;
    return new TaskstatsSocket(sk, fd, family, nl.nl_socket_get_local_port(sk), c, nl, rcv);
  }

  get closed(): boolean {
    return this.sk === null;
  }

  /** recv() one datagram without blocking. Returns its length, or -errno (-EAGAIN when empty). */
  recv(buf: Buffer, flags = MSG_DONTWAIT): number {
    const n = this.c.recv(this.fd, buf, buf.length, flags);
    return n >= 0 ? n : -this.c.errno();
  }

  /**
   * Up to `max` datagrams (at most batch.capacity) in one recvmmsg() without blocking.
   * Returns how many arrived (>= 1), or -errno (-EAGAIN when none was waiting).
   */
  recvMany(batch: DatagramBatch, max = batch.capacity): number {
    const n = this.c.recvmmsg(this.fd, batch.hdrAddress, Math.min(max, batch.capacity), MSG_DONTWAIT);
    return n >= 0 ? n : -this.c.errno();
  }

  /** Next sequence number, kept below 2^30 so that a returned seq is never mistaken for -errno. */
  private nextSeq(n: number): number {
    if (this.seq + n >= 0x40000000) this.seq = 1;
    const s = this.seq;
    this.seq += n;
    return s;
  }

  /** The GET at byte `o` of getBuf: nlmsghdr, genlmsghdr, one u32 attribute (28 bytes, host byte order as netlink wants). */
  private writeGet(o: number, seq: number, attr: number, id: number): void {
    const w = this.getWords;
    const i = o >>> 2;
    w[i] = GET_MESSAGE_BYTES; // nlmsg_len
    w[i + 1] = this.familyId | (NLM_F_REQUEST << 16); // nlmsg_type, nlmsg_flags: no ACK, the reply is the answer
    w[i + 2] = seq; // nlmsg_seq
    w[i + 3] = this.portId; // nlmsg_pid
    w[i + 4] = TASKSTATS_CMD_GET | (TASKSTATS_GENL_VERSION << 8); // genlmsghdr: cmd, version, reserved 0
    w[i + 5] = 8 | (attr << 16); // nla_len, nla_type
    w[i + 6] = id >>> 0;
  }

  private growGetBuffer(need: number): void {
    if (this.getBuf.length >= need) return;
    this.getBuf = Buffer.alloc(need);
    this.getWords = new Uint32Array(this.getBuf.buffer, this.getBuf.byteOffset, this.getBuf.length >>> 2);
  }

  private sendBuffered(len: number): number {
    for (;;) {
      const n = this.c.send(this.fd, this.getBuf, len, 0);
      if (n >= 0) return 0;
      const e = this.c.errno();
      if (e !== EINTR) return e;
    }
  }

  /**
   * Queue `count` GET requests (by TGID or by PID), ids from `ids[from..from+count)`, in one
   * send(). The kernel answers each with one datagram (a record, or NLMSG_ERROR -ESRCH for a
   * vanished process), in order, with sequence numbers firstSeq, firstSeq+1, ...
   * @returns firstSeq, or -errno when send() failed.
   */
  sendGets(by: 'pid' | 'tgid', ids: ArrayLike<number>, from: number, count: number): number {
    const need = count * GET_MESSAGE_BYTES;
    this.growGetBuffer(need);
    const attr = by === 'pid' ? TASKSTATS_CMD_ATTR_PID : TASKSTATS_CMD_ATTR_TGID;
    const first = this.nextSeq(count);
    for (let i = 0; i < count; i++) this.writeGet(i * GET_MESSAGE_BYTES, first + i, attr, ids[from + i]!);
    const e = this.sendBuffered(need);
    return e === 0 ? first : -e;
  }

  /**
   * For each id: a GET by TGID (seq firstSeq + 2i) then a GET by PID of the same id, the group's
   * leader (seq firstSeq + 2i + 1), all in one send(). @returns firstSeq, or -errno.
   */
  sendGetPairs(ids: ArrayLike<number>, from: number, count: number): number {
    const need = count * 2 * GET_MESSAGE_BYTES;
    this.growGetBuffer(need);
    const first = this.nextSeq(count * 2);
    for (let i = 0; i < count; i++) {
      const id = ids[from + i]!;
      this.writeGet(2 * i * GET_MESSAGE_BYTES, first + 2 * i, TASKSTATS_CMD_ATTR_TGID, id);
      this.writeGet((2 * i + 1) * GET_MESSAGE_BYTES, first + 2 * i + 1, TASKSTATS_CMD_ATTR_PID, id);
    }
    const e = this.sendBuffered(need);
    return e === 0 ? first : -e;
  }

  /**
   * The same GET built by libnl (nlmsg_alloc, genlmsg_put, nla_put_u32, nl_send_auto,
   * nlmsg_free). Kept for the measurement in the tests/README; the sweep uses sendGets().
   * Returns 0 or a negative libnl error.
   */
  sendGetWithLibnl(by: 'pid' | 'tgid', id: number): number {
    const nl = this.nl;
    const msg = nl.nlmsg_alloc();
    if (!msg) return -1;
    try {
      nl.genlmsg_put(msg, 0, 0, this.familyId, 0, 0, TASKSTATS_CMD_GET, TASKSTATS_GENL_VERSION);
      const rc = nl.nla_put_u32(msg, by === 'pid' ? TASKSTATS_CMD_ATTR_PID : TASKSTATS_CMD_ATTR_TGID, id >>> 0);
      if (rc < 0) return rc;
      const sent = nl.nl_send_auto(this.sk, msg);
      return sent < 0 ? sent : 0;
    } finally {
      nl.nlmsg_free(msg);
    }
  }

  /**
   * Register (or deregister) this socket for exit events of the tasks that exit on `cpulist`.
   * The request asks for an ACK so that EPERM / EINVAL become clear errors. Datagrams that
   * arrive before the ACK (exit events already flowing) go to `onEvent` (bytes valid during the call).
   * @throws AgentError missing_capability / not_initial_namespace / bad_config / system_error.
   */
  register(cpulist: string, onEvent?: (buf: Buffer, len: number) => void, deregister = false): void {
    const nl = this.nl;
    const msg = nl.nlmsg_alloc();
    if (!msg) throw new AgentError(ErrorCode.SYSTEM_ERROR, 'nlmsg_alloc failed (out of memory)');
    const seq = this.nextSeq(1);
    try {
      // Deregistration asks for no ACK: at shutdown a full receive buffer could drop it, and
      // closing the socket ends the registration anyway.
      nl.genlmsg_put(msg, 0, seq, this.familyId, 0, deregister ? 0 : NLM_F_ACK, TASKSTATS_CMD_GET, TASKSTATS_GENL_VERSION);
      const attr = deregister ? TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK : TASKSTATS_CMD_ATTR_REGISTER_CPUMASK;
      if (nl.nla_put_string(msg, attr, cpulist) < 0) throw new AgentError(ErrorCode.SYSTEM_ERROR, 'nla_put_string failed');
      const sent = nl.nl_send_auto(this.sk, msg);
      if (sent < 0) throw new AgentError(ErrorCode.SYSTEM_ERROR, `sending the cpumask registration failed: ${nl.nl_geterror(sent)}`);
    } finally {
      nl.nlmsg_free(msg);
    }
    if (deregister) return;
    // The kernel handles the request inside send(): the ACK (or error) is queued already.
    // Poll a little anyway (a few ms at most) rather than block.
    const what = `registering the exit listener for cpus "${cpulist}"`;
    const deadline = Date.now() + 2000;
    for (;;) {
      const n = this.recv(this.ackBuf);
      if (n === -EAGAIN) {
        if (Date.now() > deadline) throw new AgentError(ErrorCode.SYSTEM_ERROR, `${what}: no acknowledgement from the kernel within 2s`);
        continue;
      }
      if (n === -EINTR) continue;
      if (n < 0) {
        // ENOBUFS here means events were dropped already: the registration went through.
        if (-n === 105) continue;
        throw new AgentError(ErrorCode.SYSTEM_ERROR, `${what}: recv failed: ${this.c.strerror(-n)}`, { errno: -n });
      }
      if (n >= 20 && this.ackBuf.readUInt16LE(4) === NLMSG_ERROR && this.ackBuf.readUInt32LE(8) === seq) {
        const err = -this.ackBuf.readInt32LE(16);
        if (err === 0) return;
        if (err === EPERM) throw capNetAdminError(what);
        if (err === EINVAL) {
          // The kernel says EINVAL for a cpulist outside the possible CPUs too: tell them apart.
          const bad = impossibleCpus(cpulist);
          if (bad.length > 0 || !parseCpulist(cpulist)) {
            throw new AgentError(
              ErrorCode.BAD_CONFIG,
              `${what}: invalid argument (EINVAL): the cpulist names CPUs this machine does not have (possible: ${possibleCpus()})`,
              { errno: err },
            );
          }
          throw namespaceError(what);
        }
        throw new AgentError(ErrorCode.SYSTEM_ERROR, `${what}: ${this.c.strerror(err)}`, { errno: err });
      }
      onEvent?.(this.ackBuf, n);
    }
  }

  close(): void {
    if (this.sk === null) return;
    this.nl.nl_socket_free(this.sk); // closes the fd
    this.sk = null;
  }
}

export { EAGAIN, ESRCH, EPERM, EINVAL };
