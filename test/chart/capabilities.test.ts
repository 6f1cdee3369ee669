/**
 * Proves the capability set the chart grants the agent container ("only what the agent needs"),
 * against the real kernel: the same probe runs under setpriv with different uids, capability sets,
 * no_new_privs and namespaces, and we assert what each kernel interface the agent uses allows.
 *
 * The probe is this file itself, re-run with TASKSTATS_CAP_PROBE set: it opens the sockets the
 * agent opens (generic netlink TASKSTATS: family lookup, GET by pid, exit listener registration,
 * SO_RCVBUFFORCE; the proc connector) and reads the /proc files the agent's metadata options read,
 * for a process owned by another user, then prints one JSON line.
 *
 * Findings (docs/deploy.md, charts/taskstats-agent/README.md):
 * - CAP_NET_ADMIN is the one capability the default configuration needs (exit listener, GET,
 *   SO_RCVBUFFORCE). uid 0 with only CAP_NET_ADMIN can read /proc/PID/{cgroup,cmdline,stat,status}
 *   of every user's process: these files are world-readable.
 * - /proc/PID/exe (the receiver's metadata.executable_path) of another user's process needs
 *   CAP_SYS_PTRACE (a ptrace access check); /proc/PID/io (read by the live poller for
 *   multi-threaded processes) needs CAP_DAC_READ_SEARCH as well (mode 0400 of the owner). Neither
 *   is granted by default: together they would let the agent read every file of the node through
 *   /proc/PID/root. Without them the receiver falls back to the main thread's I/O (counted).
 * - A non-root uid works with CAP_NET_ADMIN in its ambient set, but Kubernetes cannot set ambient
 *   capabilities. So the image gives its node binary the file capability cap_net_admin+ep: with
 *   NET_ADMIN granted to the container (bounding and permitted set) that works for uid 10001 even
 *   under no_new_privs (allowPrivilegeEscalation: false), because nothing is gained beyond what the
 *   container already holds. Running as uid 0 instead would let the agent signal every root process
 *   of the host (kill() only compares uids, and hostPID shows them all).
 * - Outside the initial pid namespace registration fails with EINVAL (hostPID); in another
 *   network namespace registration is acknowledged but no exit event arrives (hostNetwork).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync, mkdtempSync, copyFileSync, rmSync, chmodSync, existsSync, writeFileSync } from 'node:fs';
import { CAP_NET_ADMIN, chartDir, findObject, readableByUid, renderChart, repoRoot, setFileCapabilities } from '../support/helm.js';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needs } from '../support/caps.js';

const PROBE_ENV = 'TASKSTATS_CAP_PROBE';

interface ProbeResult {
  family: number;
  get_other_pid: string;
  register: string;
  exit_event: string;
  rcvbufforce: string;
  proc_connector: string;
  /** The connector's acknowledgement of PROC_CN_MCAST_LISTEN: 'ok' or the error it carries. */
  proc_connector_listen: string;
  proc_cgroup: string;
  proc_cmdline: string;
  proc_stat: string;
  proc_status: string;
  proc_io: string;
  proc_exe: string;
}

