/**
 * The proc connector against the real kernel (root): exec events, the EXEC-only event mask
 * (Linux >= 6.6), overflow detection, the watcher thread, and the error without CAP_NET_ADMIN.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { ProcConnector, kernelSupportsEventMask } from './proc-connector.js';
import { EXEC_RESULT_CGROUP, EXEC_RESULT_DETAILS } from './exec-result-ring.js';
import { ExecWatcher } from './exec-watcher.js';
import { findCgroupPath, parseProcCgroup, type CgroupSelector } from './cgroup-path.js';

interface Result {
  tgid: number;
  seq: number;
  what: number;
  cgroup: string;
  exePath: string;
  cmdline: string;
  capturedSec: number;
}

const root = process.getuid?.() === 0;
const skip = root ? undefined : 'needs root (CAP_NET_ADMIN)';

/** Reads everything queued (non-blocking) and returns the exec'd tgids. */
function readQueued(pc: ProcConnector, overflows = { n: 0 }): number[] {
  const tgids: number[] = [];
  for (;;) {
    const r = pc.read((_pid, tgid) => tgids.push(tgid), true);
    if (r === 0) return tgids;
    if (r === -1) overflows.n++;
  }
}

describe('kernelSupportsEventMask', () => {
  test('by kernel release', () => {
    assert.equal(kernelSupportsEventMask('6.6.0'), true);
    assert.equal(kernelSupportsEventMask('6.18.44-fc-v657'), true);
    assert.equal(kernelSupportsEventMask('7.0.1'), true);
    assert.equal(kernelSupportsEventMask('6.5.13-generic'), false);
    assert.equal(kernelSupportsEventMask('5.15.0'), false);
    assert.equal(kernelSupportsEventMask('garbage'), false);
  });
});

describe("findCgroupPath (the watcher thread's parser, on bytes)", () => {
  test('finds the same path as the text parser parseProcCgroup (synthetic, mutated and real files)', () => {
    const texts = [
      '9:name=systemd:/user.slice/session-1.scope\n8:pids:/\n4:memory:/process_api/6d7a\n2:cpu,cpuacct:/docker/abc:def\n0::/system.slice/foo.service\n',
      '12:cpuset:/kubepods/pod1/c1\n3:cpu,cpuacct:/kubepods/burstable/pod1/c1\n1:name=systemd:/kubepods/burstable/pod1/c1',
      '0::/gone (deleted)\n',
      '0::/gone (deleted)',
      '0:: (deleted)\n',
      '1:a:\n0::',
      '',
      'garbage\n::\n',
      '0::/caf\u00e9 \u2603\n',
      readFileSync('/proc/self/cgroup', 'utf8'),
    ];
    // Mutations: every prefix of the first two files, and random byte flips.
    for (const t of texts.slice(0, 2)) for (let i = 0; i < t.length; i++) texts.push(t.slice(0, i));
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let k = 0; k < 300; k++) {
      const b = Buffer.from(texts[k % 2]!);
      for (let f = 0; f < 3; f++) b[Math.floor(rand() * b.length)] = ':\n,0a '.charCodeAt(Math.floor(rand() * 6));
      texts.push(b.toString('latin1'));
    }
    const selectors: CgroupSelector[] = [
      { kind: 'v2' },
      { kind: 'v1', hierarchy: 'cpuacct' },
      { kind: 'v1', hierarchy: 'name=systemd' },
      { kind: 'v1', hierarchy: 'cpu' },
    ];
    const range = new Int32Array(2);
    for (const text of texts) {
      // Stale bytes after the end must be ignored.
      const buf = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from('\n0::/stale\n5:cpuacct:/stale\n')]);
      const len = Buffer.byteLength(text, 'utf8');
      for (const sel of selectors) {
        const hierarchy = sel.kind === 'v1' ? Buffer.from(sel.hierarchy) : undefined;
        const found = findCgroupPath(buf, len, sel, hierarchy, range);
        const expected = parseProcCgroup(text, sel);
        assert.equal(found ? buf.toString('utf8', range[0], range[1]) : undefined, expected, `${JSON.stringify(text)} ${JSON.stringify(sel)}`);
      }
    }
  });
});

