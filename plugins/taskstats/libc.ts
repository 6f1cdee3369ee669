/**
 * Every libc function the receiver calls, bound once through koffi (libnl.ts holds libnl's):
 * recv() so that ENOBUFS (the kernel dropped events) is visible through errno (libnl maps it to
 * NLE_NOMEM), setsockopt(SO_RCVBUFFORCE) for buffers above net.core.rmem_max, the raw
 * NETLINK_CONNECTOR socket, /proc reads without Node's fs (a failed open there throws with a
 * stack trace: ~18 us of CPU against ~5 us here, and failures are frequent: processes end), the
 * exec watcher thread's clock and priority, and glibc's malloc tuning.
 *
 * Buffers are declared as plain `void *` parameters: koffi passes a Buffer's memory directly,
 * which is cheaper than _Out_ marshalling. Sizes that fit an int are declared int, so that
 * results come back as plain numbers.
 */
import koffi from 'koffi';
import { AgentError, ErrorCode } from '../../src/api/index.js';

export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SOCK_NONBLOCK = 0o4000;
export const NETLINK_CONNECTOR = 11;
export const SOL_SOCKET = 1;
export const SOL_NETLINK = 270;
export const SO_RCVBUF = 8;
export const SO_RCVBUFFORCE = 33;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;
export const NETLINK_NO_ENOBUFS = 5;
export const O_RDONLY = 0;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
export const CLOCK_MONOTONIC = 1;
export const SCHED_FIFO = 1;
export const PRIO_PROCESS = 0;
/** struct mmsghdr on 64-bit Linux: struct msghdr (56 bytes) + unsigned msg_len + padding. */
export const MMSGHDR_BYTES = 64;
/** Offsets inside struct mmsghdr (64-bit): msg_iov, msg_iovlen, msg_flags, msg_len. */
export const MMSGHDR_IOV = 16;
export const MMSGHDR_IOVLEN = 24;
export const MMSGHDR_FLAGS = 48;
export const MMSGHDR_LEN = 56;
export const IOVEC_BYTES = 16;

export const EAGAIN = 11;
export const EINTR = 4;
export const ENOBUFS = 105;
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINVAL = 22;

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number): number;
  getsockname(fd: number, addr: Buffer, len: Buffer): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  close(fd: number): number;
  /** recvmmsg(fd, vec, vlen, flags, NULL): several datagrams in one call; `vec` is a native address. */
  recvmmsg(fd: number, vec: bigint, vlen: number, flags: number): number;
  /** open(path, flags) (no O_CREAT: no mode). */
  open(path: string, flags: number): number;
  /** open() of a NUL-terminated path held in a Buffer (no string per call). */
  openBytes(path: Buffer, flags: number): number;
  read(fd: number, buf: Buffer, n: number): number;
  readlink(path: string, buf: Buffer, n: number): number;
  /** readlink() of a NUL-terminated path held in a Buffer. */
  readlinkBytes(path: Buffer, buf: Buffer, n: number): number;
  /** clock_gettime(clock, ts) into a struct timespec (16 bytes). */
  clockGettime(clock: number, ts: Buffer): number;
  /** The calling thread's kernel id (gettid through syscall()). */
  gettid(): number;
  /** sched_setscheduler(tid, policy, &param) with param.sched_priority = priority. */
  setScheduler(tid: number, policy: number, priority: number): number;
  setpriority(which: number, who: number, prio: number): number;
  /** getdents64(fd, buf, len): directory entries (struct linux_dirent64) into `buf`. */
  getdents64(fd: number, buf: Buffer, len: number): number;
  /** Native address of a Buffer's memory (stable for the Buffer's lifetime: its store is off-heap). */
  address(buf: Buffer): bigint;
  strerror(errnum: number): string;
  /** errno of the last call made through koffi on this thread. */
  errno(): number;
}

