// The baseline users run today: prometheus-process-exporter (Debian package), a /proc scraper.
// Installed with apt-get when missing; started on a free loopback port with the configuration its
// documentation suggests for "every process, grouped by name".
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, scrape } from '../../dist/test/support/agent.js';
import { processCpuUsPrecise, waitFor } from '../../dist/test/support/workload.js';

export const PROCESS_EXPORTER = '/usr/bin/prometheus-process-exporter';

export function ensureProcessExporter() {
  if (existsSync(PROCESS_EXPORTER)) return PROCESS_EXPORTER;
  console.error('installing prometheus-process-exporter with apt-get (baseline for the benchmarks)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus-process-exporter'], { env, stdio: 'inherit' });
  } catch {
    execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus-process-exporter'], { env, stdio: 'inherit' });
  }
  // The package enables a systemd service; the benchmark runs its own instance only.
  return PROCESS_EXPORTER;
}

export function processExporterVersion() {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'prometheus-process-exporter'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Start process-exporter. `extraArgs` e.g. ['-gather-smaps=false'] for a lighter variant.
 * `listenTimeoutMs`: it reads /proc before it listens (tens of seconds with 20,000 processes).
 * Returns { url, pid, scrape(), cpuUs(), stop() }.
 */
export async function startProcessExporter(extraArgs = [], { listenTimeoutMs = 20_000 } = {}) {
  const bin = ensureProcessExporter();
  const dir = mkdtempSync(join(tmpdir(), 'ts-pe-'));
  const configFile = join(dir, 'process-exporter.yaml');
  // Every process, one group per command name: what its README suggests for "all processes".
  writeFileSync(configFile, 'process_names:\n  - name: "{{.Comm}}"\n    cmdline:\n    - \'.+\'\n');
  const port = await freePort();
  const child = spawn(bin, ['-config.path', configFile, '-web.listen-address', `127.0.0.1:${port}`, ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}/metrics`;
  await waitFor(
    'process-exporter to listen',
    async () => {
      if (exited) throw new Error(`process-exporter exited: ${stderr}`);
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
      return r.status < 500;
    },
    listenTimeoutMs,
  );
  return {
    url,
    pid: child.pid,
    scrape: (timeoutMs = 60_000) => scrape(url, timeoutMs),
    cpuUs: () => processCpuUsPrecise(child.pid),
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
        if (!exited) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** CPU microseconds process-exporter spends per scrape (mean of `n` scrapes after a warm-up one). */
export async function cpuPerScrape(pe, n = 3) {
  await pe.scrape();
  const perScrape = [];
  for (let i = 0; i < n; i++) {
    const before = pe.cpuUs();
    await pe.scrape();
    // Let any work after the response (garbage collection) land in this scrape's account.
    await new Promise((r) => setTimeout(r, 300));
    perScrape.push(pe.cpuUs() - before);
  }
  return { meanUs: perScrape.reduce((a, b) => a + b, 0) / n, perScrapeUs: perScrape };
}
