// test-requires: root taskstats libnl
/**
 * `taskstats-agent pid` and `taskstats-agent exits` run as real commands (bin/taskstats-agent)
 * against the real kernel, and once without privileges (setpriv to nobody).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

const bin = fileURLToPath(new URL('../../../bin/taskstats-agent', import.meta.url));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function agent(args: string[], timeout = 20_000) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout });
}

const DELAY_KINDS = ['cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq'];
const REQUIRED = [
  'version',
  'pid',
  'tgid',
  'ppid',
  'comm',
  'uid',
  'gid',
  'aggregate',
  'exit_code',
  'exit_signal',
  'utime_us',
  'stime_us',
  'read_char',
  'write_char',
  'read_bytes',
  'write_bytes',
  'hiwater_rss_kb',
  'delays',
];

/** One record of `--json` output (the fields these tests read; checkShape checks the rest exist). */
interface RecordJson {
  comm: string;
  pid: number;
  tgid: number;
  ppid: number;
  uid: number;
  aggregate: string;
  start_time: number;
  exit_code: number;
  exit_signal: number;
  version: number;
  delays: Record<string, { count: unknown; total_ns: unknown; max_ns?: unknown }>;
}

function checkShape(o: RecordJson): void {
  for (const k of REQUIRED) assert.ok(k in o, `field ${k}`);
  assert.ok(o.aggregate === 'pid' || o.aggregate === 'tgid');
  for (const k of DELAY_KINDS) {
    const d = o.delays[k];
    assert.ok(d, `delays.${k}`);
    assert.equal(typeof d.count, 'number', `delays.${k}.count`);
    assert.equal(typeof d.total_ns, 'number');
    if (o.version >= 16) assert.equal(typeof d.max_ns, 'number', `delays.${k}.max_ns on v${o.version}`);
  }
}

describe('taskstats-agent pid', { timeout: 60_000 }, () => {
  test('--json: one object with the thread group and its identity', async () => {
    const c = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(c);
    await new Promise((r) => setTimeout(r, 200));
    const r = agent(['pid', String(c.pid), '--json']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const o = JSON.parse(lines[0]!) as RecordJson;
    checkShape(o);
    assert.equal(o.comm, 'sleep');
    assert.equal(o.pid, c.pid);
    assert.equal(o.tgid, c.pid);
    assert.equal(o.ppid, process.pid);
    assert.equal(o.uid, 0);
    assert.equal(o.aggregate, 'tgid');
    assert.ok(Math.abs(o.start_time - Date.now() / 1000) < 10);
    c.kill('SIGKILL');
  });

  test('human output: readable indented text', () => {
    const r = agent(['pid', String(process.pid)]);
    assert.equal(r.status, 0, r.stderr);
    // The kernel's comm of this process (Node 26 names its main thread "node-MainThread").
    const comm = readFileSync(`/proc/${process.pid}/comm`, 'utf8').trim();
    assert.ok(r.stdout.startsWith(`process ${comm} (thread group record, taskstats v`), r.stdout);
    assert.match(r.stdout, new RegExp(`\\n  pid ${process.pid}  tgid ${process.pid}  ppid \\d+  uid 0`));
    assert.match(r.stdout, /\n {2}cpu: user [\d.]+ ms, system [\d.]+ ms/);
    assert.match(r.stdout, /\n {2}delays:\n {4}cpu \d+ x, total/);
  });

  test('a pid that does not exist, and bad arguments', () => {
    const r = agent(['pid', '999999999']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no process 999999999/);
    const bad = agent(['pid', 'abc']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /expected one numeric PID/);
  });

  test('without privileges: non-zero and a message naming CAP_NET_ADMIN', () => {
    for (const args of [
      ['pid', '1'],
      ['exits', '--count', '1'],
    ]) {
      const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, bin, ...args], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.notEqual(r.status, 0, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /CAP_NET_ADMIN/, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one clear error: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /listening/);
    }
  });
});

