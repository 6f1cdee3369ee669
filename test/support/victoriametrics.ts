/**
 * A real VictoriaMetrics for end-to-end tests: started on loopback on a free port with a
 * throwaway storage folder, waited for until healthy, queried through its HTTP API, and stopped
 * (with its folder removed) by stop().
 *
 * The binary comes from scripts/fetch-victoriametrics.sh (.cache/victoria-metrics/), run here
 * when it is missing; VICTORIA_METRICS_BIN overrides the path.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  // Compiled to dist/test/support/ (or run from test/support/ with tsx): walk up to the folder
  // that holds scripts/fetch-victoriametrics.sh.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'scripts', 'fetch-victoriametrics.sh'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('victoriametrics: cannot find the repository root (scripts/fetch-victoriametrics.sh)');
}

/** Path of the victoria-metrics binary, fetching it when missing. */
export function victoriaMetricsBinary(): string {
  const fromEnv = process.env.VICTORIA_METRICS_BIN;
  if (fromEnv) return fromEnv;
  const root = findRepoRoot();
  const bin = join(root, '.cache', 'victoria-metrics', 'usr', 'bin', 'victoria-metrics');
  if (existsSync(bin)) return bin;
  const r = spawnSync('bash', [join(root, 'scripts', 'fetch-victoriametrics.sh')], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0 || !existsSync(bin)) {
    throw new Error(`victoriametrics: scripts/fetch-victoriametrics.sh failed (${r.status}): ${r.stderr}`);
  }
  return bin;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface ExportedSeries {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

export interface VictoriaMetrics {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Base URL for an OTLP exporter's `endpoint` (/v1/metrics is appended by the exporter). */
  readonly otlpEndpoint: string;
  /** Full OTLP/HTTP protobuf metrics URL. */
  readonly otlpMetricsUrl: string;
  /** Make everything ingested so far searchable (VM's /internal/force_flush). */
  flush(): Promise<void>;
  /** PromQL instant query; returns the result vector. */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  /** Raw samples of the series matching a selector (/api/v1/export). */
  exportSeries(match: string): Promise<ExportedSeries[]>;
  /** The label values VM knows for `label` (e.g. `__name__`). */
  labelValues(label: string): Promise<string[]>;
  /** Polls `probe` (after a flush) until it returns a value other than undefined. */
  waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs?: number): Promise<T>;
  /** Output VM printed (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/** GET a JSON answer of VictoriaMetrics' HTTP API; T is the shape its documentation gives. */
async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

export async function startVictoriaMetrics(opts: { extraArgs?: string[]; startTimeoutMs?: number; port?: number } = {}): Promise<VictoriaMetrics> {
  const bin = victoriaMetricsBinary();
  const dataDir = mkdtempSync(join(tmpdir(), 'vm-e2e-'));
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  // With setpriv (util-linux) VictoriaMetrics is killed when the test process dies, even by
  // SIGKILL (PR_SET_PDEATHSIG): an interrupted test run leaves no server behind.
  const command = existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : bin;
  const prefix = command === bin ? [] : ['--pdeathsig', 'KILL', bin];
  const child: ChildProcess = spawn(
    command,
    [
      ...prefix,
      `-httpListenAddr=127.0.0.1:${port}`,
      `-storageDataPath=${dataDir}`,
      '-retentionPeriod=1d',
      // Samples are visible to queries at once (the default hides the last 30 s).
      '-search.latencyOffset=0s',
      '-search.disableCache',
      '-loggerLevel=WARN',
      '-memory.allowedPercent=10',
      ...(opts.extraArgs ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 100_000) output = output.slice(-50_000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exited = false as boolean; // set by the exit handler
  const exitedPromise = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  // A test process that ends without stop() (an uncaught failure) still ends its server.
  const killOnExit = () => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exitedPromise;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`victoria-metrics exited at start:\n${output}`);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`victoria-metrics not healthy after ${opts.startTimeoutMs ?? 20_000} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const vm: VictoriaMetrics = {
    url,
    otlpEndpoint: `${url}/opentelemetry`,
    otlpMetricsUrl: `${url}/opentelemetry/v1/metrics`,
    async flush() {
      const res = await fetch(`${url}/internal/force_flush`, { signal: AbortSignal.timeout(10_000) });
      await res.text();
    },
    async query(promql) {
      const body = await getJson<{ data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }>(
        `${url}/api/v1/query?query=${encodeURIComponent(promql)}`,
      );
      return body.data.result.map((r) => ({
        metric: r.metric,
        value: Number(r.value[1]),
      }));
    },
    async exportSeries(match) {
      const res = await fetch(`${url}/api/v1/export?match[]=${encodeURIComponent(match)}`, { signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (!res.ok) throw new Error(`export ${match}: HTTP ${res.status}: ${text.slice(0, 500)}`);
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as ExportedSeries);
    },
    async labelValues(label) {
      const body = await getJson<{ data: string[] }>(`${url}/api/v1/label/${encodeURIComponent(label)}/values`);
      return body.data;
    },
    async waitFor(probe, what, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      let lastError: unknown;
      for (;;) {
        try {
          await vm.flush();
          const v = await probe();
          if (v !== undefined) return v;
        } catch (error) {
          lastError = error;
        }
        if (Date.now() > until) {
          const lastText = String(lastError);
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastText}` : ''}\nVM log:\n${output.slice(-2000)}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    log: () => output,
    stop,
  };
  return vm;
}