describe('proc connector (real kernel)', { skip, timeout: 60_000 }, () => {
  test('an exec event arrives for a process that execs', () => {
    const pc = new ProcConnector();
    pc.open();
    try {
      const r = spawnSync('/bin/sh', ['-c', 'exec /bin/true'], { stdio: 'ignore' });
      assert.equal(r.status, 0);
      const child = r.pid;
      const tgids = readQueued(pc);
      assert.ok(tgids.includes(child), `exec event of ${child} among ${tgids.length} events`);
      // sh -c 'exec /bin/true': two execs (sh, then true) of the same process.
      assert.ok(tgids.filter((t) => t === child).length >= 2, 'both execs of the process are reported');
    } finally {
      pc.close();
    }
  });

  test('wake() ends a blocking read at once (an idle watcher sleeps a whole read timeout otherwise)', async () => {
    const pc = new ProcConnector({ readTimeoutMs: 5000 });
    pc.open();
    try {
      readQueued(pc);
      assert.ok(pc.portId() !== 0, 'the socket has a port id');
      assert.equal(ProcConnector.wake(pc.portId()), 0, 'sendto between netlink sockets (CAP_NET_ADMIN)');
      const execs: number[] = [];
      const t0 = performance.now();
      const n = pc.read((_pid, tgid) => execs.push(tgid));
      assert.ok(performance.now() - t0 < 1000, 'returned before the 5 s timeout');
      assert.equal(n, 16, 'the wake-up datagram (an NLMSG_NOOP header)');
      assert.deepEqual(execs, [], 'not taken for an event');
    } finally {
      pc.close();
    }
    // The watcher thread, stopped while it blocks in recvmmsg() with its 1 s read timeout.
    const w = new ExecWatcher(
      { procRoot: '/proc', selector: { kind: 'v2' }, executablePath: false, commandLine: false, maxCommandLineBytes: 4096 },
      () => {},
      () => {},
      () => {},
      () => {},
    );
    await w.start();
    await new Promise((r) => setTimeout(r, 100));
    const t1 = performance.now();
    await w.stop();
    assert.ok(performance.now() - t1 < 500, `stop() took ${(performance.now() - t1).toFixed(0)} ms`);
  });

  test('with the EXEC mask a fork loop causes no fork or exit events (Linux >= 6.6); without it, it does', () => {
    const forkLoop = 'i=0; while [ $i -lt 300 ]; do (exit 0); i=$((i+1)); done';
    const masked = new ProcConnector();
    const unmasked = new ProcConnector({ useEventMask: false });
    masked.open();
    unmasked.open();
    try {
      readQueued(masked);
      readQueued(unmasked);
      const otherMasked = masked.otherEvents;
      const otherUnmasked = unmasked.otherEvents;
      assert.equal(spawnSync('/bin/sh', ['-c', forkLoop], { stdio: 'ignore' }).status, 0);
      readQueued(masked);
      readQueued(unmasked);
      assert.ok(unmasked.otherEvents - otherUnmasked >= 600, `unmasked: fork and exit events of 300 subshells (got ${unmasked.otherEvents - otherUnmasked})`);
      if (kernelSupportsEventMask()) {
        assert.equal(masked.masked, true);
        assert.equal(masked.otherEvents - otherMasked, 0, 'masked: nothing but exec events');
      } else {
        assert.equal(masked.masked, false);
      }
    } finally {
      masked.close();
      unmasked.close();
    }
  });

  test('a full receive buffer is reported as an overflow, and reading goes on', () => {
    // A tiny buffer (exec events only, to keep other processes' traffic low) and nobody reading
    // while 300 programs are exec'd.
    const pc = new ProcConnector({ receiveBufferBytes: 4096 });
    pc.open();
    try {
      const overflows = { n: 0 };
      readQueued(pc, overflows);
      assert.equal(spawnSync('/bin/sh', ['-c', 'i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done'], { stdio: 'ignore' }).status, 0);
      readQueued(pc, overflows);
      assert.ok(overflows.n >= 1, 'ENOBUFS seen');
      assert.equal(pc.overflows, overflows.n);
      // Still working afterwards (a few attempts: other processes' execs may fill the tiny buffer again).
      let seenAfter = false;
      for (let attempt = 0; attempt < 5 && !seenAfter; attempt++) {
        readQueued(pc);
        const r = spawnSync('/bin/true', [], { stdio: 'ignore' });
        seenAfter = readQueued(pc).includes(r.pid);
      }
      assert.ok(seenAfter, 'exec events after the overflow');
    } finally {
      pc.close();
    }
  });

  test('the watcher thread reads each exec and the main thread applies it synchronously', async () => {
    const seen = new Map<number, Result>();
    const w = new ExecWatcher(
      { procRoot: '/proc', selector: { kind: 'v2' }, executablePath: true, commandLine: true, maxCommandLineBytes: 4096 },
      (tgid, seq, what, cgroup, exePath, cmdline, capturedSec) => {
        // A details-only result completes the cgroup result of the same exec.
        const prev = seen.get(tgid);
        if ((what & EXEC_RESULT_CGROUP) === 0) {
          if (prev?.seq === seq) seen.set(tgid, { ...prev, what: prev.what | what, exePath, cmdline });
        } else {
          seen.set(tgid, { tgid, seq, what, cgroup, exePath, cmdline, capturedSec });
        }
      },
      () => {},
    );
    await w.start();
    try {
      // What the kernel allows this process decides the expected priority (chrt asks the same).
      const fifo = spawnSync('chrt', ['-f', '1', 'true']).status === 0;
      assert.equal(w.priority, fifo ? 'SCHED_FIFO 1' : w.priority === 'nice -10' ? 'nice -10' : 'unchanged');
      assert.ok(w.threadId > 0 && w.threadId !== process.pid, 'a thread of its own');
      const child = spawn('/bin/sleep', ['2'], { stdio: 'ignore' });
      const pid = child.pid!;
      const deadline = Date.now() + 5000;
      while (!seen.has(pid) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
        w.drain();
      }
      const info = seen.get(pid);
      assert.ok(info, 'exec of the child applied');
      assert.equal(info.what, EXEC_RESULT_CGROUP | EXEC_RESULT_DETAILS);
      assert.equal(info.cgroup, /^0::(.*)$/m.exec(readSelfCgroup())![1], 'cgroup of the child (the same as ours)');
      assert.equal(info.exePath, '/usr/bin/sleep');
      assert.equal(info.cmdline, '/bin/sleep 2');
      assert.ok(Math.abs(info.capturedSec - Date.now() / 1000) < 10, 'capture time');
      assert.ok(w.execSeen(pid), "the exec was recorded in the pid's slot");
      assert.equal(w.execAfter(pid, info.seq), false, 'the result carries the number of the last exec of the pid');
      assert.equal(w.execAfter(pid, info.seq - 1), true, 'an entry older than that exec would be distrusted');
      const s = w.stats;
      assert.ok(s.cgroupReads >= 1 && s.delaySumNs > 0 && s.delaySumNs / s.cgroupReads < 10e9, `exec-to-read delay measured: ${JSON.stringify(s)}`);
      child.kill('SIGKILL');
    } finally {
      await w.stop();
    }
  });

  test('under a sustained exec stream the results keep flowing to the main thread', async () => {
    let applied = 0;
    const w = new ExecWatcher(
      { procRoot: '/proc', selector: { kind: 'v2' }, executablePath: true, commandLine: true, maxCommandLineBytes: 4096 },
      () => {
        applied++;
      },
      () => {},
    );
    await w.start();
    const loops = [0, 1, 2].map(() => spawn('/bin/sh', ['-c', 'i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done'], { stdio: 'ignore' }));
    const running = loops.map((c) => new Promise((r) => c.once('exit', r)));
    let appliedWhileRunning = 0;
    let done = false as boolean; // set by the then() below while the loop runs
    void Promise.all(running).then(() => {
      done = true;
    });
    try {
      const deadline = Date.now() + 60_000;
      while (!done && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        w.drain();
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the then() above may have run during the await
        if (!done) appliedWhileRunning = applied;
      }
      await Promise.all(running);
      const received = w.stats.execEvents;
      console.log(`# sustained stream: ${received} exec events, ${appliedWhileRunning} results applied while the loops ran, ${w.stats.missed} missed`);
      assert.ok(appliedWhileRunning > 100, 'results arrive while the stream goes on (no starvation of the posting step)');
    } finally {
      for (const c of loops) c.kill('SIGKILL');
      await w.stop();
    }
  });

  test('a main thread that does not drain: results beyond the ring are dropped and counted, then flow again', async () => {
    let applied = 0;
    let missedReported = 0;
    const w = new ExecWatcher(
      { procRoot: '/proc', selector: { kind: 'v2' }, executablePath: false, commandLine: false, maxCommandLineBytes: 4096 },
      () => {
        applied++;
      },
      () => {},
      (n) => {
        missedReported += n;
      },
    );
    await w.start();
    try {
      // spawnSync blocks this thread: nothing drains (not even the nudge) while 6000 programs run.
      const r = spawnSync('/bin/sh', ['-c', 'i=0; while [ $i -lt 6000 ]; do /bin/true; i=$((i+1)); done'], { stdio: 'ignore', timeout: 90_000 });
      assert.equal(r.status, 0);
      w.drain();
      const s = w.stats;
      console.log(`# undrained: ${s.execEvents} exec events, ${applied} results applied, ${s.dropped} dropped, ${s.missed} missed`);
      assert.ok(applied <= 4096, 'the ring holds at most 4096 results');
      assert.ok(s.dropped >= 1, 'results beyond the ring were dropped');
      // The watcher thread keeps reading while the main thread is blocked: the socket never
      // overflows (an overflow would lose an unknown number of events), the ring drops instead.
      assert.equal(s.overflows, 0, 'no proc connector overflow');
      assert.ok(applied + s.missed >= 6000, 'every exec is applied, or counted as missed (process gone, or dropped)');
      assert.equal(missedReported, s.missed, 'drops are reported as misses');
      // And the watcher goes on.
      const child = spawn('/bin/sleep', ['1'], { stdio: 'ignore' });
      const before = applied;
      const deadline = Date.now() + 5000;
      while (applied === before && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 10));
        w.drain();
      }
      assert.ok(applied > before, 'results flow again after the drops');
      child.kill('SIGKILL');
    } finally {
      await w.stop();
    }
  });

  test('without CAP_NET_ADMIN: either a clear error naming CAP_NET_ADMIN, or (Linux >= 6.6 allows it) working events', () => {
    const moduleUrl = new URL('./proc-connector.js', import.meta.url).href;
    const script = `
      const m = await import(${JSON.stringify(moduleUrl)});
      const { spawnSync } = await import('node:child_process');
      const pc = new m.ProcConnector();
      try { pc.open(); } catch (e) { console.log('error: ' + e.message); process.exit(0); }
      const r = spawnSync('/bin/true');
      const seen = [];
      while (pc.read((_p, t) => seen.push(t), true) !== 0);
      console.log(seen.includes(r.pid) ? 'events: ok' : 'events: missing');
      pc.close();`;
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)), timeout: 20_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout.trim();
    if (out.startsWith('error: ')) {
      assert.match(out, /CAP_NET_ADMIN/);
    } else {
      // Since Linux 6.6 the kernel lets unprivileged processes listen to process events.
      assert.equal(out, 'events: ok', 'opened without privileges, so events must arrive');
      assert.ok(kernelSupportsEventMask(), 'an unprivileged listener is only expected on Linux >= 6.6');
    }
    console.log(`# unprivileged proc connector on this kernel: ${out}`);
  });
});

