/**
 * The kernel's exit records, for end-to-end accuracy tests and the accuracy benchmark, read by
 * code that shares nothing with the agent: test/support/exit-fields.c (a raw netlink socket and
 * the kernel's own <linux/taskstats.h>), so a test compares what the backend holds with what the
 * records themselves hold, never the agent with itself. A record is taken in do_exit before the
 * process's address space and files are torn down, so cpu.stat (which counts that teardown too)
 * is always a little more than the records: the records are what any taskstats consumer can
 * report exactly.
 */
import { startExitFields } from './exit-fields.js';

export interface KernelExitRecords {
  /** Thread records of processes whose comm is one of `comms`: count and summed runtime (s). */
  of(comms: string[]): { records: number; runtimeS: number };
  /** Summed runtime (s) per comm of the records whose comm is one of `comms`. */
  byComm(comms: string[]): Map<string, number>;
  /** Runtime (s) in the record of each pid. */
  byPid(): Map<number, number>;
  stop(): Promise<void>;
}

export async function startKernelExitRecords(): Promise<KernelExitRecords> {
  const listener = await startExitFields();
  // Single-threaded processes: one thread record each, with the scheduler's runtime.
  const threads = () => listener.all().filter((r) => r.aggregate === 'pid');
  return {
    of(comms) {
      let n = 0;
      let ns = 0;
      for (const r of threads()) {
        if (!comms.includes(r.comm)) continue;
        n++;
        ns += r.runVirtualNs;
      }
      return { records: n, runtimeS: ns / 1e9 };
    },
    byComm(comms) {
      const m = new Map<string, number>();
      for (const r of threads()) if (comms.includes(r.comm)) m.set(r.comm, (m.get(r.comm) ?? 0) + r.runVirtualNs / 1e9);
      return m;
    },
    byPid() {
      const m = new Map<number, number>();
      for (const r of threads()) m.set(r.pid, r.runVirtualNs / 1e9);
      return m;
    },
    stop: () => listener.stop(),
  };
}
