/**
 * A second, minimal exit listener for end-to-end accuracy tests and the accuracy benchmark:
 * `taskstats-agent exits --json` (no pipeline), so a test can compare what the backend holds with what the kernel's exit records
 * themselves hold. A record is taken in do_exit before the process's address space and files are
 * torn down, so cpu.stat (which counts that teardown too) is always a little more than the
 * records: the records are what any taskstats consumer can report exactly.
 */
import { spawn } from 'node:child_process';
import { agentBin } from './agent.js';

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
  const child = spawn(process.execPath, [agentBin, 'exits', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const records: { pid: number; comm: string; runNs: number }[] = [];
  let buf = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.startsWith('{')) continue;
      const r = JSON.parse(line) as { aggregate: string; pid: number; comm: string; cpu_run_virtual_ns: number };
      // Single-threaded processes: one thread record each, with the scheduler's runtime.
      if (r.aggregate !== 'tgid') records.push({ pid: r.pid, comm: r.comm, runNs: r.cpu_run_virtual_ns });
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`taskstats-agent exits not listening within 15 s: ${err}`)), 15_000);
    const check = () => {
      if (err.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stderr.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`taskstats-agent exits ended (${code}): ${err}`));
    });
  });
  return {
    of(comms) {
      let n = 0;
      let ns = 0;
      for (const r of records) {
        if (!comms.includes(r.comm)) continue;
        n++;
        ns += r.runNs;
      }
      return { records: n, runtimeS: ns / 1e9 };
    },
    byComm(comms) {
      const m = new Map<string, number>();
      for (const r of records) if (comms.includes(r.comm)) m.set(r.comm, (m.get(r.comm) ?? 0) + r.runNs / 1e9);
      return m;
    },
    byPid() {
      const m = new Map<number, number>();
      for (const r of records) m.set(r.pid, r.runNs / 1e9);
      return m;
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    },
  };
}
