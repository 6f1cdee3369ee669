// test-requires: root taskstats libnl cc
/**
 * Soak of the exec watcher (a worker thread making koffi calls) under the conditions of the known
 * koffi + worker_threads reports (Koromix/koffi#190 napi_throw in worker threads with the library
 * loaded in both threads, #271 abort at exit while callbacks still run, #274 process.exit() hanging
 * on a worker that made koffi calls, and our own note that terminating a worker with an open poll
 * handle crashed the process): many start/stop cycles, the thread terminated while inside koffi
 * calls, koffi poll callbacks on the main thread meanwhile (an exit listener), and processes that
 * exit while the thread runs.
 *
 * Truth: the spawner's own fork() results (test/support/exec-spawner.c): each child execs a
 * command line of its own and stays alive until released, so its exec must be read (cgroup,
 * executable, command line) by the watcher, whatever the machine's load. Leaks: /proc/self/fd and
 * /proc/self/task before and after.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { compileC, repoRoot } from '../../test/support/workload.js';
import { EXEC_RESULT_CGROUP, EXEC_RESULT_DETAILS } from './exec-result-ring.js';
import { ExecWatcher } from './exec-watcher.js';
import { ExitListener } from './exit-listener.js';
import { possibleCpus } from './config.js';

const skip = process.getuid?.() === 0 ? undefined : 'needs root (CAP_NET_ADMIN)';
const CYCLES = 50;
const PER_CYCLE = 470;
/** Every sixth cycle terminates the thread right after its start, with 20 untracked execs. */
const TRACKED = (CYCLES + 1 - Math.ceil((CYCLES - 5) / 6)) * PER_CYCLE;

/** The spawner, driven line by line. */
class Spawner {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiting: (() => void) | undefined;
  private ended = false;

  constructor(readonly bin: string) {
    this.proc = spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    this.proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    createInterface({ input: this.proc.stdout }).on('line', (l) => {
      this.lines.push(l);
      this.waiting?.();
    });
    this.proc.once('exit', (code) => {
      this.ended = true;
      if (code !== 0) this.lines.push(`exited ${code} ${err}`);
      this.waiting?.();
    });
  }

  private async line(): Promise<string> {
    const deadline = Date.now() + 60_000;
    while (this.lines.length === 0) {
      if (this.ended) throw new Error('spawner ended');
      if (Date.now() > deadline) throw new Error('spawner silent for 60 s');
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 1000).unref();
      });
      this.waiting = undefined;
    }
    return this.lines.shift()!;
  }

  /** Forks n children (numbered from base) that exec `bin child TAG-i` and wait; returns pid -> index. */
  async spawn(n: number, base: number, tag: string): Promise<Map<number, number>> {
    this.proc.stdin.write(`spawn ${n} ${base} ${tag}\n`);
    const pids = new Map<number, number>();
    for (;;) {
      const l = await this.line();
      if (l === 'spawned') return pids;
      const m = /^pid (\d+) (\d+)$/.exec(l);
      if (!m) throw new Error(`spawner: ${l}`);
      pids.set(Number(m[2]), Number(m[1]));
    }
  }

  async release(): Promise<string> {
    this.proc.stdin.write('release\n');
    return this.line();
  }

  quit(): void {
    this.proc.stdin.end('quit\n');
  }
}

function fds(): string[] {
  const dir = '/proc/self/fd';
  return readdirSync(dir)
    .map((f) => {
      try {
        return `${f} -> ${readlinkSync(join(dir, f))}`;
      } catch {
        return `${f} -> ?`; // the fd readdir itself used
      }
    })
    .filter((f) => !f.endsWith('?'));
}

function threads(): number {
  return readdirSync('/proc/self/task').length;
}

function ourCgroupV2(): string {
  return /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))![1]!;
}

interface Seen {
  cgroup?: string;
  exePath?: string;
  cmdline?: string;
  seq: number;
}

type Ending = 'stop' | 'terminate-idle' | 'terminate-busy' | 'terminate-at-start';

