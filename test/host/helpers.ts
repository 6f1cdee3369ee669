/** Helpers of the host tests: temporary config files, the agent as a real child process. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAgentCommand, type CommandResult } from '../support/agent.js';

/** The repository root (this file compiles to dist/test/host/helpers.js). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const agentBin = join(repoRoot, 'bin', 'taskstats-agent');
export const fixtures = join(repoRoot, 'test', 'host', 'fixtures');
export const testPlugins = join(fixtures, 'test-plugins.mjs');

export interface TempDir {
  dir: string;
  write(name: string, text: string): string;
  remove(): void;
}

export function tempDir(prefix = 'taskstats-host-'): TempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type { CommandResult } from '../support/agent.js';

/** Runs the agent CLI to completion (killed after timeoutMs); env is merged over process.env. */
export function runCli(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; uid?: number; gid?: number } = {},
): Promise<CommandResult> {
  return runAgentCommand(args, opts);
}

/** A running agent (`run`), with its logs parsed and its telemetry endpoint. */
export class RunningAgent {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((res) => child.on('close', (code, signal) => res((this.exit = { code, signal }))));
  }

  /** JSON log lines (stderr). */
  logs(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // partial line
      }
    }
    return out;
  }

  /** Waits until a log line satisfies `pred` (or the process exits, or the timeout). */
  async waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs().find(pred);
      if (hit) return hit;
      if (this.exit) throw new Error(`agent exited (${JSON.stringify(this.exit)}) before the expected log line\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`expected log line not seen within ${timeoutMs} ms\n${this.stderr}`);
      await sleep(25);
    }
  }

  /** The telemetry endpoint's address, from the agent's "listening" log line. */
  async address(): Promise<string> {
    const l = await this.waitForLog((x) => typeof x.address === 'string' && String(x.msg).includes('telemetry endpoint listening'));
    return String(l.address);
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`http://${await this.address()}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  }

  /** /metrics parsed: `name{labels}` -> value. */
  async metrics(): Promise<Map<string, number>> {
    const { body } = await this.get('/metrics');
    return parsePrometheus(body);
  }

  async waitReady(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await this.get('/readyz')).status === 200) return;
      } catch {
        // not listening yet
      }
      if (this.exit) throw new Error(`agent exited before ready\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`agent not ready within ${timeoutMs} ms\n${this.stderr}`);
      await sleep(25);
    }
  }

  /** Sends a signal and waits for exit (SIGKILL after timeoutMs, then throws). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = performance.now();
    if (!this.exit) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, ms: performance.now() - t0 };
  }

  /** Kills the process if still running (for cleanup in `finally`). */
  kill(): void {
    if (!this.exit) this.child.kill('SIGKILL');
  }
}

export function startAgent(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): RunningAgent {
  const child = spawn(process.execPath, [agentBin, ...args], { cwd: opts.cwd ?? repoRoot, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new RunningAgent(child);
}

export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** JSON lines a file_sink test exporter wrote. */
export function readSink(text: string): Array<{ event: string; id: string; scopes?: Record<string, Record<string, number>> }> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { event: string; id: string; scopes?: Record<string, Record<string, number>> });
}