/** The EPERM of any taskstats or proc-connector request: the same cause, the same error. */
export function capNetAdminError(what: string): AgentError {
  return new AgentError(
    ErrorCode.MISSING_CAPABILITY,
    `${what}: permission denied (EPERM). It needs CAP_NET_ADMIN in the initial user namespace: ` +
      'run as root or grant the capability (setcap cap_net_admin+ep, or securityContext.capabilities.add: ["NET_ADMIN"] in Kubernetes)',
    { errno: EPERM },
  );
}

let cached: Libc | undefined;

/** Loads libc once. Throws only if libc itself cannot be loaded (not a supported system). */
export function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const bind = lib.func('int bind(int fd, void *addr, uint32_t len)');
  const send = lib.func('intptr_t send(int fd, void *buf, size_t len, int flags)');
  const sendto = lib.func('intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t alen)');
  const getsockname = lib.func('int getsockname(int fd, void *addr, void *len)');
  const recv = lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)');
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)');
  const getsockopt = lib.func('int getsockopt(int fd, int level, int name, void *value, void *len)');
  const close = lib.func('int close(int fd)');
  const strerror = lib.func('const char *strerror(int errnum)');
  const recvmmsg = lib.func('int recvmmsg(int fd, void *vec, unsigned int vlen, int flags, void *timeout)');
  const open = lib.func('int open(const char *path, int flags)');
  const openBytes = lib.func('int open(void *path, int flags)');
  const read = lib.func('int read(int fd, void *buf, size_t n)');
  const readlink = lib.func('int readlink(const char *path, void *buf, size_t n)');
  const readlinkBytes = lib.func('int readlink(void *path, void *buf, size_t n)');
  const getdents64 = lib.func('intptr_t getdents64(int fd, void *buf, size_t len)');
  const clockGettime = lib.func('int clock_gettime(int clock, void *ts)');
  const syscall0 = lib.func('long syscall(long number)');
  const schedSetscheduler = lib.func('int sched_setscheduler(int pid, int policy, void *param)');
  const setpriority = lib.func('int setpriority(int which, uint32_t who, int prio)');
  const SYS_gettid = process.arch === 'arm64' ? 178 : 186;
  cached = {
    socket: (d, t, p) => socket(d, t, p) as number,
    bind: (fd, a, l) => bind(fd, a, l) as number,
    send: (fd, b, l, f) => Number(send(fd, b, l, f)),
    sendto: (fd, b, l, f, a, al) => Number(sendto(fd, b, l, f, a, al)),
    getsockname: (fd, a, l) => getsockname(fd, a, l) as number,
    recv: (fd, b, l, f) => Number(recv(fd, b, l, f)),
    setsockopt: (fd, lv, n, v, l) => setsockopt(fd, lv, n, v, l) as number,
    getsockopt: (fd, lv, n, v, l) => getsockopt(fd, lv, n, v, l) as number,
    close: (fd) => close(fd) as number,
    strerror: (e) => strerror(e) as string,
    recvmmsg: (fd, v, n, f) => recvmmsg(fd, v, n, f, null) as number,
    open: (path, flags) => open(path, flags) as number,
    openBytes: (path, flags) => openBytes(path, flags) as number,
    read: (fd, b, n) => read(fd, b, n) as number,
    readlink: (path, b, n) => readlink(path, b, n) as number,
    readlinkBytes: (path, b, n) => readlinkBytes(path, b, n) as number,
    clockGettime: (clock, ts) => clockGettime(clock, ts) as number,
    gettid: () => Number(syscall0(SYS_gettid)),
    setScheduler: (tid, policy, priority) => {
      const param = Buffer.alloc(4);
      param.writeInt32LE(priority, 0);
      return schedSetscheduler(tid, policy, param) as number;
    },
    setpriority: (which, who, prio) => setpriority(which, who, prio) as number,
    getdents64: (fd, b, l) => Number(getdents64(fd, b, l)),
    address: (b) => koffi.address(b),
    errno: () => koffi.errno(),
  };
  return cached;
}

/** glibc's malloc tuning (malloc.ts); absent under musl or another allocator. */
export interface MallocCalls {
  readonly mallopt: (param: number, value: number) => number;
  readonly mallocTrim: (pad: number) => number;
}