describe('clear errors for the other ways it cannot start', { timeout: 60_000 }, () => {
  test('libnl missing: one error naming the Debian packages', (t) => {
    // A private mount namespace where libnl-genl-3.so.200 is /dev/null: what dlopen sees without the package.
    const lib = spawnSync('sh', ['-c', 'readlink -f "$(ldconfig -p | awk \'/libnl-genl-3.so.200 /{print $NF; exit}\')"'], { encoding: 'utf8' }).stdout.trim();
    if (!lib) {
      t.skip('libnl-genl-3.so.200 not found by ldconfig');
      return;
    }
    const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null "${lib}" && exec "${process.execPath}" "${bin}" pid 1`], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    if (/unshare failed|Operation not permitted/.test(r.stderr) && !/taskstats-agent/.test(r.stderr)) {
      t.skip(`no mount namespace here: ${r.stderr}`);
      return;
    }
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /libnl-3-200 libnl-genl-3-200/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  test('not in the initial pid namespace: exits says hostPID / hostNetwork', (t) => {
    const r = spawnSync('unshare', ['--pid', '--fork', process.execPath, bin, 'exits', '--count', '1'], { encoding: 'utf8', timeout: 20_000 });
    if (r.error) {
      t.skip(`unshare: ${r.error.message}`);
      return;
    }
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /hostPID: true and hostNetwork: true/);
  });
});

describe('taskstats-agent exits', { timeout: 60_000 }, () => {
  test('--json streams exit records (an exit code 7 among them), --duration ends it', async () => {
    const c = spawn(process.execPath, [bin, 'exits', '--json', '--duration', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<number>((r) => c.once('exit', (code) => r(code ?? -1)));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not listening after 15 s: ${err}`)), 15_000);
      c.stderr.on('data', () => {
        if (!err.includes('listening on cpus')) return;
        clearTimeout(t);
        resolve();
      });
    });
    const pids: number[] = [];
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const s = spawn('/bin/sh', ['-c', 'exit 7'], { stdio: 'ignore' });
      pids.push(s.pid!);
    }
    assert.equal(await done, 0, err);
    const recs = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as RecordJson);
    for (const o of recs) checkShape(o);
    const mine = recs.filter((o) => pids.includes(o.pid));
    assert.equal(mine.length, pids.length, 'every shell that ended while listening');
    for (const o of mine) {
      assert.equal(o.comm, 'sh');
      assert.equal(o.exit_code, 7);
      assert.equal(o.exit_signal, 0);
      assert.equal(o.aggregate, 'pid');
      assert.equal(o.ppid, process.pid);
    }
  });

  test('--count N stops after N exits; human output', async () => {
    const c = spawn(process.execPath, [bin, 'exits', '--count', '2', '--cpumask', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    let code = null as number | null; // set by the exit handler while the loop runs
    c.once('exit', (x) => (code = x));
    const end = Date.now() + 20_000;
    while (code === null && Date.now() < end) {
      spawnSync('taskset', ['-c', '0', '/bin/sh', '-c', 'exit 0']);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(code, 0, err);
    // Exactly two exits: two thread records, each maybe followed by its thread group's record
    // (a multi-threaded process of the host exiting on CPU 0), never a group record alone.
    const heads = out.split('\n').filter((l) => l.startsWith('exit of '));
    const kinds = heads.map((l) => (l.includes('(thread group record,') ? 'g' : 't')).join('');
    assert.match(kinds, /^(tg?){2}$/, out);
    assert.match(out, /\n {2}(exit code \d+|killed by signal \d+)/);
  });

  test('bad options are refused clearly', () => {
    const r = agent(['exits', '--cpumask', 'x']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /invalid --cpumask "x"/);
    const r3 = agent(['exits', '--cpumask', '0-4095']);
    assert.equal(r3.status, 1);
    assert.match(r3.stderr, /names CPUs this machine does not have .* possible CPUs: /);
    const r2 = agent(['exits', '--count', '0']);
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /--count must be a positive integer/);
  });
});