async function runProbe(otherPid: number): Promise<ProbeResult> {
  const { default: koffi } = await import('koffi');
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const send = lib.func('intptr_t send(int fd, void *buf, size_t len, int flags)');
  const recv = lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)');
  const bind = lib.func('int bind(int fd, void *addr, uint32_t len)');
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)');
  const close = lib.func('int close(int fd)');
  const AF_NETLINK = 16,
    SOCK_DGRAM = 2,
    SOCK_CLOEXEC = 0o2000000,
    NETLINK_GENERIC = 16,
    NETLINK_CONNECTOR = 11;
  const MSG_DONTWAIT = 0x40,
    NLMSG_ERROR = 2,
    NLMSG_DONE = 3,
    GENL_ID_CTRL = 0x10;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const errText = (e: number) => (e === 1 ? 'EPERM' : e === 22 ? 'EINVAL' : e === 13 ? 'EACCES' : `errno ${e}`);

  const attr = (type: number, data: Buffer) => {
    const b = Buffer.alloc((4 + data.length + 3) & ~3);
    b.writeUInt16LE(4 + data.length, 0);
    b.writeUInt16LE(type, 2);
    data.copy(b, 4);
    return b;
  };
  const genl = (type: number, flags: number, cmd: number, attrs: Buffer[]) => {
    const body = Buffer.concat(attrs);
    const b = Buffer.alloc(20 + body.length);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt16LE(type, 4);
    b.writeUInt16LE(flags, 6);
    b.writeUInt32LE(1, 8);
    b[16] = cmd;
    b[17] = 1;
    body.copy(b, 20);
    return b;
  };
  const sendAll = (fd: number, b: Buffer) => Number(send(fd, b, b.length, 0));
  // Waits for a message of the wanted type (or an NLMSG_ERROR/ack) with a deadline.
  const recvOne = (fd: number, accept: (type: number, m: Buffer) => boolean, ms: number) => {
    const buf = Buffer.alloc(65536);
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const n = Number(recv(fd, buf, buf.length, MSG_DONTWAIT));
      if (n > 0) {
        const type = buf.readUInt16LE(4);
        if (type === NLMSG_ERROR) return { error: -buf.readInt32LE(16) };
        if (accept(type, buf.subarray(0, n))) return { msg: Buffer.from(buf.subarray(0, n)) };
        continue;
      }
      Atomics.wait(sleeper, 0, 0, 5);
    }
    return { timeout: true as const };
  };

  const out = {} as ProbeResult;
  const fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_GENERIC) as number;
  sendAll(fd, genl(GENL_ID_CTRL, 1, 3 /* CTRL_CMD_GETFAMILY */, [attr(2, Buffer.from('TASKSTATS\0'))]));
  const fam = recvOne(fd, (t) => t === GENL_ID_CTRL, 2000);
  out.family = 0;
  if (fam.msg) {
    for (let off = 20; off + 4 <= fam.msg.length;) {
      const len = fam.msg.readUInt16LE(off);
      if (fam.msg.readUInt16LE(off + 2) === 1 /* CTRL_ATTR_FAMILY_ID */) out.family = fam.msg.readUInt16LE(off + 4);
      off += (len + 3) & ~3;
      if (len < 4) break;
    }
  }
  const family = out.family;
  const pidAttr = Buffer.alloc(4);
  pidAttr.writeUInt32LE(otherPid);
  sendAll(fd, genl(family, 1, 1 /* TASKSTATS_CMD_GET */, [attr(1 /* PID */, pidAttr)]));
  const got = recvOne(fd, (t) => t === family, 2000);
  out.get_other_pid = got.msg ? 'ok' : 'error' in got ? errText(got.error!) : 'timeout';

  const cpulist = `0-${cpus().length - 1}\0`;
  sendAll(fd, genl(family, 1 | 4 /* REQUEST|ACK */, 1, [attr(3 /* REGISTER_CPUMASK */, Buffer.from(cpulist))]));
  const reg = recvOne(fd, () => false, 2000);
  out.register = 'error' in reg ? (reg.error === 0 ? 'ok' : errText(reg.error!)) : 'timeout';
  out.exit_event = 'not-registered';
  if (out.register === 'ok') {
    spawnSync('/bin/true');
    const ev = recvOne(fd, (t, m) => t === family && m[16] === 2 /* TASKSTATS_CMD_NEW */, 3000);
    out.exit_event = ev.msg ? 'received' : 'none';
  }
  const size = Buffer.alloc(4);
  size.writeInt32LE(8 << 20);
  out.rcvbufforce = setsockopt(fd, 1 /* SOL_SOCKET */, 33 /* SO_RCVBUFFORCE */, size, 4) === 0 ? 'ok' : errText(koffi.errno());
  close(fd);

  // Proc connector: join CN_IDX_PROC, send PROC_CN_MCAST_LISTEN, wait for a real event (what != 0;
  // what == 0 is the connector's acknowledgement of our own message).
  const cfd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR) as number;
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(1 /* CN_IDX_PROC */, 8);
  if (bind(cfd, sa, 12) !== 0) out.proc_connector = `bind ${errText(koffi.errno())}`;
  else {
    const m = Buffer.alloc(16 + 20 + 4);
    m.writeUInt32LE(m.length, 0);
    m.writeUInt16LE(NLMSG_DONE, 4);
    m.writeUInt32LE(1, 16); // cb_id.idx = CN_IDX_PROC
    m.writeUInt32LE(1, 20); // cb_id.val = CN_VAL_PROC
    m.writeUInt16LE(4, 32); // len
    m.writeUInt32LE(1, 36); // PROC_CN_MCAST_LISTEN
    sendAll(cfd, m);
    // The acknowledgement: a proc_event with what == PROC_EVENT_NONE and ack.err at offset 52.
    const ack = recvOne(cfd, (t, msg) => t === NLMSG_DONE && msg.length >= 56 && msg.readUInt32LE(36) === 0, 1000);
    out.proc_connector_listen = ack.msg ? (ack.msg.readUInt32LE(52) === 0 ? 'ok' : errText(ack.msg.readUInt32LE(52))) : 'no-ack';
    spawnSync('/bin/true');
    const ev = recvOne(cfd, (t, msg) => t === NLMSG_DONE && msg.length >= 40 && msg.readUInt32LE(36) !== 0, 2000);
    out.proc_connector = ev.msg ? 'received' : 'none';
  }
  close(cfd);

  for (const f of ['cgroup', 'cmdline', 'stat', 'status', 'io'] as const) {
    try {
      readFileSync(`/proc/${otherPid}/${f}`);
      out[`proc_${f}`] = 'ok';
    } catch (e) {
      out[`proc_${f}`] = (e as NodeJS.ErrnoException).code ?? String(e);
    }
  }
  try {
    readlinkSync(`/proc/${otherPid}/exe`);
    out.proc_exe = 'ok';
  } catch (e) {
    out.proc_exe = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  return out;
}