describe('proc connector outside the initial user namespace', { skip, timeout: 30_000 }, () => {
  test('the watcher reports that the kernel ignores it (hostPID, no user namespace) and stops cleanly', () => {
    const moduleUrl = new URL('./exec-watcher.js', import.meta.url).href;
    const script = `
      const m = await import(${JSON.stringify(moduleUrl)});
      const w = new m.ExecWatcher({ procRoot: '/proc', selector: { kind: 'v2' }, executablePath: false, commandLine: false, maxCommandLineBytes: 4096 }, () => {}, () => {});
      try { await w.start(); console.log('started'); } catch (e) { console.log('error: ' + e.message); }
      await w.stop();
      console.log('stopped');`;
    const r = spawnSync('unshare', ['--user', '--map-root-user', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    // The kernel either ignores the request (no acknowledgement) or, where unprivileged listeners
    // are refused (seen on 6.18.44-fc-v1272), refuses the bind: root of a user namespace is not root.
    assert.match(r.stdout, /error: .*(initial user and PID namespaces.*hostPID|EPERM.*CAP_NET_ADMIN in the initial user namespace)/);
    assert.match(r.stdout, /stopped/);
  });
});

function readSelfCgroup(): string {
  return spawnSync('cat', ['/proc/self/cgroup'], { encoding: 'utf8' }).stdout;
}
