#!/usr/bin/env node
// Where a live sweep's CPU goes, per process, on N sleeping processes (default 5,000) plus the
// host's own: each choice of plugins/taskstats/live-poller.ts next to the alternative it replaced,
// and the shipped sweep next to a C floor (list /proc, GET by TGID of each, nothing parsed), all
// measured in this run. Not part of `npm run bench` (bench.mjs is this folder's entry).
// usage: flock /tmp/bench.lock node bench/live/sweep-micro.mjs [--processes 5000] [--rounds 5]
//        (root, after `npx tsc -p .`; cc for the floor)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { LivePoller } from '../../dist/plugins/taskstats/live-poller.js';
import { listProcessIds } from '../../dist/plugins/taskstats/proc-listing.js';
import { TaskstatsSocket } from '../../dist/plugins/taskstats/libnl.js';
import { DatagramBatch } from '../../dist/plugins/taskstats/libc.js';
import { TaskstatsParser, fillRecord } from '../../dist/plugins/taskstats/parser.js';
import { copyTaskRecord, newTaskRecord } from '../../dist/plugins/taskstats/record.js';
import { compileC, sleepers } from '../../dist/test/support/workload.js';
import { rerunUnderShippedFlags } from '../lib/shipped-flags.mjs';

rerunUnderShippedFlags();

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? Number(args[args.indexOf(`--${n}`) + 1]) : d);
const N = opt('processes', 5000);
const ROUNDS = opt('rounds', 5);
const REPEAT = 3;
const BATCH = 64;

