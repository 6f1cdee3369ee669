/**
 * Workloads whose truth is known exactly, for fault tests and benchmarks: short-lived processes in
 * a cgroup the test creates, fork loops with exact child counts, processes that move themselves
 * into a cgroup before exec, thousands of distinct command names, thousands of sleepers.
 *
 * Everything runs through tsload (tsload.c next to this file), compiled with cc once per test
 * process into a temporary folder. Cgroups are created under the cgroup v2 hierarchy
 * (/sys/fs/cgroup/unified here, /sys/fs/cgroup on v2-only hosts) and removed by `remove()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupV2Root, createTestCgroup } from './cgroup.js';

/** The repository root (this file compiles to dist/test/support/workload.js). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

let compiled: { dir: string; tsload: string; tsburn: string } | undefined;

/** Compile a C source with cc into a fresh temporary folder; returns the executable's path. */
export function compileC(source: string, name: string, extraArgs: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), `ts-${name}-`));
  const src = join(dir, `${name}.c`);
  writeFileSync(src, source);
  const out = join(dir, name);
  execFileSync('cc', ['-O2', '-Wall', '-o', out, src, ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/**
 * Paths of tsload and of a copy named `tsburn` (a process's comm is the basename of the file it
 * exec'd, so the exec'd burners are told apart from their launcher by name).
 */
export function tsload(): { tsload: string; tsburn: string } {
  if (!compiled) {
    const srcPath = join(repoRoot, 'test', 'support', 'tsload.c');
    const tsloadPath = compileC(readFileSync(srcPath, 'utf8'), 'tsload');
    const dir = dirname(tsloadPath);
    const tsburn = join(dir, 'tsburn');
    copyFileSync(tsloadPath, tsburn);
    execFileSync('chmod', ['755', tsburn, dir]);
    compiled = { dir, tsload: tsloadPath, tsburn };
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return compiled;
}

/**
 * A copy of tsload under another file name, so that its processes have their own comm (a
 * process's comm is the basename of what it exec'd; at most 15 characters).
 */
export function tsloadAs(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new Error(`tsloadAs: "${name}" is not a valid comm (1-15 characters)`);
  const { tsload: bin } = tsload();
  const path = join(dirname(bin), name);
  if (!existsSync(path)) {
    copyFileSync(bin, path);
    execFileSync('chmod', ['755', path]);
  }
  return path;
}

/**
 * Run tsload to completion; resolves with its stdout (the count it printed) or rejects on failure.
 * With `cgroupProcs`, tsload starts inside that cgroup: a shell writes its own pid into the
 * cgroup.procs file and then execs tsload (so tsload's exec already happens in the group).
 */
export function runTsload(args: string[], opts: { timeoutMs?: number; cgroupProcs?: string; bin?: string } = {}): Promise<number> {
  const bin = opts.bin ?? tsload().tsload;
  return new Promise((resolvePromise, reject) => {
    const child = opts.cgroupProcs
      ? spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', opts.cgroupProcs, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tsload ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 120_000} ms`));
    }, opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`tsload ${args.join(' ')} failed (${code ?? signal}): ${err.trim()}`));
      else resolvePromise(Number(out.trim().split('\n').pop()));
    });
  });
}

/** Exactly `n` children that exit at once. The tsload process itself exits too: n + 1 exits. */
export function forkCount(n: number): Promise<number> {
  return runTsload(['count', String(n)], { timeoutMs: 60_000 + n * 5 });
}

/**
 * Fork as fast as possible for `seconds`; resolves with the number of children (the loop process
 * itself is one more exit).
 */
export function forkLoop(seconds: number): Promise<number> {
  return runTsload(['loop', String(seconds)], { timeoutMs: seconds * 1000 + 60_000 });
}

/** `n` children, child i named `${prefix}${first + i}` (at most 15 characters). */
export function distinctNames(n: number, prefix: string, first = 0): Promise<number> {
  return runTsload(['names', String(n), prefix, String(first)], { timeoutMs: 60_000 + n * 5 });
}

// ---------------------------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------------------------

/** Mount point of the cgroup v2 hierarchy: /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup. */
export function cgroup2Root(): string {
  const root = cgroupV2Root();
  if (root === undefined) throw new Error('no cgroup2 hierarchy is mounted (looked in /proc/self/mountinfo)');
  return root;
}

export interface TestCgroup {
  /** Absolute directory, e.g. /sys/fs/cgroup/unified/taskstats-test-ts-accuracy-1234-1. */
  readonly dir: string;
  /** The path as processes see it in /proc/PID/cgroup (`0::/taskstats-test-ts-accuracy-1234-1`). */
  readonly path: string;
  readonly procsFile: string;
  /** cpu.stat usage_usec: CPU time of every task that ran in the group, dead or alive. */
  usageUsec(): number;
  /** Kill whatever is left in the group and remove it. */
  remove(): Promise<void>;
}

