// A second, minimal exit listener next to the agent: `taskstats-agent exits --json` (the same
// netlink socket setup, no pipeline), so the benchmark can tell what the kernel's exit records
// themselves hold for a workload (the most any taskstats consumer can report) from what the agent
// made of them. The workload's processes are found by their command names, unique to the run.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;

export async function startKernelRecords() {
  const child = spawn(process.execPath, [join(root, 'bin', 'taskstats-agent'), 'exits', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  /** Thread (PID) records: a single-threaded process's only record. */
  const records = [];
  let buf = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.startsWith('{')) continue;
      const r = JSON.parse(line);
      if (r.aggregate !== 'tgid') records.push({ pid: r.pid, tgid: r.tgid, comm: r.comm, runNs: r.cpu_run_virtual_ns, flags: r.flags });
    }
  });
  child.stderr.on('data', (d) => (err += d));
  // It prints "listening on cpus ..." on stderr once its socket is registered.
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`exits listener not ready within 15 s: ${err}`)), 15_000);
    const check = () => { if (err.includes('listening')) { clearTimeout(timer); resolve(); } };
    child.stderr.on('data', check);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exits listener ended (${code}): ${err}`)); });
    check();
  });
  return {
    /** Records of processes whose comm is one of `comms`: their count and summed runtime (µs). */
    of(comms) {
      let n = 0;
      let runUs = 0;
      for (const r of records) {
        if (!comms.includes(r.comm)) continue;
        n++;
        runUs += r.runNs / 1000;
      }
      return { n, runUs };
    },
    /** Runtime (µs) in the record of each pid. */
    byPid() {
      const m = new Map();
      for (const r of records) m.set(r.pid, r.runNs / 1000);
      return m;
    },
    stop() {
      if (child.exitCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    },
  };
}