const floorBin = compileC(readFileSync(new URL('./get-floor.c', import.meta.url), 'utf8'), 'get-floor');
const procs = await sleepers(N);
try {
  const { ids, count } = listProcessIds('/proc', new Int32Array(8192), Buffer.alloc(1 << 17));
  const pids = Array.from(ids.subarray(0, count));
  console.log(
    `${count} processes in /proc (${N} sleepers); load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${cpus().length} cpus`,
  );

  /** CPU (user + system) per unit of fn's work, in microseconds; fn returns how many units it did. */
  const cpuPer = async (fn) => {
    const c0 = process.cpuUsage();
    let units = 0;
    for (let r = 0; r < ROUNDS; r++) units += await fn();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / units;
  };

  const sock = TaskstatsSocket.open({ receiveBuffer: 8 << 20 });
  const parser = new TaskstatsParser(sock.familyId);
  const one = Buffer.alloc(4096);
  const batch = new DatagramBatch(BATCH, 2048);
  const record = newTaskRecord();
  const other = newTaskRecord();
  // one reply to parse, as the sweep gets it (aligned in a receive buffer)
  sock.sendGets('tgid', [process.pid], 0, 1);
  const replyLen = sock.recv(one);
  parser.locate(one, 0, replyLen);
  const statsOff = parser.statsOff;
  const statsLen = parser.statsLen;
  const words = new Uint32Array(one.buffer, one.byteOffset, one.length >>> 2);
  const loops = 200_000;

  const measures = {
    'C floor: GET by TGID, 64 per send(), recv() each, no parse': () => {
      const out = execFileSync(floorBin, [String(ROUNDS), String(BATCH)], { encoding: 'utf8' })
        .trim()
        .split(' ');
      return Number(out[0]);
    },
    'C floor: list /proc (getdents64)': () => {
      const out = execFileSync(floorBin, [String(ROUNDS), String(BATCH)], { encoding: 'utf8' })
        .trim()
        .split(' ');
      return Number(out[3]);
    },
    'GETs from Node, one recv() per reply (before)': () =>
      cpuPer(() => {
        let got = 0;
        for (let i = 0; i < pids.length; i += BATCH) {
          const k = Math.min(BATCH, pids.length - i);
          sock.sendGets('tgid', pids, i, k);
          for (let j = 0; j < k; j++) if (sock.recv(one) > 0) got++;
        }
        return pids.length;
      }),
    'GETs from Node, recvmmsg() per 64 replies (shipped)': () =>
      cpuPer(() => {
        for (let i = 0; i < pids.length; i += BATCH) {
          const k = Math.min(BATCH, pids.length - i);
          sock.sendGets('tgid', pids, i, k);
          for (let left = k; left > 0;) {
            const n = sock.recvMany(batch, left);
            if (n <= 0) break;
            left -= n;
          }
        }
        return pids.length;
      }),
    'list /proc: fs.readdir + Number() (before)': () =>
      cpuPer(async () => {
        const out = [];
        for (const n of await readdir('/proc')) {
          const c = n.charCodeAt(0);
          if (c >= 48 && c <= 57) out.push(Number(n));
        }
        return out.length;
      }),
    'list /proc: getdents64, digits from the bytes (shipped)': () =>
      cpuPer(() => {
        const buf = Buffer.alloc(1 << 17);
        return listProcessIds('/proc', new Int32Array(8192), buf).count;
      }),
    'read 140 words of a reply: Buffer.readUInt32LE (before)': () =>
      cpuPer(() => {
        let s = 0;
        for (let i = 0; i < loops; i++) for (let k = 0; k < 140; k++) s += one.readUInt32LE(statsOff + 4 * k);
        return s > 0 ? loops : loops;
      }),
    'read 140 words of a reply: Uint32Array (shipped)': () =>
      cpuPer(() => {
        let s = 0;
        const base = statsOff >>> 2;
        for (let i = 0; i < loops; i++) for (let k = 0; k < 140; k++) s += words[base + k];
        return s > 0 ? loops : loops;
      }),
    'fillRecord, one whole record (shipped parser)': () =>
      cpuPer(() => {
        for (let i = 0; i < loops; i++) fillRecord(one, statsOff, statsLen, record);
        return loops;
      }),
    'copy a TaskRecord: Object.assign (before)': () =>
      cpuPer(() => {
        for (let i = 0; i < loops; i++) {
          record.userUs = i;
          Object.assign(other, record);
        }
        return loops;
      }),
    'copy a TaskRecord: copyTaskRecord, made from the field table (shipped)': () =>
      cpuPer(() => {
        for (let i = 0; i < loops; i++) {
          record.userUs = i;
          copyTaskRecord(record, other);
        }
        return loops;
      }),
    "a multi-threaded group's /proc/PID/{io,stat}: readFileSync + split (before)": () =>
      cpuPer(() => {
        for (const pid of pids) {
          try {
            const io = readFileSync(`/proc/${pid}/io`, 'latin1');
            const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
            const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            record.writeCharBytes = Number(/wchar: (\d+)/.exec(io)?.[1] ?? 0) + Number(fields[7]);
          } catch {
            // gone
          }
        }
        return pids.length;
      }),
    "a multi-threaded group's /proc/PID/{io,stat}: ProcReader, parsed from the bytes (shipped)": () => {
      const poller = new LivePoller();
      return cpuPer(() => {
        for (const pid of pids) {
          record.tgid = pid;
          poller['readGroupCounters'](record);
        }
        return pids.length;
      });
    },
    'shipped sweep, steady state (idle processes from the cache)': async () => {
      const poller = new LivePoller();
      poller.open();
      await poller.sweep(() => {});
      await poller.sweep(() => {});
      const us = await cpuPer(async () => (await poller.sweep(() => {})).listed);
      poller.close();
      return us;
    },
    'shipped sweep, first (every process new: TGID + PID GET, full parse)': async () => {
      const poller = new LivePoller();
      poller.open();
      const c0 = process.cpuUsage();
      const st = await poller.sweep(() => {});
      const c = process.cpuUsage(c0);
      poller.close();
      return (c.user + c.system) / st.listed;
    },
  };

  const results = {};
  for (let r = 0; r < REPEAT; r++) for (const [name, fn] of Object.entries(measures)) (results[name] ??= []).push(await fn());
  sock.close();
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const m = {};
  for (const [name, xs] of Object.entries(results)) {
    m[name] = med(xs);
    const unit = /140 words|fillRecord|copy a/.test(name) ? `${(m[name] * 1000).toFixed(0).padStart(6)} ns` : `${m[name].toFixed(2).padStart(6)} us`;
    console.log(`${unit}  ${name}   (runs: ${xs.map((x) => x.toFixed(3)).join(', ')})`);
  }
  const ratio = (a, b) => (m[a] / m[b]).toFixed(1);
  const floor = m['C floor: GET by TGID, 64 per send(), recv() each, no parse'] + m['C floor: list /proc (getdents64)'];
  console.log('--- ratios, same run');
  console.log(
    `replies: recv() each / recvmmsg()              ${ratio('GETs from Node, one recv() per reply (before)', 'GETs from Node, recvmmsg() per 64 replies (shipped)')}x`,
  );
  console.log(
    `listing: fs.readdir / getdents64              ${ratio('list /proc: fs.readdir + Number() (before)', 'list /proc: getdents64, digits from the bytes (shipped)')}x`,
  );
  console.log(
    `words: readUInt32LE / Uint32Array             ${ratio('read 140 words of a reply: Buffer.readUInt32LE (before)', 'read 140 words of a reply: Uint32Array (shipped)')}x`,
  );
  console.log(
    `record copy: Object.assign / from the table   ${ratio('copy a TaskRecord: Object.assign (before)', 'copy a TaskRecord: copyTaskRecord, made from the field table (shipped)')}x`,
  );
  console.log(
    `group /proc reads: readFileSync / ProcReader   ${ratio("a multi-threaded group's /proc/PID/{io,stat}: readFileSync + split (before)", "a multi-threaded group's /proc/PID/{io,stat}: ProcReader, parsed from the bytes (shipped)")}x`,
  );
  console.log(
    `steady sweep / C floor (list + GETs)          ${(m['shipped sweep, steady state (idle processes from the cache)'] / floor).toFixed(2)}x  (${m['shipped sweep, steady state (idle processes from the cache)'].toFixed(2)} vs ${floor.toFixed(2)} us per process)`,
  );
} finally {
  await procs.stop();
}
process.exit(0);
