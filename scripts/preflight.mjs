#!/usr/bin/env node
// What this machine offers the tests, probed once: root, the TASKSTATS generic netlink family,
// a cgroup v2 hierarchy, libnl-3, a C compiler. The probes use nothing of the agent (a raw
// netlink socket through libc, /proc/self/mountinfo, dlopen, `cc --version`), so a bug in the
// agent shows as a failing test, never as a missing capability.
// Usage: node scripts/preflight.mjs   prints {"caps":[...],"missing":{cap: why}} as JSON.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

/** Every capability a test file may declare on its `// test-requires:` line. */
export const CAPABILITIES = ['root', 'taskstats', 'cgroup2', 'libnl', 'cc'];

function probeRoot() {
  const uid = process.getuid?.();
  return uid === 0 ? undefined : `not root (uid ${uid})`;
}

/** The cgroup2 mount point from /proc/self/mountinfo (field 9 is the fs type, 5 the mount point). */
export function cgroup2Mount() {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post === undefined || post.split(' ')[0] !== 'cgroup2') continue;
    const fields = pre.split(' ');
    if (fields[3] !== '/') continue; // a bind mount of a sub-tree is not the hierarchy's root
    return fields[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

function probeCgroup2() {
  const m = cgroup2Mount();
  if (m === undefined) return 'no cgroup2 hierarchy mounted';
  if (!existsSync(join(m, 'cgroup.procs'))) return `${m} has no cgroup.procs`;
  return undefined;
}

function probeCc() {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return undefined;
  } catch (e) {
    return `no C compiler (cc: ${e.code ?? e.message})`;
  }
}

function koffi() {
  const require = createRequire(new URL('../package.json', import.meta.url));
  return require('koffi');
}

function probeLibnl() {
  try {
    const k = koffi();
    k.load('libnl-3.so.200');
    k.load('libnl-genl-3.so.200');
    return undefined;
  } catch (e) {
    return `libnl-3 not loadable (${String(e.message).split('\n')[0]})`;
  }
}

/**
 * Resolves the generic netlink family "TASKSTATS" with CTRL_CMD_GETFAMILY on a raw
 * NETLINK_GENERIC socket (works unprivileged). Missing when the kernel has no CONFIG_TASKSTATS,
 * or in a network namespace where older kernels do not register it.
 */
function probeTaskstats() {
  let k;
  try {
    k = koffi();
  } catch (e) {
    return `koffi not loadable (${e.message})`;
  }
  const lib = k.load('libc.so.6');
  const socket = lib.func('int socket(int, int, int)');
  const send = lib.func('intptr_t send(int, void *, size_t, int)');
  const recv = lib.func('intptr_t recv(int, void *, size_t, int)');
  const setsockopt = lib.func('int setsockopt(int, int, int, void *, uint32_t)');
  const close = lib.func('int close(int)');
  const fd = socket(16 /* AF_NETLINK */, 2 /* SOCK_DGRAM */ | 0o2000000 /* CLOEXEC */, 16 /* NETLINK_GENERIC */);
  if (fd < 0) return `no generic netlink socket (errno ${k.errno()})`;
  try {
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(2n, 0); // SO_RCVTIMEO 2 s: never hang the run
    setsockopt(fd, 1 /* SOL_SOCKET */, 20 /* SO_RCVTIMEO */, tv, 16);
    const name = Buffer.from('TASKSTATS\0');
    const attrLen = 4 + name.length;
    const len = 16 + 4 + ((attrLen + 3) & ~3);
    const msg = Buffer.alloc(len);
    msg.writeUInt32LE(len, 0);
    msg.writeUInt16LE(16 /* GENL_ID_CTRL */, 4);
    msg.writeUInt16LE(1 /* NLM_F_REQUEST */, 6);
    msg.writeUInt32LE(1, 8);
    msg[16] = 3; // CTRL_CMD_GETFAMILY
    msg[17] = 1;
    msg.writeUInt16LE(attrLen, 20);
    msg.writeUInt16LE(2 /* CTRL_ATTR_FAMILY_NAME */, 22);
    name.copy(msg, 24);
    if (send(fd, msg, len, 0) !== len) return `send to the generic netlink controller failed (errno ${k.errno()})`;
    const reply = Buffer.alloc(8192);
    const n = Number(recv(fd, reply, reply.length, 0));
    if (n < 16) return `no answer from the generic netlink controller (errno ${k.errno()})`;
    if (reply.readUInt16LE(4) === 2 /* NLMSG_ERROR */) {
      const err = -reply.readInt32LE(16);
      return err === 2
        ? 'no TASKSTATS generic netlink family (kernel without CONFIG_TASKSTATS, or another network namespace)'
        : `TASKSTATS lookup failed (errno ${err})`;
    }
    return undefined;
  } finally {
    close(fd);
  }
}

const PROBES = { root: probeRoot, taskstats: probeTaskstats, cgroup2: probeCgroup2, libnl: probeLibnl, cc: probeCc };

/**
 * Runs every probe: { caps: present names, missing: { name: why } }. TEST_CAPS_DENY=taskstats,cc
 * treats those as missing (to see what a machine without them runs).
 */
export function preflight() {
  const caps = [];
  const missing = {};
  const deny = (process.env.TEST_CAPS_DENY ?? '').split(',').filter((c) => c !== '');
  for (const name of CAPABILITIES) {
    let why;
    try {
      why = deny.includes(name) ? 'denied by TEST_CAPS_DENY' : PROBES[name]();
    } catch (e) {
      why = `probe failed: ${e.message}`;
    }
    if (why === undefined) caps.push(name);
    else missing[name] = why;
  }
  return { caps, missing };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(preflight()));
