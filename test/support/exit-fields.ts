/**
 * The kernel's exit records as the kernel's own header describes them, for tests of what the agent
 * derives from exit records: exit-fields.c (next to this file), a minimal C listener on a raw
 * netlink socket that shares no code with the agent, compiled with cc once per test process.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { compileC, repoRoot } from './workload.js';

export interface ExitFieldsRecord {
  aggregate: 'pid' | 'tgid';
  pid: number;
  tgid: number;
  flag: number;
  elapsedUs: number;
  /** ac_tgetime: since the thread group's leader started (struct version >= 12). */
  groupElapsedUs: number;
  runVirtualNs: number;
  hiwaterRssKb: number;
  cpuDelayNs: number;
  utimeUs: number;
  stimeUs: number;
  comm: string;
}

export interface ExitFields {
  /** Thread records so far whose comm is `comm`. */
  ofComm(comm: string): ExitFieldsRecord[];
  /** Every record so far, thread and group records, in arrival order. */
  all(): readonly ExitFieldsRecord[];
  stop(): Promise<void>;
}

let binary: string | undefined;

export async function startExitFields(): Promise<ExitFields> {
  binary ??= compileC(readFileSync(join(repoRoot, 'test', 'support', 'exit-fields.c'), 'utf8'), 'exit-fields');
  const child = spawn(binary, [`0-${availableParallelism() - 1}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const records: ExitFieldsRecord[] = [];
  let buf = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const f = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      if (f.length < 12) continue;
      const n = f.slice(1, 11).map(Number) as [number, number, number, number, number, number, number, number, number, number];
      records.push({
        aggregate: f[0] === 'tgid' ? 'tgid' : 'pid',
        pid: n[0],
        tgid: n[1],
        flag: n[2],
        elapsedUs: n[3],
        groupElapsedUs: n[4],
        runVirtualNs: n[5],
        hiwaterRssKb: n[6],
        cpuDelayNs: n[7],
        utimeUs: n[8],
        stimeUs: n[9],
        comm: f.slice(11).join(' '),
      });
    }
  });
  child.stderr.on('data', (d) => (err += String(d)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`exit-fields not ready within 10 s: ${err}`)), 10_000);
    child.stderr.on('data', () => {
      if (err.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exit-fields ended (${String(code)}): ${err}`));
    });
  });
  return {
    ofComm: (comm) => records.filter((r) => r.aggregate === 'pid' && r.comm === comm),
    all: () => records,
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
