/**
 * The one reader of small kernel files (/proc/PID/{cgroup,exe,cmdline,io,stat}, /proc/self/cgroup, a
 * cgroup's cpu.stat): open, read, close through libc into buffers allocated once. This runs per
 * exec event and per new process, and misses are frequent (processes end: that is the race being
 * run), so it avoids fs's allocations and the exception with a stack trace it throws per failed
 * open. Not re-entrant: one reader per thread.
 *
 * Two ways to name a file: a path string (`readBytes`, `readText`, `readLink`), or a process and
 * a file name written as bytes into a path buffer (`readOf`, `readLinkOf`: no string per call, for
 * the exec watcher thread, which must not allocate). A /proc file that fits the buffer comes whole
 * in one read (seq_file for cgroup; cmdline's reader loops until the count is met), so `readOf`
 * reads once; `readBytes` loops and grows its buffer (deleted cgroups' paths can be long).
 *
 * A file read again and again (a cgroup's cpu.stat and PSI files, each collection) can stay open:
 * `openKept`, then `readKept` from offset 0 (a kernfs seq_file regenerates its text then), then
 * `closeKept`.
 *
 * (The listing of /proc's processes is proc-listing.ts.)
 */
import { readSync } from 'node:fs';
import { O_CLOEXEC, O_RDONLY, libc, type Libc } from './libc.js';

/** Longest path written by readOf / readLinkOf (PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

export class ProcReader {
  private readonly c: Libc = libc();
  private buf = Buffer.allocUnsafe(4096);
  private readonly linkBuf = Buffer.allocUnsafe(MAX_PATH_BYTES);
  /** ROOT/TGID/NAME\0 of readOf / readLinkOf. */
  private readonly path = Buffer.alloc(MAX_PATH_BYTES + 64);
  private readonly rootLen: number;
  /** Number of files read (successfully or not): what the caches are meant to keep low. */
  reads = 0;
  /** errno of the last failed readOf (ENOENT / ESRCH: the process is gone). */
  lastErrno = 0;

  /**
   * `openFd[0]`: fd + 1 of the file readOf() holds open, else 0 (the watcher thread's, see
   * S_OPEN_FDS in exec-result-ring.ts).
   */
  constructor(
    root = '/proc',
    private readonly openFd: Int32Array = new Int32Array(1),
  ) {
    this.rootLen = this.path.write(`${root}/`, 0, 'utf8');
    if (this.rootLen > MAX_PATH_BYTES) throw new Error(`procRoot is too long: ${root}`);
  }

  /** The file's content as utf8 text, or undefined when it cannot be read (process gone). */
  readText(path: string, maxBytes = 1 << 20): string | undefined {
    const n = this.readBytes(path, maxBytes);
    return n < 0 ? undefined : this.buf.toString('utf8', 0, n);
  }

  /**
   * Reads the file into the internal buffer; returns its length, or -1 when it cannot be read.
   * `bytes()` gives the buffer (valid until the next read).
   */
  readBytes(path: string, maxBytes = 1 << 20): number {
    this.reads++;
    const c = this.c;
    const fd = c.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    let total = 0;
    while (total < maxBytes) {
      if (total === this.buf.length) {
        const bigger = Buffer.allocUnsafe(Math.min(this.buf.length * 2, maxBytes));
        this.buf.copy(bigger, 0, 0, total);
        this.buf = bigger;
      }
      const want = Math.min(this.buf.length, maxBytes) - total;
      const n = total === 0 ? c.read(fd, this.buf, want) : c.read(fd, this.buf.subarray(total), want);
      if (n < 0) {
        // ESRCH while reading: the process ended between open and read.
        c.close(fd);
        return -1;
      }
      if (n === 0) break;
      total += n;
    }
    c.close(fd);
    return total;
  }

  /** The target of a symbolic link (/proc/PID/exe), or '' when it cannot be read. */
  readLink(path: string): string {
    this.reads++;
    const n = this.c.readlink(path, this.linkBuf, this.linkBuf.length);
    return n <= 0 ? '' : this.linkBuf.toString('utf8', 0, n);
  }

  bytes(): Buffer {
    return this.buf;
  }

  /** Opens `path` to be read with readKept; returns its fd, or -1 (no such file). */
  openKept(path: string): number {
    return this.c.open(path, O_RDONLY | O_CLOEXEC);
  }

  /**
   * Reads the file `fd` (from openKept) from offset 0 into `into`; returns the length, or -1 (a
   * removed cgroup's open file: ENODEV). A positional read through fs (pread), which libc.ts does
   * not bind; its exception comes once per removed cgroup, not per call.
   */
  readKept(fd: number, into: Buffer): number {
    this.reads++;
    try {
      return readSync(fd, into, 0, into.length, 0);
    } catch {
      return -1;
    }
  }

  closeKept(fd: number): void {
    this.c.close(fd);
  }

  /** CPU time (ns) of thread `tid` of this process so far, from the kernel's schedstat; 0 if unknown. */
  threadCpuNs(tid: number): number {
    const n = this.readBytes(`/proc/self/task/${tid}/schedstat`, 256);
    if (n <= 0) return 0;
    let ns = 0;
    for (let i = 0; i < n; i++) {
      const d = this.buf[i]! - 48;
      if (d < 0 || d > 9) break;
      ns = ns * 10 + d;
    }
    return ns;
  }

  /** ROOT/TGID/NAME (`name` as bytes, e.g. `/cgroup`) into `into`, in one read; returns the length, or -1. */
  readOf(tgid: number, name: Buffer, into: Buffer): number {
    this.reads++;
    this.setPath(tgid, name);
    const c = this.c;
    const fd = c.openBytes(this.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      this.lastErrno = c.errno();
      return -1;
    }
    this.openFd[0] = fd + 1;
    const n = c.read(fd, into, into.length);
    if (n < 0) this.lastErrno = c.errno();
    this.openFd[0] = 0;
    c.close(fd);
    return n;
  }

  /** The link ROOT/TGID/NAME into `into`; returns its length, or -1. */
  readLinkOf(tgid: number, name: Buffer, into: Buffer): number {
    this.reads++;
    this.setPath(tgid, name);
    return this.c.readlinkBytes(this.path, into, into.length);
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

/** /proc/PID/cmdline bytes in place: NUL separators become spaces, trailing NULs dropped; returns the length kept. */
export function cmdlineBytes(b: Buffer, n: number): number {
  let end = n;
  while (end > 0 && b[end - 1] === 0) end--;
  for (let i = 0; i < end; i++) if (b[i] === 0) b[i] = 32;
  return end;
}

/** Command line from /proc/PID/cmdline bytes: NUL separators become spaces, trailing NULs dropped. */
export function cmdlineText(b: Buffer, n: number): string {
  return b.toString('utf8', 0, cmdlineBytes(b, n));
}

/**
 * Field `field` (1-based, as proc(5) numbers them; 3 or later) of /proc/PID/stat bytes buf[0, n),
 * counted after the last ')' (comm, field 2, may hold spaces and parentheses); -1 when there is none.
 */
export function statField(buf: Buffer, n: number, field: number): number {
  let i = buf.lastIndexOf(0x29, n - 1) + 1;
  if (i <= 0) return -1;
  let f = 2;
  while (i < n && f < field) if (buf[i++] === 0x20) f++;
  if (i >= n) return -1;
  let v = 0;
  for (; i < n; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
  }
  return v;
}
