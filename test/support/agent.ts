/**
 * Runs the real agent (`bin/taskstats-agent run`) as a child process with a temporary config, for
 * fault tests and benchmarks: waits for /readyz, scrapes its self-telemetry at /metrics into a map,
 * measures its CPU and memory from /proc, stops it with SIGTERM and measures how long it took.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { processCpuUsPrecise, processRssKb, repoRoot, sleep, waitFor } from './workload.js';

export const agentBin = join(repoRoot, 'bin', 'taskstats-agent');

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Is something accepting connections on 127.0.0.1:port? */
export function portIsOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.connect(port, host);
  });
}

/** A config written to a temporary folder readable by anyone (tests also run the agent as nobody). */
export function writeConfig(config: unknown): { file: string; dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ts-agent-'));
  chmodSync(dir, 0o755);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config), { mode: 0o644 });
  return { file, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A config document as YAML maps it; tests build and change them freely. */
export type ConfigDocument = Record<string, unknown>;

/** One log line: a structured (pino) record, or `{ msg: line }` for a line that is not JSON. */
export interface LogRecord {
  msg?: string;
  level?: string | number;
  component?: string;
  [field: string]: unknown;
}

/** The self-telemetry endpoint's address in a config (`service.telemetry.metrics.address`). */
export function withTelemetryAddress(config: ConfigDocument, address: string): ConfigDocument {
  const service = { ...(config.service as ConfigDocument | undefined) };
  const telemetry = { ...(service.telemetry as ConfigDocument | undefined) };
  telemetry.metrics = { ...(telemetry.metrics as ConfigDocument | undefined), address };
  service.telemetry = telemetry;
  return { ...config, service };
}

export interface PrometheusSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text format (what /metrics serves) into samples. */
export function parsePrometheusText(text: string): PrometheusSample[] {
  const out: PrometheusSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:.]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_.]*)="((?:[^"\\]|\\.)*)"/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3]))) labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m[4]!;
    out.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

export class MetricsSnapshot {
  constructor(
    readonly samples: PrometheusSample[],
    readonly text: string,
  ) {}
  /** Sum of every sample whose name matches (exactly, or by a RegExp) and whose labels include `labels`. */
  sum(name: string | RegExp, labels: Record<string, string | RegExp> = {}): number {
    let total = 0;
    for (const s of this.select(name, labels)) total += s.value;
    return total;
  }
  select(name: string | RegExp, labels: Record<string, string | RegExp> = {}): PrometheusSample[] {
    return this.samples.filter(
      (s) =>
        (typeof name === 'string' ? s.name === name : name.test(s.name)) &&
        Object.entries(labels).every(([k, v]) => (typeof v === 'string' ? s.labels[k] === v : v.test(s.labels[k] ?? ''))),
    );
  }
  /** Names present, for error messages. */
  names(): string[] {
    return [...new Set(this.samples.map((s) => s.name))].sort();
  }
}

export async function scrape(url: string, timeoutMs = 5000): Promise<MetricsSnapshot> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const text = await res.text();
  return new MetricsSnapshot(parsePrometheusText(text), text);
}

export interface AgentOptions {
  /** The configuration (an object is written as YAML; a string is written as is). */
  config: ConfigDocument | string;
  /**
   * Put the self-telemetry endpoint on a free loopback port (default true when `config` is an
   * object): service.telemetry.metrics.address is set to it.
   */
  telemetryPort?: boolean;
  env?: Record<string, string>;
  /** Extra arguments after `run --config FILE`. */
  args?: string[];
  /** Flags for node itself, before the agent's script (e.g. the image's `--max-semi-space-size=4`). */
  nodeArgs?: string[];
  /** Run through `setpriv ...` (e.g. as nobody without capabilities). */
  wrapper?: string[];
  /** Wait for /readyz (default true when a telemetry port is known). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
  /** Mirror the agent's stderr/stdout to this process's (for debugging). */
  echo?: boolean;
}

export interface StopResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds from the signal to the process's exit. */
  ms: number;
}