if (process.env[PROBE_ENV]) {
  // Probe mode: no tests are registered in this process.
  const result = await runProbe(Number(process.env[PROBE_ENV]));
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const skip = needs('root', 'taskstats', 'libnl') || (!isRoot || !hasSetpriv ? 'needs root and setpriv (util-linux)' : false);

/** Runs the probe under `prefix` (setpriv/unshare arguments) with `node` as the program. */
function probeUnder(prefix: string[], otherPid: number, nodeBinary = process.execPath): ProbeResult {
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), nodeBinary, self], {
    env: { ...process.env, [PROBE_ENV]: String(otherPid), NODE_OPTIONS: '' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, `probe under ${prefix.join(' ')} failed: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as ProbeResult;
}

// Probes run as uids 1000 and 10001 must read the compiled probe and node_modules.
const nonRootCanRead = () => readableByUid(1000) && readableByUid(10001);
const nonRootSkip = `non-root uids cannot read ${repoRoot} (a private parent directory)`;

/** The container's capability set, as the chart renders it: uid 0, bounding = effective = `caps`. */
const asRootWith = (caps: string[]) => ['setpriv', '--inh-caps=-all', `--bounding-set=-all${caps.map((c) => `,+${c}`).join('')}`, '--'];

describe('capabilities the agent needs (real kernel)', { skip, timeout: 120_000 }, () => {
  let other: ChildProcess;
  let otherPid = 0;

  before(async () => {
    // A process of another user (nobody), like a workload the agent observes.
    other = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sleep', '120'], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      try {
        const status = readFileSync(`/proc/${other.pid}/status`, 'utf8');
        if (/^Uid:\s+65534/m.test(status) && /^Name:\s+sleep/m.test(status)) break;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    otherPid = other.pid!;
  });
  after(() => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset when before() failed
    other?.kill('SIGKILL');
  });

  test('baseline: the probe sees everything with all capabilities (so a denial below is the kernel, not the probe)', () => {
    const r = probeUnder(['env'], otherPid);
    assert.ok(r.family > 0, 'TASKSTATS family resolved');
    assert.equal(r.get_other_pid, 'ok');
    assert.equal(r.register, 'ok');
    assert.equal(r.exit_event, 'received');
    assert.equal(r.rcvbufforce, 'ok');
    assert.equal(r.proc_connector, 'received');
    assert.equal(r.proc_exe, 'ok');
    assert.equal(r.proc_io, 'ok');
  });

  test('uid 0 with only CAP_NET_ADMIN has every interface of the default configuration', () => {
    const r = probeUnder(asRootWith(['net_admin']), otherPid);
    assert.equal(r.get_other_pid, 'ok');
    assert.equal(r.register, 'ok');
    assert.equal(r.exit_event, 'received');
    assert.equal(r.rcvbufforce, 'ok', 'SO_RCVBUFFORCE (receive_buffer above net.core.rmem_max)');
    assert.equal(r.proc_connector, 'received');
    // World-readable: cgroup attribution and command lines need no further capability.
    assert.equal(r.proc_cgroup, 'ok');
    assert.equal(r.proc_cmdline, 'ok');
    assert.equal(r.proc_stat, 'ok');
    assert.equal(r.proc_status, 'ok');
    // Ptrace-guarded: the executable path of another user's process is not readable.
    assert.equal(r.proc_exe, 'EACCES');
    assert.equal(r.proc_io, 'EACCES');
  });

  test('CAP_SYS_PTRACE is what /proc/PID/exe (metadata.executable_path) needs', () => {
    const r = probeUnder(asRootWith(['net_admin', 'sys_ptrace']), otherPid);
    assert.equal(r.proc_exe, 'ok');
    assert.equal(r.register, 'ok');
    // /proc/PID/io is mode 0400 of the owner: ptrace alone does not open it.
    assert.equal(r.proc_io, 'EACCES');
  });

  test('/proc/PID/io of another user (the live poller, multi-threaded processes) needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE', () => {
    assert.equal(probeUnder(asRootWith(['net_admin', 'dac_read_search']), otherPid).proc_io, 'EACCES');
    const both = probeUnder(asRootWith(['net_admin', 'dac_read_search', 'sys_ptrace']), otherPid);
    assert.equal(both.proc_io, 'ok');
  });

  test('without CAP_NET_ADMIN: no exit listener, no GET, no SO_RCVBUFFORCE (EPERM)', () => {
    const r = probeUnder(asRootWith([]), otherPid);
    assert.ok(r.family > 0, 'resolving the family works unprivileged');
    assert.equal(r.register, 'EPERM');
    assert.equal(r.get_other_pid, 'EPERM');
    assert.equal(r.rcvbufforce, 'EPERM');
  });

  test('the process-event connector without any capability: refused at bind, or (some Linux 6.6+ builds) events arrive', (t) => {
    if (!nonRootCanRead()) {
      t.skip(nonRootSkip);
      return;
    }
    const nonRoot = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--'];
    // The kernel's answer, asked by Python's socket module (Debian's python3: a pyenv shim is not
    // for other users). Linux 6.6 let unprivileged processes join CN_IDX_PROC, and builds differ
    // (of two 6.18.44 builds, -fc-v657 admitted them, -fc-v1272 refuses the bind).
    const py = spawnSync(
      nonRoot[0]!,
      [
        ...nonRoot.slice(1),
        '/usr/bin/python3',
        '-c',
        'import socket\ntry:\n socket.socket(16, 2, 11).bind((0, 1)); print("ok")\nexcept PermissionError: print("EPERM")',
      ],
      {
        encoding: 'utf8',
      },
    );
    const kernel = py.stdout.trim();
    assert.ok(kernel === 'ok' || kernel === 'EPERM', `python3 bind to CN_IDX_PROC as uid 1000: ${kernel} ${py.stderr}`);
    const r = probeUnder(nonRoot, otherPid);
    assert.equal(r.register, 'EPERM', 'taskstats still refuses');
    if (kernel === 'EPERM') {
      assert.equal(r.proc_connector, 'bind EPERM');
    } else {
      assert.equal(r.proc_connector_listen, 'ok');
      assert.equal(r.proc_connector, 'received');
    }
    t.diagnostic(`unprivileged proc connector on this kernel: ${kernel === 'ok' ? 'admitted' : 'refused (EPERM at bind)'}`);
  });

  test('a non-root uid works only with CAP_NET_ADMIN as an ambient capability', (t) => {
    if (!nonRootCanRead()) {
      t.skip(nonRootSkip);
      return;
    }
    const ambient = probeUnder(
      ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--'],
      otherPid,
    );
    assert.equal(ambient.register, 'ok');
    assert.equal(ambient.exit_event, 'received');
    // What Kubernetes does for a non-root container: the capability in the bounding set only,
    // none in the ambient set, so the exec'd agent has no effective capability.
    const bounding = probeUnder(
      ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all,+net_admin', '--'],
      otherPid,
    );
    assert.equal(bounding.register, 'EPERM');
  });

  test("the image's way for a non-root uid: file capability cap_net_admin+ep on node works under no_new_privs", async (t) => {
    if (!nonRootCanRead()) {
      t.skip(nonRootSkip);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'taskstats-filecaps-'));
    try {
      chmodSync(dir, 0o755);
      const node = join(dir, 'node');
      copyFileSync(process.execPath, node);
      chmodSync(node, 0o755);
      // What the Dockerfile does to /usr/local/bin/node.
      await setFileCapabilities(node, [CAP_NET_ADMIN]);
      // What the runtime does for the chart's container: uid 10001, capabilities drop ALL + add
      // NET_ADMIN (bounding and permitted set), allowPrivilegeEscalation: false (no_new_privs).
      const container = (caps: string[]) => [
        'setpriv',
        '--reuid=10001',
        '--regid=10001',
        '--clear-groups',
        '--inh-caps=-all',
        `--bounding-set=-all${caps.map((c) => `,+${c}`).join('')}`,
        '--no-new-privs',
        '--',
      ];
      const plainNode = probeUnder(container(['net_admin']), otherPid);
      assert.equal(plainNode.register, 'EPERM', 'without file capabilities a non-root agent has no effective CAP_NET_ADMIN');
      const fileCaps = probeUnder(container(['net_admin']), otherPid, node);
      assert.equal(fileCaps.register, 'ok');
      assert.equal(fileCaps.exit_event, 'received');
      assert.equal(fileCaps.get_other_pid, 'ok');
      assert.equal(fileCaps.rcvbufforce, 'ok');
      assert.equal(fileCaps.proc_connector, 'received');
      assert.equal(fileCaps.proc_cgroup, 'ok');
      assert.equal(fileCaps.proc_cmdline, 'ok');
      // Granting SYS_PTRACE to a non-root container does not reach the agent (not in the file
      // capabilities): executable_path needs uid 0 (see the chart README).
      const ptrace = probeUnder(container(['net_admin', 'sys_ptrace']), otherPid, node);
      assert.equal(ptrace.proc_exe, 'EACCES');
      // And the file capability is inert where the runtime did not grant NET_ADMIN.
      const notGranted = spawnSync('setpriv', [...container([]), node, '-e', 'process.exit(0)'], { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(notGranted.status, 0, 'exec of a cap_net_admin+ep binary without NET_ADMIN in the bounding set fails');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the chart's delay-accounting init container command turns kernel.task_delayacct on, and needs CAP_SYS_ADMIN", () => {
    const sysctl = '/proc/sys/kernel/task_delayacct';
    if (!existsSync(sysctl)) return; // kernel without CONFIG_TASK_DELAY_ACCT
    const ds = findObject(renderChart({ valuesFiles: [join(chartDir, 'ci', 'delay-accounting-values.yaml')] }), 'DaemonSet') as unknown as {
      spec: { template: { spec: { initContainers: { command: string[]; securityContext: { privileged: boolean } }[] } } };
    };
    const init = ds.spec.template.spec.initContainers[0]!;
    assert.equal(init.securityContext.privileged, true);
    const original = readFileSync(sysctl, 'utf8').trim();
    try {
      // Everything but CAP_SYS_ADMIN (root, writable /proc/sys): the kernel refuses the write.
      const denied = spawnSync('setpriv', ['--inh-caps=-all', '--bounding-set=+all,-sys_admin', '--', ...init.command], { encoding: 'utf8', timeout: 10_000 });
      assert.notEqual(denied.status, 0);
      assert.match(denied.stderr, /Operation not permitted|I\/O error/); // dash reports the EPERM of write() as an I/O error
      assert.equal(readFileSync(sysctl, 'utf8').trim(), original);
      // As the privileged init container runs it.
      const ok = spawnSync(init.command[0]!, init.command.slice(1), { encoding: 'utf8', timeout: 10_000 });
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(ok.stdout.trim(), 'kernel.task_delayacct = 1');
      assert.equal(readFileSync(sysctl, 'utf8').trim(), '1');
    } finally {
      writeFileSync(sysctl, original);
    }
  });

  test('outside the initial pid namespace the exit listener is refused (why hostPID: true)', (t) => {
    if (!existsSync('/usr/bin/unshare') && spawnSync('unshare', ['--version']).status !== 0) {
      t.skip('unshare (util-linux) is not installed');
      return;
    }
    const r = probeUnder(['unshare', '--pid', '--fork', '--mount-proc', '--'], otherPid);
    assert.equal(r.register, 'EINVAL');
  });

  test('in another network namespace registration succeeds but no exit event arrives (why hostNetwork: true)', () => {
    const r = probeUnder(['unshare', '--net', '--'], otherPid);
    assert.ok(r.family > 0, 'the TASKSTATS family is visible in a new netns on this kernel');
    assert.equal(r.register, 'ok');
    assert.equal(r.exit_event, 'none');
  });
});
