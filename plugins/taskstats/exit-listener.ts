/**
 * ExitListener: one netlink socket registered for the exit events of a cpulist, watched on the
 * libuv loop (koffi.node.poll), drained with recvmmsg() (up to 32 datagrams per call: one koffi
 * call per batch, not per exit) until EAGAIN on every wake-up.
 *
 * Why this shape: a blocking recv on the main thread stalls the event loop, and one recv.async
 * per message costs about twice the poll handle per exit (docs/performance.md). When the kernel
 * drops events (receive buffer full) the socket reports an
 * error: recv() fails once with ENOBUFS, and libuv stops the poll handle and calls back with a
 * negative status. Ignoring that status leaves the listener deaf for good, so the callback drains
 * and starts the handle again.
 */
import koffi from 'koffi';
import { DatagramBatch, EAGAIN, EINTR, ENOBUFS, MSG_DONTWAIT } from './libc.js';
import { TaskstatsSocket } from './libnl.js';
import { TaskstatsParser, PARSED_PID, PARSED_TGID, PARSE_NETLINK_ERROR, PARSE_IGNORED, PARSE_TRUNCATED } from './parser.js';
import { newTaskRecord, type TaskRecord } from './record.js';

export interface ExitHandler {
  /**
   * One exit datagram: the thread's record, plus the group's record when the last thread of a
   * multi-threaded group exited (else null). Both records are reused after the call: copy what
   * you keep.
   */
  exit(thread: TaskRecord, group: TaskRecord | null): void;
  /** After each drain that delivered at least one exit (batch boundary). */
  drained(): void;
  /** The kernel dropped an unknown number of events (ENOBUFS). */
  kernelDrop(): void;
  /** A datagram that could not be parsed (malformed, or an unexpected netlink error). */
  parseError(status: number, errno: number): void;
}

export interface ExitListenerOptions {
  /** cpulist as the kernel reads it: "0-1", "0-3,5". */
  cpus: string;
  /** Receive buffer, bytes (SO_RCVBUFFORCE). */
  receiveBuffer: number;
  handler: ExitHandler;
  /** At most about this many datagrams per wake-up before yielding to the loop (the poll fires again). */
  maxPerWake?: number;
  /**
   * After a wake-up, leave the socket unwatched this long (ms) so that the next drain handles
   * many events at once: the per-wake cost (epoll, the callback into JS, the final EAGAIN recv)
   * is then shared by all of them. 0 disables. The receive buffer must hold what arrives
   * meanwhile (16 MiB holds ~13,000 exits; 14,000 exits/s fill 2 ms of coalescing with ~30).
   */
  coalesceMs?: number;
}

/**
 * Datagrams per recvmmsg() and the room for each: an exit datagram (thread and group records) is
 * under 1 KiB on today's kernels; a longer one is counted as a parse error, not read cut.
 */
const BATCH_DATAGRAMS = 32;
const DATAGRAM_SLOT_BYTES = 4096;

// koffi declares the poll callback as (events) => void, but calls it with (status, events)
// (libuv's uv_poll_cb order); the listener needs the status, negative when libuv stopped the handle.
type PollCallback = (status: number) => void;
type DeclaredPollCallback = (events: { readable: boolean; writable: boolean; disconnect: boolean }) => void;
type PollHandle = { start(opts: { readable: boolean }, cb: PollCallback): void; stop(): void; close(): void; unref(): void };

export class ExitListener {
  /** Datagrams received. */
  datagrams = 0;
  /** Records parsed (thread + group records). */
  records = 0;
  parseErrors = 0;
  /** ENOBUFS incidents (the number of lost events is not known). */
  kernelDrops = 0;
  /** Poll callbacks with a negative status (handle restarted). */
  pollErrors = 0;

  private sock: TaskstatsSocket | null = null;
  private parser: TaskstatsParser | null = null;
  private handle: PollHandle | null = null;
  /** Created at start(): DatagramBatch loads libc. */
  private batch: DatagramBatch | null = null;
  private readonly thread = newTaskRecord();
  private readonly group = newTaskRecord();
  private readonly maxPerWake: number;
  private readonly coalesceMs: number;
  private coalesceTimer: NodeJS.Timeout | null = null;
  private readonly onPoll: PollCallback = (status) => this.wake(status);
  private readonly onCoalesced = () => this.resume();

  constructor(private readonly opts: ExitListenerOptions) {
    this.maxPerWake = opts.maxPerWake ?? 8192;
    this.coalesceMs = opts.coalesceMs ?? 5;
  }

  get receiveBufferBytes(): number {
    return this.sock?.receiveBufferBytes ?? 0;
  }

  /**
   * Open, register for the cpulist, start watching.
   * @throws AgentError (missing_library, missing_capability, not_initial_namespace, ...).
   */
  start(): void {
    if (this.sock) return;
    const sock = TaskstatsSocket.open({ receiveBuffer: this.opts.receiveBuffer });
    try {
      this.parser = new TaskstatsParser(sock.familyId);
      this.batch ??= new DatagramBatch(BATCH_DATAGRAMS, DATAGRAM_SLOT_BYTES);
      this.sock = sock;
      sock.register(this.opts.cpus, (b, n) => this.handleDatagram(b, 0, n));
      this.handle = koffi.node.poll(
        sock.fd,
        { readable: true, writable: false, disconnect: false },
        this.onPoll as unknown as DeclaredPollCallback,
      ) as unknown as PollHandle;
      // Events that arrived before the handle existed: the poll is level-triggered, but drain now anyway.
      this.drain();
    } catch (err) {
      this.handle?.close();
      this.handle = null;
      sock.close();
      this.sock = null;
      throw err;
    }
  }

