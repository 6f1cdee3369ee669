// A big node against a backend slower than the export (docs/deploy.md "Memory"): 50,000 sleeping
// processes with 50,000 command names (bench/curve's crowd.c), the default config.yaml pipeline
// exporting over OTLP to a real VictoriaMetrics, 5 s cycles, default series_limit. For each
// variant (alternated in one run): RSS every second, /metrics scraped every 2 s (the time each
// scrape took; one that takes over 60 s counts as failed), the exporter's queue and drops.
//   flock /work/coord/probe.lock node bench/memory/big-node.mjs [name[@root][=FLAGS] ...]
// Variants as in bench/memory/probe.mjs. Env: BIG_PROCESSES (50000), BIG_SECONDS (70), BIG_ROUNDS (1),
// BIG_BACKEND (vm; `hang`: a backend that accepts connections and never answers, so every send
// times out and is retried: the sending queue fills).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, writeConfig, withTelemetryAddress } from '../../dist/test/support/agent.js';
import { compileC, sleep } from '../../dist/test/support/workload.js';
import { benchAgentConfig } from '../lib/agent-config.mjs';
import { log, result } from '../lib/report.mjs';
import { startVictoriaMetrics } from '../lib/vm.mjs';

const root = new URL('../..', import.meta.url).pathname;
const PROCS = Number(process.env.BIG_PROCESSES ?? 50_000);
const SECONDS = Number(process.env.BIG_SECONDS ?? 70);
const ROUNDS = Number(process.env.BIG_ROUNDS ?? 1);
const crowdBin = compileC(readFileSync(join(root, 'bench/curve/crowd.c'), 'utf8'), 'crowd', ['-pthread']);

const variants = (process.argv.slice(2).length ? process.argv.slice(2) : ['shipped']).map((a) => {
  const m = /^([^@=]+)(?:@([^=]+))?(?:=(.*))?$/.exec(a);
  if (!m) throw new Error(`variant ${a}: name[@root][=flags]`);
  return { name: m[1], root: m[2] ?? root, flags: m[3] === undefined ? undefined : m[3].split(/\s+/).filter(Boolean) };
});

const PID_MAX = '/proc/sys/kernel/pid_max';
const pidMax0 = readFileSync(PID_MAX, 'utf8').trim();
const hostProcesses = () => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length;
const need = hostProcesses() + PROCS * 2 + 20_000;
if (Number(pidMax0) < need) writeFileSync(PID_MAX, String(Math.min(4_194_304, Math.max(need, 131_072))));

const status = (pid, key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

/** One scrape of /metrics: [ms it took or Infinity, body]. */
async function timedScrape(url) {
  const t0 = Date.now();
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(60_000) });
    const body = await res.text();
    return [Date.now() - t0, body];
  } catch {
    return [Infinity, ''];
  }
}
const sumOf = (body, name) =>
  body
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

