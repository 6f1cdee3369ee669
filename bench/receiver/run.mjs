#!/usr/bin/env node
// Benchmark of the taskstats receiver's exit path (issue 3, item 10), measured in one run:
// two fork loops (C, ~thousands of exits/s each) against
//   (a) floor.c: a minimal C listener on a raw netlink socket (the floor), and
//   (b) listener.mjs: the full receiver (metadata + accounting) consuming into a counting sink,
// both listening at the same time to the same exits. Prints exits lost per listener and CPU per
// exit, and the ratio receiver / floor. Target: 0 lost, ratio <= 2.5.
// usage: npm run bench:receiver [-- --seconds 5 --runs 3]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const seconds = opt('seconds', 5);
const runs = opt('runs', 3);

if (process.getuid?.() !== 0) {
  console.error('bench:receiver needs root (CAP_NET_ADMIN) for taskstats');
  process.exit(1);
}
const out = join(root, '.cache', 'bench');
mkdirSync(out, { recursive: true });
for (const prog of ['floor', 'forkloop']) {
  const r = spawnSync('cc', ['-O2', '-o', join(out, prog), join(here, `${prog}.c`)], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench:receiver: cannot compile ${prog}.c (is a C compiler installed? apt-get install gcc libc6-dev)`);
    process.exit(1);
  }
}
if (!existsSync(join(root, 'dist', 'plugins', 'taskstats', 'receiver.js'))) {
  console.error('bench:receiver: run "npm run build" first');
  process.exit(1);
}

function waitReady(child, name) {
  return new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`${name} not ready after 15 s: ${err}`)), 15_000);
    child.stderr.on('data', (d) => {
      err += d;
      if (err.includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${err}`)));
  });
}
function collect(child) {
  return new Promise((resolve) => {
    let s = '';
    child.stdout.on('data', (d) => (s += d));
    child.once('close', () => resolve(s.trim()));
  });
}
const cpus = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();

async function once() {
  const loops = [0, 1].map(() => spawn(join(out, 'forkloop'), [String(seconds)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const loopCounts = loops.map(collect);
  const ppids = loops.map((l) => String(l.pid));
  const floor = spawn(join(out, 'floor'), [cpus, String(16 << 20), String(seconds + 60), ...ppids], { stdio: ['ignore', 'pipe', 'pipe'] });
  const receiver = spawn(process.execPath, [join(here, 'listener.mjs'), ...ppids], { stdio: ['ignore', 'pipe', 'pipe'] });
  const floorOut = collect(floor);
  const receiverOut = collect(receiver);
  await Promise.all([waitReady(floor, 'floor'), waitReady(receiver, 'receiver')]);
  for (const l of loops) l.stdin.end('g');
  const children = (await Promise.all(loopCounts)).reduce((s, x) => s + Number(x), 0);
  await new Promise((r) => setTimeout(r, 1000)); // let both drain
  floor.kill('SIGTERM');
  receiver.kill('SIGTERM');
  const f = JSON.parse(await floorOut);
  const r = JSON.parse(await receiverOut);
  return { children, rate: children / seconds, floor: f, receiver: r };
}

const results = [];
const warnings = new Set();
for (let i = 0; i < runs; i++) {
  const x = await once();
  const fus = x.floor.cpu_us / x.children;
  const rus = x.receiver.cpu_us / x.children;
  // Both listeners hear every exit of the machine, not only the loops' children: with other
  // work running, CPU per exit received (all) is the fairer comparison; without, both agree.
  const others = Math.max(0, x.floor.all - x.children);
  const fusAll = x.floor.cpu_us / Math.max(1, x.floor.all);
  const rusAll = x.receiver.cpu_us / Math.max(1, x.receiver.datagrams);
  results.push({ ...x, fus, rus, ratio: rus / fus, ratioAll: rusAll / fusAll });
  console.log(
    `run ${i + 1}: ${x.children} exits (${Math.round(x.rate)}/s), ${others} other exits on the machine | floor: lost ${x.children - x.floor.exits}, ${fus.toFixed(1)} us/exit | ` +
      `receiver: lost ${x.children - x.receiver.exits}, kernel drops ${x.receiver.kernel_drops}, ${rus.toFixed(1)} us/exit, ${x.receiver.samples} samples in ${x.receiver.batches} batches | ` +
      `ratio ${(rus / fus).toFixed(2)}x (per exit received: ${fusAll.toFixed(1)} vs ${rusAll.toFixed(1)} us, ${(rusAll / fusAll).toFixed(2)}x)`,
  );
  for (const w of x.receiver.warnings) warnings.add(w);
}
for (const w of warnings) console.log(`receiver warning: ${w}`);
console.log(`load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
const med = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const lostFloor = results.reduce((s, x) => s + x.children - x.floor.exits, 0);
const lostReceiver = results.reduce((s, x) => s + x.children - x.receiver.exits, 0);
console.log(
  `median of ${runs}: ${Math.round(med(results.map((x) => x.rate)))} exits/s; floor ${med(results.map((x) => x.fus)).toFixed(1)} us/exit; ` +
    `receiver ${med(results.map((x) => x.rus)).toFixed(1)} us/exit; ratio ${med(results.map((x) => x.ratio)).toFixed(2)}x (target <= 2.5x; ` +
    `per exit received ${med(results.map((x) => x.ratioAll)).toFixed(2)}x); ` +
    `lost: floor ${lostFloor}, receiver ${lostReceiver} (target 0)`,
);
process.exitCode = lostReceiver === 0 ? 0 : 1;