/** Binds mallopt and malloc_trim; throws where libc has none. */
export function mallocCalls(): MallocCalls {
  const lib = koffi.load('libc.so.6');
  const opt = lib.func('int mallopt(int param, int value)');
  const trim = lib.func('int malloc_trim(size_t pad)');
  return { mallopt: (p, v) => opt(p, v) as number, mallocTrim: (pad) => trim(pad) as number };
}

/** Sets an int socket option; returns 0 or the errno. */
export function setIntSockopt(c: Libc, fd: number, level: number, name: number, value: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  return c.setsockopt(fd, level, name, b, 4) === 0 ? 0 : c.errno();
}

/** Reads an int socket option; returns undefined on error. */
export function getIntSockopt(c: Libc, fd: number, level: number, name: number): number | undefined {
  const v = Buffer.alloc(4);
  const l = Buffer.alloc(4);
  l.writeUInt32LE(4, 0);
  return c.getsockopt(fd, level, name, v, l) === 0 ? v.readInt32LE(0) : undefined;
}

/**
 * A receive area for recvmmsg() (`Libc.recvmmsg(fd, batch.hdrAddress, n, flags)`: the taskstats
 * socket's recvMany(), the proc connector's readBatch()): `capacity` datagrams of up to
 * `slotBytes` each, received with one call. Datagram i lands at `buf` offset `i * slotBytes` (4-byte
 * aligned, as the parser's fast path wants); its length is `length(i)`. One recv() per datagram
 * costs a koffi call (~1 us here) each; recvmmsg() brings the per-reply cost of the live sweep to
 * the kernel's own (measured in bench/live/sweep-micro.mjs).
 */
export class DatagramBatch {
  /** The datagrams. */
  readonly buf: Buffer;
  /** struct mmsghdr[capacity] then struct iovec[capacity]; referenced by address in recvmmsg(). */
  private readonly hdrs: Buffer;
  private readonly hdrWords: Uint32Array;
  readonly hdrAddress: bigint;

  constructor(
    readonly capacity: number,
    readonly slotBytes = 4096,
  ) {
    if (!(capacity >= 1) || !(slotBytes >= 64) || slotBytes % 8 !== 0) throw new RangeError(`DatagramBatch(${capacity}, ${slotBytes})`);
    const c = libc();
    this.buf = Buffer.alloc(capacity * slotBytes);
    this.hdrs = Buffer.alloc(capacity * (MMSGHDR_BYTES + IOVEC_BYTES));
    this.hdrWords = new Uint32Array(this.hdrs.buffer, this.hdrs.byteOffset, this.hdrs.length >>> 2);
    this.hdrAddress = c.address(this.hdrs);
    const data = c.address(this.buf);
    const iovs = capacity * MMSGHDR_BYTES;
    for (let i = 0; i < capacity; i++) {
      const m = i * MMSGHDR_BYTES;
      const v = iovs + i * IOVEC_BYTES;
      this.hdrs.writeBigUInt64LE(this.hdrAddress + BigInt(v), m + MMSGHDR_IOV);
      this.hdrs.writeBigUInt64LE(1n, m + MMSGHDR_IOVLEN);
      this.hdrs.writeBigUInt64LE(data + BigInt(i * slotBytes), v);
      this.hdrs.writeBigUInt64LE(BigInt(slotBytes), v + 8);
    }
  }

  /** Bytes of datagram i of the last recvMany(). */
  length(i: number): number {
    return this.hdrWords[(i * MMSGHDR_BYTES + MMSGHDR_LEN) >>> 2]!;
  }

  /** Datagram i was longer than a slot (the rest is lost; its nlmsg_len then exceeds length(i)). */
  truncated(i: number): boolean {
    return (this.hdrWords[(i * MMSGHDR_BYTES + MMSGHDR_FLAGS) >>> 2]! & MSG_TRUNC) !== 0;
  }
}