  /** Deregister, close the poll handle (before the socket), close the socket. */
  stop(): void {
    const sock = this.sock;
    if (!sock) return;
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
    this.handle?.stop();
    this.handle?.close();
    this.handle = null;
    try {
      sock.register(this.opts.cpus, undefined, true);
    } catch {
      // Closing the socket deregisters too; the explicit call only makes it prompt.
    }
    sock.close();
    this.sock = null;
  }

  /**
   * Deliver what the socket holds now, without waiting for the poll handle (or its coalescing
   * rest): every exit that happened before this call has its record queued already (the kernel
   * sends it in do_exit), so after it the handler has seen them all.
   */
  drainNow(): void {
    // drain() stops after maxPerWake datagrams; here the socket is emptied (bounded: it refills).
    for (let i = 0; i < 64 && this.sock && this.drain(); i++);
  }

  private wake(status: number): void {
    if (!this.sock || !this.handle) return;
    // A negative status: libuv stopped the handle after POLLERR (events dropped). Draining
    // clears the error (the first recv returns ENOBUFS); the handle is started again below.
    if (status < 0) this.pollErrors++;
    this.drain();
    // koffi calls this outside a Node callback scope (seen on Node 26): promise reactions the
    // handlers queued would wait for the next timer. An immediate runs them in this loop turn.
    if (!this.immediatePending) {
      this.immediatePending = true;
      setImmediate(this.onImmediate);
    }
    if (this.coalesceMs > 0) {
      this.handle.stop();
      this.coalesceTimer = setTimeout(this.onCoalesced, this.coalesceMs);
    } else if (status < 0) {
      this.handle.start({ readable: true }, this.onPoll);
    }
  }

  private immediatePending = false;
  private readonly onImmediate = (): void => {
    this.immediatePending = false;
  };

  private resume(): void {
    this.coalesceTimer = null;
    if (!this.sock || !this.handle) return;
    this.drain();
    this.handle.start({ readable: true }, this.onPoll);
  }

  /** recvmmsg() until EAGAIN (or maxPerWake datagrams). @returns whether it stopped at maxPerWake. */
  private drain(): boolean {
    const sock = this.sock!;
    const batch = this.batch!;
    const buf = batch.buf;
    let delivered = 0;
    let sawDrop = false;
    let i = 0;
    while (i < this.maxPerWake) {
      const n = sock.recvMany(batch, MSG_DONTWAIT);
      if (n > 0) {
        for (let d = 0; d < n; d++) {
          if (batch.truncated(d)) {
            // Longer than a slot: a struct taskstats far beyond today's; the parser would read a cut record.
            this.datagrams++;
            this.parseErrors++;
            this.opts.handler.parseError(PARSE_TRUNCATED, 0);
            continue;
          }
          delivered += this.handleDatagram(buf, d * DATAGRAM_SLOT_BYTES, batch.length(d));
        }
        i += n;
        if (n < BATCH_DATAGRAMS) break; // the socket is empty (recvmmsg stops at EAGAIN): spare the call that would say so
        continue;
      }
      if (n === -EAGAIN || n === 0) break;
      if (n === -EINTR) continue;
      if (n === -ENOBUFS) {
        sawDrop = true;
        i++;
        continue;
      }
      // Any other error: count it and stop this drain; the poll will tell us again.
      this.parseErrors++;
      this.opts.handler.parseError(n, -n);
      break;
    }
    if (sawDrop) {
      this.kernelDrops++;
      this.opts.handler.kernelDrop();
    }
    if (delivered > 0) this.opts.handler.drained();
    return i >= this.maxPerWake;
  }

  /** The datagram at buf[start, start + len). Returns the number of exits delivered from it. */
  private handleDatagram(buf: Buffer, start: number, len: number): number {
    this.datagrams++;
    const p = this.parser!;
    const end = start + len;
    let delivered = 0;
    for (let off = start; off < end; off = p.next) {
      const st = p.parseMessage(buf, off, end, 'exit', this.thread, this.group);
      if (st > 0) {
        if (st & PARSED_PID) {
          this.records += st & PARSED_TGID ? 2 : 1;
          this.opts.handler.exit(this.thread, st & PARSED_TGID ? this.group : null);
          delivered++;
        } else {
          // A group record alone does not happen on known kernels; deliver it as its own exit.
          this.records++;
          this.opts.handler.exit(this.group, null);
          delivered++;
        }
      } else if (st !== PARSE_IGNORED) {
        this.parseErrors++;
        this.opts.handler.parseError(st, st === PARSE_NETLINK_ERROR ? p.errno : 0);
      }
      if (p.next <= off) break;
    }
    return delivered;
  }
}
