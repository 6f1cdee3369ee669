/**
 * The processes of /proc for the live sweep: its numeric entries, read from the bytes of
 * getdents64() (fs.readdir makes a string per entry and a Number() of each).
 */
import { EINTR, O_CLOEXEC, O_DIRECTORY, O_RDONLY, libc } from './libc.js';
import { AgentError, ErrorCode } from '../../src/api/index.js';

/**
 * The numeric entries of `procRoot` (the thread groups, in /proc) into `ids` (grown when full),
 * with getdents64() into `buf`: fs.readdir() makes a string per entry and then a Number() of each
 * (~1.5-2 us per process here, with the kernel's own ~1.2 us); this reads the digits from the
 * bytes. Only names made only of digits count ("1a" is no process).
 * @throws AgentError system_error when procRoot cannot be opened or read.
 */
export function listProcessIds(procRoot: string, ids: Int32Array, buf: Buffer): { ids: Int32Array; count: number } {
  const listing = new ProcessListing(procRoot, ids, buf);
  try {
    while (listing.read()) {
      // until the end of the directory
    }
  } finally {
    listing.close();
  }
  return { ids: listing.ids, count: listing.count };
}

/** listProcessIds, yielding to the event loop between getdents64() calls after `yieldAfterMs` of work. */
export async function listProcessIdsYielding(
  procRoot: string,
  ids: Int32Array,
  buf: Buffer,
  yieldAfterMs: number,
): Promise<{ ids: Int32Array; count: number }> {
  const listing = new ProcessListing(procRoot, ids, buf);
  try {
    let stretchStart = performance.now();
    while (listing.read()) {
      if (performance.now() - stretchStart >= yieldAfterMs) {
        await new Promise<void>((r) => setImmediate(r));
        stretchStart = performance.now();
      }
    }
  } finally {
    listing.close();
  }
  return { ids: listing.ids, count: listing.count };
}

/** One pass over a directory's entries, one getdents64() call per read(). */
class ProcessListing {
  private readonly c = libc();
  private fd: number;
  count = 0;

  constructor(
    private readonly procRoot: string,
    public ids: Int32Array,
    private readonly buf: Buffer,
  ) {
    this.fd = this.c.open(procRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (this.fd < 0) {
      const e = this.c.errno();
      throw new AgentError(ErrorCode.SYSTEM_ERROR, `listing processes: cannot open ${procRoot}: ${this.c.strerror(e)}`, { errno: e });
    }
  }

  /** Reads the next entries. @returns false at the end of the directory. */
  read(): boolean {
    const buf = this.buf;
    let n: number;
    for (;;) {
      n = this.c.getdents64(this.fd, buf, buf.length);
      if (n >= 0) break;
      const e = this.c.errno();
      if (e !== EINTR) throw new AgentError(ErrorCode.SYSTEM_ERROR, `listing processes: reading ${this.procRoot}: ${this.c.strerror(e)}`, { errno: e });
    }
    if (n === 0) return false;
    // struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16 @16, d_type u8 @18, d_name @19.
    let ids = this.ids;
    let count = this.count;
    for (let off = 0; off + 19 < n;) {
      const reclen = buf[off + 16]! | (buf[off + 17]! << 8);
      if (reclen < 20 || off + reclen > n) break;
      const end = off + reclen;
      let p = off + 19;
      let id = 0;
      let ch: number;
      while (p < end && (ch = buf[p]!) >= 48 && ch <= 57 && id <= 0x7fffffff) {
        id = id * 10 + (ch - 48);
        p++;
      }
      if (p > off + 19 && (p === end || buf[p] === 0) && id <= 0x7fffffff) {
        if (count === ids.length) {
          const grown = new Int32Array(ids.length * 2);
          grown.set(ids);
          ids = grown;
        }
        ids[count++] = id;
      }
      off = end;
    }
    this.ids = ids;
    this.count = count;
    return true;
  }

  close(): void {
    if (this.fd >= 0) this.c.close(this.fd);
    this.fd = -1;
  }
}
