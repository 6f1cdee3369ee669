#!/usr/bin/env node
// Cost of one live sweep per process (issue 3, item 4): the options for completing a thread
// group's record, measured on N extra sleeping processes (default 5,000) plus the host's own.
// usage: node bench/receiver/live-sweep.mjs [--processes 5000] [--rounds 3]   (root; after npm run build)
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LivePoller } from '../../dist/plugins/taskstats/live-poller.js';
import { TaskstatsSocket } from '../../dist/plugins/taskstats/libnl.js';
import { TaskstatsParser } from '../../dist/plugins/taskstats/parser.js';
import { newTaskRecord } from '../../dist/plugins/taskstats/record.js';

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? Number(args[args.indexOf(`--${n}`) + 1]) : d);
const N = opt('processes', 5000);
const rounds = opt('rounds', 3);

const sleepers = spawn('perl', ['-e', `$|=1; for (1..${N}) { my $p = fork; if (defined $p && !$p) { sleep 600; exit 0 } } print "ready\\n"; sleep 600`], {
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
await new Promise((r) => sleepers.stdout.once('data', r));
const cleanup = () => {
  try {
    process.kill(-sleepers.pid, 'SIGKILL');
  } catch {}
};
process.on('exit', cleanup);

const listPids = () =>
  readdirSync('/proc')
    .filter((n) => n.charCodeAt(0) >= 48 && n.charCodeAt(0) <= 57)
    .map(Number);
const ids = listPids();
console.log(
  `${ids.length} processes in /proc; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${(await import('node:os')).cpus().length} cpus`,
);

function cpuOf(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = fn();
  const c = process.cpuUsage(c0);
  return { cpuUsPerProcess: (c.user + c.system) / ids.length, wallMs: performance.now() - t0, n };
}
async function cpuOfAsync(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await fn();
  const c = process.cpuUsage(c0);
  return { cpuUsPerProcess: (c.user + c.system) / ids.length, wallMs: performance.now() - t0, n };
}

const sock = TaskstatsSocket.open({ receiveBuffer: 4 << 20 });
const parser = new TaskstatsParser(sock.familyId);
const buf = Buffer.alloc(65536);
const a = newTaskRecord();
const b = newTaskRecord();
function drain(k) {
  let got = 0;
  for (let j = 0; j < k; j++) {
    const n = sock.recv(buf);
    if (n > 0 && parser.parseMessage(buf, 0, n, 'live', a, b) > 0) got++;
  }
  return got;
}
const variants = {
  'TGID only, 64 GETs per send (incomplete: no identity, memory, faults, I/O)': () => {
    let got = 0;
    for (let i = 0; i < ids.length; i += 64) {
      const k = Math.min(64, ids.length - i);
      sock.sendGets('tgid', ids, i, k);
      got += drain(k);
    }
    return got;
  },
  'TGID + PID of the leader, one send per GET (raw bytes)': () => {
    let got = 0;
    for (let i = 0; i < ids.length; i++) {
      sock.sendGets('tgid', ids, i, 1);
      got += drain(1);
      sock.sendGets('pid', ids, i, 1);
      got += drain(1);
    }
    return got / 2;
  },
  'TGID + PID of the leader, built by libnl (nlmsg_alloc, genlmsg_put, nla_put_u32, nl_send_auto, nlmsg_free)': () => {
    let got = 0;
    for (const id of ids) {
      sock.sendGetWithLibnl('tgid', id);
      got += drain(1);
      sock.sendGetWithLibnl('pid', id);
      got += drain(1);
    }
    return got / 2;
  },
  '/proc only: read stat + status + io per process (what a /proc scraper does)': () => {
    let got = 0;
    for (const id of ids) {
      try {
        readFileSync(`/proc/${id}/stat`, 'latin1');
        readFileSync(`/proc/${id}/status`, 'latin1');
        readFileSync(`/proc/${id}/io`, 'latin1');
        got++;
      } catch {}
    }
    return got;
  },
};
const shipped = async (poller) => {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let st;
  const res = await cpuOfAsync(async () => {
    st = await poller.sweep(() => {});
    return st.records;
  });
  h.disable();
  res.maxLoopBlockMs = h.max / 1e6;
  res.st = st;
  return res;
};
const results = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, fn] of Object.entries(variants)) (results[name] ??= []).push(cpuOf(fn));
  // A fresh poller: every process is queried by TGID and PID (nothing cached yet) ...
  const poller = new LivePoller();
  poller.open();
  (results['shipped sweep, first (cold cache): TGID + PID of the leader for all, 64 per send, /proc for multi-threaded'] ??= []).push(await shipped(poller));
  // ... then the steady state: only processes that ran since the previous sweep get a PID query.
  (results['shipped sweep, next ones: TGID for all, PID + /proc only for processes that ran since the previous sweep'] ??= []).push(await shipped(poller));
  poller.close();
}
const med = (xs, k) => [...xs].sort((p, q) => p[k] - q[k])[Math.floor(xs.length / 2)];
for (const [name, rs] of Object.entries(results)) {
  const m = med(rs, 'cpuUsPerProcess');
  const extra = m.st
    ? `, longest event-loop block ${m.maxLoopBlockMs.toFixed(1)} ms, ${m.st.cached} cached, ${m.st.procReads} multi-threaded read from /proc`
    : '';
  console.log(`${m.cpuUsPerProcess.toFixed(1).padStart(6)} us CPU/process  ${m.wallMs.toFixed(0).padStart(5)} ms wall  (${m.n} records${extra})  ${name}`);
}
sock.close();
cleanup();
process.exit(0);
