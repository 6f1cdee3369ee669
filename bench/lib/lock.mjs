// Benchmarks that spawn thousands of processes distort each other's figures when two checkouts
// run them on one machine at once (each agent counts the other's processes). With BENCH_LOCK set
// to a file, bench/run.mjs holds flock(1) on it around each benchmark, and bench/curve around each
// point of its curve (so others can run between points). Without BENCH_LOCK: no lock.
import { spawn } from 'node:child_process';

/** Hold the lock (when BENCH_LOCK is set) while `fn` runs; returns what `fn` returns. */
export async function withLock(what, fn) {
  const file = process.env.BENCH_LOCK;
  if (!file) return fn();
  const t0 = Date.now();
  // flock keeps the lock while its command runs; the command ends when our stdin to it closes.
  const holder = spawn('flock', [file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    holder.stdout.on('data', (d) => String(d).includes('locked') && resolve());
    holder.on('exit', (code) => reject(new Error(`flock ${file} exited (${code}) before taking the lock`)));
  });
  const waited = (Date.now() - t0) / 1000;
  if (waited > 1) console.log(`(${what}: waited ${waited.toFixed(0)} s for ${file})`);
  try {
    return await fn();
  } finally {
    const gone = new Promise((r) => holder.once('exit', r));
    holder.stdin.end();
    await gone;
  }
}