export class AgentProcess {
  stdout = '';
  stderr = '';
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly configFile: string,
    readonly baseUrl: string | undefined,
    private readonly cleanup: () => void,
  ) {
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Everything the agent logged (stdout and stderr). */
  get logs(): string {
    return this.stdout + this.stderr;
  }

  /**
   * Whether the agent logged `shutdown complete`: every shutdown step finished before the
   * shutdown deadline (else it logs `shutdown deadline reached` and exits anyway).
   */
  shutdownCompleted(): boolean {
    return this.logRecords().some((r) => r.msg === 'shutdown complete');
  }

  /** Log lines parsed as JSON where they are JSON (structured logs), else `{ msg: line }`. */
  logRecords(): LogRecord[] {
    return this.logs
      .split('\n')
      .filter(Boolean)
      .map((l): LogRecord => {
        try {
          const o = JSON.parse(l) as unknown;
          return typeof o === 'object' && o ? (o as LogRecord) : { msg: l };
        } catch {
          return { msg: l };
        }
      });
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  async metrics(): Promise<MetricsSnapshot> {
    if (!this.baseUrl) throw new Error('the agent has no known telemetry address');
    return scrape(`${this.baseUrl}/metrics`);
  }

  async get(path: string): Promise<Response> {
    if (!this.baseUrl) throw new Error('the agent has no known telemetry address');
    return fetch(`${this.baseUrl}${path}`, { signal: AbortSignal.timeout(5000) });
  }

  /** CPU time the agent has used so far (all threads), microseconds. */
  cpuUs(): number {
    return processCpuUsPrecise(this.pid);
  }

  rssKb(which: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
    return processRssKb(this.pid, which);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Send `sig` (SIGTERM) and wait for the exit; SIGKILL after `killAfterMs`. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', killAfterMs = 15_000): Promise<StopResult> {
    if (!this.running) {
      this.cleanup();
      return { ...this.exitInfo!, ms: 0 };
    }
    const t0 = performance.now();
    this.child.kill(sig);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    const r = await this.exited;
    const ms = performance.now() - t0;
    clearTimeout(timer);
    this.cleanup();
    return { ...r, ms };
  }

  /** For `after` hooks: never throws, never waits long. */
  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
      await Promise.race([this.exited, sleep(5000)]);
    }
    this.cleanup();
  }
}

/** Start the agent and (by default) wait until /readyz answers 200. */
export async function startAgent(opts: AgentOptions): Promise<AgentProcess> {
  let config = opts.config;
  let baseUrl: string | undefined;
  if (typeof config === 'object' && opts.telemetryPort !== false) {
    const port = await freePort();
    config = withTelemetryAddress(config, `127.0.0.1:${port}`);
    baseUrl = `http://127.0.0.1:${port}`;
  } else if (typeof config === 'object') {
    const addr = (config as { service?: { telemetry?: { metrics?: { address?: unknown } } } }).service?.telemetry?.metrics?.address;
    if (typeof addr === 'string') baseUrl = `http://${addr}`;
  }
  const cfg = writeConfig(config);
  const argv = [...(opts.nodeArgs ?? []), agentBin, 'run', '--config', cfg.file, ...(opts.args ?? [])];
  const command = opts.wrapper ? opts.wrapper[0]! : process.execPath;
  const args = opts.wrapper ? [...opts.wrapper.slice(1), process.execPath, ...argv] : argv;
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const agent = new AgentProcess(child, cfg.file, baseUrl, cfg.cleanup);
  if (opts.echo) {
    child.stdout.on('data', (d: Buffer) => process.stdout.write(d));
    child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
  }
  if (opts.waitReady ?? baseUrl !== undefined) {
    try {
      await waitFor(
        'the agent to answer /readyz',
        async () => {
          if (!agent.running) throw new Error(`the agent exited (${JSON.stringify(agent.exitInfo)}): ${agent.logs.slice(-2000)}`);
          const res = await agent.get('/readyz');
          return res.status === 200;
        },
        opts.readyTimeoutMs ?? 30_000,
        100,
      );
    } catch (e) {
      await agent.kill();
      throw e;
    }
  }
  return agent;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run `taskstats-agent ARGS` to completion (validate, a refused run ...), with a timeout. */
export function runAgentCommand(
  args: string[],
  opts: { wrapper?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; uid?: number; gid?: number } = {},
): Promise<CommandResult> {
  const command = opts.wrapper ? opts.wrapper[0]! : process.execPath;
  const fullArgs = opts.wrapper ? [...opts.wrapper.slice(1), process.execPath, agentBin, ...args] : [agentBin, ...args];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, fullArgs, {
      cwd: opts.cwd ?? repoRoot,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: opts.uid,
      gid: opts.gid,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`taskstats-agent ${args.join(' ')} still running after ${opts.timeoutMs ?? 20_000} ms\n${stdout}${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.on('error', reject);
    // 'close', not 'exit': it fires once stdout and stderr are drained.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** setpriv arguments that run a command as nobody with no capabilities at all. */
export const AS_NOBODY_WITHOUT_CAPS = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all'];