async function runVariant(v, vm) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cfg = writeConfig(withTelemetryAddress(benchAgentConfig({ otlpMetricsUrl: vm.otlpMetricsUrl, collectionInterval: '5s' }), `127.0.0.1:${port}`));
  const bin = join(v.root, 'bin', 'taskstats-agent');
  const args = ['run', '--config', cfg.file];
  const child =
    v.flags === undefined
      ? spawn(bin, args, { cwd: v.root, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(join(v.root, 'node_modules', '.bin', 'node'), [...v.flags, bin, ...args], { cwd: v.root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-200_000)));
  const rss = [];
  const scrapes = [];
  let last = '';
  const t0 = Date.now();
  const sampler = setInterval(() => {
    try {
      rss.push(status(child.pid, 'VmRSS') / 1024);
    } catch {
      /* gone */
    }
  }, 1000);
  try {
    while (Date.now() - t0 < SECONDS * 1000) {
      if (child.exitCode !== null) throw new Error(`${v.name}: the agent exited: ${stderr.slice(-2000)}`);
      const [ms, body] = await timedScrape(url);
      if (Date.now() - t0 > 10_000) scrapes.push(ms); // after start-up
      if (body) last = body;
      await sleep(2000);
    }
    const hwm = status(child.pid, 'VmHWM') / 1024;
    clearInterval(sampler);
    const sorted = [...scrapes].sort((a, b) => a - b);
    const r = {
      hwm,
      rssEnd: rss.at(-1),
      rssAt30: rss[30],
      scrapeMedianMs: sorted[Math.floor(sorted.length / 2)],
      scrapeMaxMs: sorted.at(-1),
      scrapesFailed: scrapes.filter((s) => s === Infinity).length,
      scrapes: scrapes.length,
      queueItems: sumOf(last, 'taskstats_agent_exporter_queue_items{'),
      queueBatches: sumOf(last, 'taskstats_agent_exporter_queue_size{'),
      queueFullDropped: last
        .split('\n')
        .filter((l) => l.startsWith('taskstats_agent_component_dropped_items_total{') && l.includes('reason="queue_full"'))
        .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0),
      sentPoints: sumOf(last, 'taskstats_agent_exporter_sent_points_total'),
      collections: sumOf(last, 'taskstats_agent_pipeline_collections_total'),
    };
    log(
      `${v.name.padEnd(10)} VmHWM ${hwm.toFixed(0)} MiB, RSS at 30 s ${r.rssAt30?.toFixed(0)}, at the end ${r.rssEnd?.toFixed(0)}; /metrics median ${r.scrapeMedianMs} ms, max ${r.scrapeMaxMs} ms, ${r.scrapesFailed} of ${r.scrapes} failed;` +
        ` queue ${r.queueBatches} batches / ${r.queueItems} items, queue_full ${r.queueFullDropped}; ${r.collections} collections, ${r.sentPoints} points sent; RSS ${rss.map((x) => x.toFixed(0)).join(' ')}`,
    );
    return r;
  } finally {
    clearInterval(sampler);
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    cfg.cleanup();
  }
}

const crowd = spawn(crowdBin, [String(PROCS), '1', String(PROCS), 'bn'], { stdio: ['pipe', 'pipe', 'inherit'] });
await new Promise((resolve, reject) => {
  let out = '';
  crowd.stdout.on('data', (d) => {
    out += d;
    if (out.includes('ready')) resolve();
  });
  crowd.on('exit', (code) => reject(new Error(`crowd exited early (${code})`)));
});
log(`${PROCS} sleeping processes with ${PROCS} names`);
const HANG = process.env.BIG_BACKEND === 'hang';
const held = [];
const hang = HANG ? createServer((socket) => held.push(socket.on('error', () => {}))) : undefined;
if (hang) await new Promise((r) => hang.listen(0, '127.0.0.1', r));
const vm = HANG ? { otlpMetricsUrl: `http://127.0.0.1:${hang.address().port}/v1/metrics`, stop: async () => {} } : await startVictoriaMetrics();
log(`backend: ${HANG ? 'one that never answers' : 'VictoriaMetrics'}`);
const results = new Map(variants.map((v) => [v.name, []]));
try {
  for (let round = 1; round <= ROUNDS; round++) for (const v of variants) results.get(v.name).push(await runVariant(v, vm));
} finally {
  await vm.stop();
  for (const s of held) s.destroy();
  hang?.close();
  crowd.stdin.end();
  await new Promise((r) => {
    crowd.once('exit', r);
    setTimeout(() => crowd.kill('SIGKILL'), 60_000).unref();
  });
  if (readFileSync(PID_MAX, 'utf8').trim() !== pidMax0) writeFileSync(PID_MAX, pidMax0);
}
for (const [name, rs] of results) {
  const hwm = rs.map((r) => r.hwm).sort((a, b) => a - b);
  result({
    name: `big node ${name}: VmHWM`,
    value: hwm[Math.floor(hwm.length / 2)],
    unit: 'MiB',
    detail: `/metrics max ${rs.map((r) => r.scrapeMaxMs).join(', ')} ms; ${rs.map((r) => r.scrapesFailed).join(', ')} failed`,
  });
}