describe('exec watcher soak (real kernel)', { skip, timeout: 240_000 }, () => {
  test(`${CYCLES} start/stop cycles, ${TRACKED} tracked execs, terminations inside koffi calls, poll callbacks meanwhile: every exec read, no crash, no leak`, async () => {
    const bin = compileC(readFileSync(join(repoRoot, 'test', 'support', 'exec-spawner.c'), 'utf8'), 'exec-spawner');
    const exe = realpathSync(bin);
    const cgroup = ourCgroupV2();
    const tag = `soak${process.pid}`;
    const spawner = new Spawner(bin);

    // koffi poll callbacks on the main thread all along (libc and libnl loaded in both threads):
    // the exit records of the spawner's children, counted.
    let exitRecords = 0;
    const exitListener = new ExitListener({
      cpus: possibleCpus(),
      receiveBuffer: 8 << 20,
      handler: {
        exit(thread) {
          if (thread.comm === 'exec-spawner') exitRecords++;
        },
        drained() {},
        kernelDrop() {},
        parseError() {},
      },
    });
    exitListener.start();

    let seen = new Map<number, Seen>();
    let died: string[] = [];
    const options = { procRoot: '/proc', selector: { kind: 'v2' as const }, executablePath: true, commandLine: true, maxCommandLineBytes: 4096 };
    const newWatcher = () =>
      new ExecWatcher(
        options,
        (tgid, seq, what, cg, exePath, cmdline) => {
          const s = seen.get(tgid);
          if ((what & EXEC_RESULT_CGROUP) !== 0) seen.set(tgid, { seq, cgroup: cg, ...((what & EXEC_RESULT_DETAILS) !== 0 ? { exePath, cmdline } : {}) });
          else if (s?.seq === seq) Object.assign(s, { exePath, cmdline });
        },
        () => {},
        () => {},
        (reason) => died.push(reason),
      );
    const workerOf = (w: ExecWatcher) => (w as unknown as { worker?: Worker }).worker!;

    // A background exec stream (short-lived /bin/true), for the cycles that terminate a busy thread.
    const stream = () => spawn('/bin/sh', ['-c', 'while :; do /bin/true; done'], { stdio: 'ignore' });

    let base = 0;
    let tracked = 0;
    let withDetails = 0;
    let missedTotal = 0;
    let execEventsTotal = 0;
    const exitCodes = new Map<Ending, number[]>();
    let fdsBefore: string[] = [];
    let threadsBefore = 0;
    try {
      for (let cycle = -1; cycle < CYCLES; cycle++) {
        // Cycle -1 warms up (the libuv threadpool, lazily loaded modules) before the baseline.
        if (cycle === 0) {
          fdsBefore = fds();
          threadsBefore = threads();
        }
        const ending: Ending = cycle < 0 ? 'stop' : (['stop', 'stop', 'terminate-idle', 'terminate-busy', 'stop', 'terminate-at-start'] as const)[cycle % 6]!;
        seen = new Map();
        died = [];
        const w = newWatcher();
        await w.start();
        const worker = workerOf(w);
        const exited = new Promise<number>((r) => worker.once('exit', r));

        if (ending === 'terminate-at-start') {
          // The thread has just subscribed and is in its first koffi calls (loading libc, raising
          // its priority, the first recvmmsg) while execs arrive.
          const pending = spawner.spawn(20, base, tag);
          await worker.terminate();
          await pending;
          assert.equal(await spawner.release(), 'reaped OK');
          base += 20;
        } else {
          const pids = await spawner.spawn(PER_CYCLE, base, tag);
          assert.equal(pids.size, PER_CYCLE);
          base += PER_CYCLE;
          // Every child is alive until released: each exec must be read.
          const deadline = Date.now() + 30_000;
          const missing = () => [...pids.keys()].filter((p) => seen.get(p)?.cgroup === undefined);
          while (missing().length > 0 && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 20));
            w.drain();
          }
          // A little longer for the details queued behind the cgroups.
          const detailDeadline = Date.now() + 2000;
          while ([...pids.keys()].some((p) => seen.get(p)?.cmdline === undefined) && Date.now() < detailDeadline) {
            await new Promise((r) => setTimeout(r, 20));
            w.drain();
          }
          const lost = missing();
          assert.deepEqual(lost.slice(0, 10), [], `cycle ${cycle}: ${lost.length} of ${pids.size} execs not read (stats ${JSON.stringify(w.stats)})`);
          for (const [pid, i] of pids) {
            const s = seen.get(pid)!;
            assert.equal(s.cgroup, cgroup, `cgroup of child ${i}`);
            if (s.cmdline !== undefined) {
              // Details are skipped when the thread falls behind, never wrong.
              assert.equal(s.cmdline, `${bin} child ${tag}-${i}`, `command line of pid ${pid}`);
              assert.equal(s.exePath, exe);
              withDetails++;
            }
          }
          tracked += pids.size;
          assert.equal(await spawner.release(), 'reaped OK');
          if (ending === 'terminate-idle') {
            // Blocked inside recvmmsg (a koffi call) with nothing to read.
            await new Promise((r) => setTimeout(r, 50));
            await worker.terminate();
          } else if (ending === 'terminate-busy') {
            // Inside its koffi calls (recvmmsg, open/read/close of /proc) under an exec stream.
            const s = stream();
            await new Promise((r) => setTimeout(r, 30 + ((cycle * 7) % 40)));
            w.drain();
            await worker.terminate();
            s.kill('SIGKILL');
            await new Promise((r) => s.once('exit', r));
          }
        }
        missedTotal += w.stats.missed;
        execEventsTotal += w.stats.execEvents;
        await w.stop();
        const code = await exited;
        exitCodes.set(ending, [...(exitCodes.get(ending) ?? []), code]);
        if (ending === 'stop') {
          assert.equal(code, 0, `cycle ${cycle}: the thread ends cleanly when asked to stop`);
          assert.deepEqual(died, [], 'no unexpected end reported');
        } else {
          // terminate() ends the thread with code 1; the watcher reports it (attribution falls back to parents).
          assert.equal(code, 1, `cycle ${cycle}: ${ending}`);
          assert.equal(died.length, 1, `cycle ${cycle}: the unexpected end is reported once`);
        }
      }
      // Terminated the moment start() resolves, 30 times: a thread still making koffi
      // declarations then (lib.func) aborted the process (napi_throw) before they moved ahead of 'ready'.
      for (let k = 0; k < 30; k++) {
        const w = newWatcher();
        await w.start();
        await workerOf(w).terminate();
        await w.stop();
      }
      await new Promise((r) => setTimeout(r, 200));
      const fdsAfter = fds();
      const threadsAfter = threads();
      const line =
        `${CYCLES} cycles (${JSON.stringify(Object.fromEntries([...exitCodes].map(([k, v]) => [k, v.length])))}), ` +
        `${tracked} tracked execs all read (${withDetails} with their details), ${execEventsTotal} exec events received in all, ` +
        `${missedTotal} missed (of other processes); ${exitRecords} exit records of the children on the main thread; ` +
        `fds ${fdsBefore.length} -> ${fdsAfter.length}, threads ${threadsBefore} -> ${threadsAfter}`;
      console.log(`# ${line}`);
      assert.equal(tracked, TRACKED, line);
      assert.deepEqual(
        fdsAfter.filter((f) => !fdsBefore.includes(f)),
        [],
        `no file descriptor left open: ${line}`,
      );
      assert.equal(threadsAfter, threadsBefore, `no thread left: ${line}`);
    } finally {
      exitListener.stop();
      spawner.quit();
    }
  });

  test('the process exits while the thread runs (process.exit, uncaught exception, end of the loop, exit during start()): exit codes as asked, no abort, no hang', () => {
    const moduleUrl = new URL('./exec-watcher.js', import.meta.url).href;
    const listenerUrl = new URL('./exit-listener.js', import.meta.url).href;
    const configUrl = new URL('./config.js', import.meta.url).href;
    // The thread is inside its koffi calls (an exec stream keeps it reading /proc) and the main
    // thread has a koffi poll handle open with callbacks arriving (exit records) when the process ends.
    // process.exit() while start() is pending: Node terminates the thread wherever it is in its
    // setup (loading koffi, declaring functions, subscribing).
    const duringStart = (delayMs: number) => `
      const m = await import(${JSON.stringify(moduleUrl)});
      const w = new m.ExecWatcher({ procRoot: '/proc', selector: { kind: 'v2' }, executablePath: true, commandLine: true, maxCommandLineBytes: 4096 }, () => {}, () => {});
      setTimeout(() => process.exit(3), ${delayMs});
      await w.start();
      console.log('results 1 exits 1 (started)');
      await new Promise((r) => setTimeout(r, 5000));`;
    const script = (how: string, delayMs: number) => `
      const m = await import(${JSON.stringify(moduleUrl)});
      const { ExitListener } = await import(${JSON.stringify(listenerUrl)});
      const { possibleCpus } = await import(${JSON.stringify(configUrl)});
      const { spawn } = await import('node:child_process');
      let results = 0;
      const w = new m.ExecWatcher({ procRoot: '/proc', selector: { kind: 'v2' }, executablePath: true, commandLine: true, maxCommandLineBytes: 4096 }, () => { results++; }, () => {});
      await w.start();
      let exits = 0;
      const l = new ExitListener({ cpus: possibleCpus(), receiveBuffer: 4 << 20, handler: { exit() { exits++; }, drained() {}, kernelDrop() {}, parseError() {} } });
      l.start();
      const s = spawn('/bin/sh', ['-c', 'i=0; while [ $i -lt 3000 ]; do /bin/true; i=$((i+1)); done'], { stdio: 'ignore' });
      s.unref();
      const deadline = Date.now() + 10000;
      while ((results === 0 || exits === 0) && Date.now() < deadline) { await new Promise((r) => setTimeout(r, 10)); w.drain(); }
      await new Promise((r) => setTimeout(r, ${delayMs}));
      w.drain();
      console.log('results ' + results + ' exits ' + exits);
      ${
        how === 'exit'
          ? 'process.exit(3);'
          : how === 'throw'
            ? "setImmediate(() => { throw new Error('soak: uncaught'); });"
            : // the loop ends on its own: the exit listener is closed, the watcher (unref'd) still runs
              'l.stop();'
      }`;
    const expected: Record<string, number> = { exit: 3, throw: 1, natural: 0, 'exit-during-start': 3 };
    const runs: string[] = [];
    for (let i = 0; i < 27; i++) {
      const how = (['exit', 'throw', 'natural', 'exit-during-start'] as const)[i < 18 ? i % 3 : 3]!;
      const delay = how === 'exit-during-start' ? (i - 18) * 12 : (i * 37) % 300;
      const t0 = Date.now();
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', how === 'exit-during-start' ? duringStart(delay) : script(how, delay)], {
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('.', import.meta.url)),
        timeout: 30_000, // a hang (koffi#274) ends here
        killSignal: 'SIGKILL',
      });
      const ms = Date.now() - t0;
      const what = `run ${i} (${how} after ${delay} ms): status ${r.status} signal ${r.signal} in ${ms} ms; stdout ${r.stdout.trim()}; stderr ${r.stderr.slice(0, 400)}`;
      assert.equal(r.signal, null, `no abort, no hang: ${what}`);
      assert.equal(r.status, expected[how], what);
      assert.doesNotMatch(r.stderr, /FATAL ERROR|napi_|Check failed|Segmentation/, what);
      if (how === 'throw') assert.match(r.stderr, /soak: uncaught/, what);
      if (how !== 'exit-during-start')
        assert.match(r.stdout, /results [1-9]\d* exits [1-9]/, `the thread and the poll callbacks were working when the process ended: ${what}`);
      runs.push(`${how}${how === 'exit-during-start' && !r.stdout.includes('(started)') ? ' (before ready)' : ''} ${ms} ms`);
    }
    console.log(`# process ends while the thread runs: ${runs.join(', ')}`);
  });
});