/** A fresh group under the v2 root (created and removed by ./cgroup.ts), with its CPU usage. */
export function createCgroup(name: string): TestCgroup {
  const cg = createTestCgroup(name);
  return {
    dir: cg.dir,
    path: cg.cgroupPath,
    procsFile: cg.procsFile,
    usageUsec() {
      const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(cg.dir, 'cpu.stat'), 'utf8'));
      if (!m) throw new Error(`${cg.dir}/cpu.stat has no usage_usec`);
      return Number(m[1]);
    },
    remove: () => cg.remove(),
  };
}

/**
 * `n` forked children in `cg`, each burning `burnUs` of CPU and named `name`: the launcher
 * (tsload) starts in the group, so the group holds the launcher and every child: n + 1 exits,
 * all in the group.
 */
export function forkedInCgroup(cg: TestCgroup, n: number, burnUs: number, name = 'tsburn', launcherName?: string): Promise<number> {
  return runTsload(['fork', String(n), String(burnUs), '', name], {
    timeoutMs: 120_000 + (n * burnUs) / 50,
    cgroupProcs: cg.procsFile,
    bin: launcherName ? tsloadAs(launcherName) : undefined,
  });
}

/** Exactly `n` children that exit at once, launched from inside `cg`: n + 1 exits in the group. */
export function forkCountInCgroup(cg: TestCgroup, n: number): Promise<number> {
  return runTsload(['count', String(n)], { timeoutMs: 60_000 + n * 5, cgroupProcs: cg.procsFile });
}

/** `n` children named `${prefix}${first + i}`, launched from inside `cg`: n + 1 exits in the group. */
export function distinctNamesInCgroup(cg: TestCgroup, n: number, prefix: string, first = 0): Promise<number> {
  return runTsload(['names', String(n), prefix, String(first)], { timeoutMs: 60_000 + n * 5, cgroupProcs: cg.procsFile });
}

/**
 * `n` processes that each move themselves into `cg` and then exec `tsburn burn burnUs` (what
 * container runtimes do for `kubectl exec` and exec probes). The launcher stays outside: n exits
 * in the group, all named `tsburn` (or `burnerName`).
 */
export function execMovedIntoCgroup(cg: TestCgroup, n: number, burnUs: number, burnerName?: string): Promise<number> {
  const burner = burnerName ? tsloadAs(burnerName) : tsload().tsburn;
  return runTsload(['exec', String(n), String(burnUs), cg.procsFile, burner], { timeoutMs: 120_000 + (n * burnUs) / 50 });
}

/** Thousands of sleeping processes (comm `tssleeper`) that live until `stop()`. */
export async function sleepers(n: number): Promise<{ pids: () => number[]; stop: () => Promise<void>; child: ChildProcess }> {
  const { tsload: bin } = tsload();
  const child = spawn(bin, ['sleepers', String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${n} sleepers not ready within 60 s`)), 60_000);
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(timer);
        res();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`tsload sleepers exited early (${code})`));
    });
  });
  return {
    child,
    pids: () => readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) {
          res();
          return;
        }
        child.once('exit', () => res());
        child.stdin.end();
        setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Measuring processes
// ---------------------------------------------------------------------------------------------

const CLK_TCK = 100;

/** utime + stime of a process (all its threads), microseconds, from /proc/PID/stat. */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is state (field 3); utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLK_TCK;
}

/**
 * CPU time of a process, microseconds, precise (sum of its threads' sum_exec_runtime from
 * /proc/PID/task/TID/schedstat), falling back to /proc/PID/stat ticks when schedstat is missing.
 */
export function processCpuUsPrecise(pid: number): number {
  try {
    let ns = 0;
    const tids = readdirSync(`/proc/${pid}/task`);
    for (const tid of tids) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* thread ended */
      }
    }
    return ns / 1000;
  } catch {
    return processCpuUs(pid);
  }
}

/** CPU time (microseconds, schedstat's sum_exec_runtime) of each thread of a process, by thread id, with its name. */
export function threadCpuUs(pid: number): Map<string, { name: string; us: number }> {
  const m = new Map<string, { name: string; us: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const us = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
      m.set(tid, { name, us });
    } catch {
      /* thread ended */
    }
  }
  return m;
}

/** CPU (microseconds) each thread name used between two threadCpuUs() readings (threads of one name summed). */
export function threadCpuByName(before: Map<string, { name: string; us: number }>, after: Map<string, { name: string; us: number }>): Map<string, number> {
  const byName = new Map<string, number>();
  for (const [tid, t] of after) byName.set(t.name, (byName.get(t.name) ?? 0) + t.us - (before.get(tid)?.us ?? 0));
  return byName;
}

/** Resident set size of a process in KiB (VmRSS), or its peak (VmHWM). */
export function processRssKb(pid: number, which: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`^${which}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const lastText = (last as Error | undefined)?.message ?? String(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${lastText}` : ''}`);
    }
    await sleep(everyMs);
  }
}
