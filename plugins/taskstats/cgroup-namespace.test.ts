/**
 * Absolute cgroup paths inside a cgroup namespace: the real agent started in a cgroup namespace
 * of its own (unshare --cgroup) from a kubepods-style container cgroup, with real processes in
 * other pods' cgroups, for the systemd and the cgroupfs layouts of the kubelet. Truth is what the
 * kernel prints for each process to this test, which runs in the root cgroup namespace.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupNamespaceView, detectCgroupMounts, podUidFromMountinfo } from './cgroup-path.js';
import { parseCgroupPath } from '../k8sattributes/cgroup.js';
import { repoRoot } from '../../test/support/helm.js';
import { needs } from '../../test/support/caps.js';

const v2 = detectCgroupMounts().v2;
const skip =
  needs('root', 'taskstats', 'libnl', 'cgroup2') ||
  (process.getuid?.() !== 0
    ? 'needs root (creates cgroups)'
    : v2 === undefined
      ? 'no cgroup v2 hierarchy'
      : spawnSync('unshare', ['--version']).status !== 0
        ? 'no unshare (util-linux)'
        : false);

const hex64 = () => randomBytes(32).toString('hex');

describe('the pure view: what is known from pid 1, the other paths and the pod uid', () => {
  const uid = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
  const pod = `kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice`;
  const others = [
    '/../cri-containerd-aaaa.scope', // our pod's sandbox
    '/../../kubepods-burstable-podx.slice/cri-containerd-b.scope', // a burstable pod
    '/../../../kubepods-besteffort.slice/kubepods-besteffort-pody.slice/cri-containerd-c.scope',
    '/../../../../system.slice/containerd.service',
  ];
  test('systemd layout with the uid: every ancestor known', () => {
    const view = cgroupNamespaceView('/../../../../init.scope', others, uid);
    assert.deepEqual(view.ancestors, ['', '/kubepods.slice', '/kubepods.slice/kubepods-burstable.slice', `/kubepods.slice/kubepods-burstable.slice/${pod}`]);
    assert.equal(view.absolute('/../cri-containerd-aaaa.scope'), `/kubepods.slice/kubepods-burstable.slice/${pod}/cri-containerd-aaaa.scope`);
    assert.equal(view.absolute('/../../../../init.scope'), '/init.scope');
    assert.equal(view.absolute('/'), undefined, "the agent's own container cannot be named");
  });
  test('without the uid the pod level stays unknown, the rest is known', () => {
    const view = cgroupNamespaceView('/../../../../init.scope', others, undefined);
    assert.equal(view.absolute('/../cri-containerd-aaaa.scope'), undefined);
    assert.equal(
      view.absolute('/../../kubepods-burstable-podz.slice/x.scope'),
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podz.slice/x.scope',
    );
  });
  test('an ambiguous QoS level is not guessed (cgroupfs, no sibling tells)', () => {
    const view = cgroupNamespaceView('/../../../..', ['/../../pod0000/abc'], uid);
    assert.equal(view.ancestors[1], '/kubepods');
    assert.equal(view.ancestors[2], undefined, 'burstable or besteffort: nothing tells');
    assert.equal(view.absolute('/../../../besteffort/podq/c'), '/kubepods/besteffort/podq/c');
    const told = cgroupNamespaceView('/../../../..', ['/../../../besteffort/podq/c'], uid);
    assert.equal(told.ancestors[3], `/kubepods/burstable/pod${uid}`, 'a besteffort sibling: ours is burstable');
  });
  test('not nested: paths are absolute already', () => {
    assert.equal(cgroupNamespaceView('/init.scope', [], undefined).nested, false);
  });
  test('the pod uid comes from the kubelet bind mounts in mountinfo', () => {
    const line = `1830 1812 0:22 /var/lib/kubelet/pods/${uid}/etc-hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw`;
    assert.equal(podUidFromMountinfo(`25 1 0:2 / / rw - overlay overlay rw\n${line}\n`), uid);
  });
});

interface Layout {
  name: string;
  /** Cgroup paths (absolute, below the v2 root) of: the agent's container, its pod's sandbox, and other pods' containers. */
  agent: string;
  sandbox: string;
  others: string[];
  podUid: string;
}

function systemdLayout(): Layout {
  const pre = `tsachart${process.pid}`; // no '-': it separates slice levels
  const kube = `/${pre}.slice/${pre}-kubepods.slice`;
  const slice = (qos: string | undefined, uid: string) => `${pre}-kubepods${qos ? `-${qos}` : ''}-pod${uid.replace(/-/g, '_')}.slice`;
  const podUid = randomUUID();
  const pod = `${kube}/${pre}-kubepods-burstable.slice/${slice('burstable', podUid)}`;
  return {
    name: 'systemd',
    podUid,
    agent: `${pod}/cri-containerd-${hex64()}.scope`,
    sandbox: `${pod}/cri-containerd-${hex64()}.scope`,
    others: [
      `${kube}/${pre}-kubepods-burstable.slice/${slice('burstable', randomUUID())}/cri-containerd-${hex64()}.scope`,
      `${kube}/${pre}-kubepods-besteffort.slice/${slice('besteffort', randomUUID())}/cri-containerd-${hex64()}.scope`,
      `${kube}/${slice(undefined, randomUUID())}/cri-containerd-${hex64()}.scope`,
    ],
  };
}

/** The kubelet's cgroupfs names sit at the root (its default cgroup root); only uuid/hex levels are this run's. */
function cgroupfsLayout(): Layout {
  const podUid = randomUUID();
  return {
    name: 'cgroupfs',
    podUid,
    agent: `/kubepods/besteffort/pod${podUid}/${hex64()}`,
    sandbox: `/kubepods/besteffort/pod${podUid}/${hex64()}`,
    others: [`/kubepods/burstable/pod${randomUUID()}/${hex64()}`, `/kubepods/pod${randomUUID()}/${hex64()}`],
  };
}

describe('the agent in a cgroup namespace of its own reports absolute cgroup paths', { skip, timeout: 120_000 }, () => {
  const created: string[] = [];
  const children: ChildProcess[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'tsa-chart-cgns-'));
  const mkdirs = (path: string) => {
    let dir = v2!;
    for (const seg of path.split('/').filter(Boolean)) {
      dir = join(dir, seg);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        created.push(dir);
      }
    }
    return dir;
  };
  const runIn = (path: string, cmd: string, args: string[]) => {
    const dir = mkdirs(path);
    const child = spawn('sh', ['-c', `echo $$ > ${join(dir, 'cgroup.procs')} && exec "$@"`, 'sh', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    return child;
  };
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    for (const dir of created.reverse()) {
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  for (const make of [systemdLayout, cgroupfsLayout]) {
    const layout = make();
    test(`${layout.name} layout`, async () => {
      const sleepers = [layout.sandbox, ...layout.others].map((p) => runIn(p, 'sleep', ['120']));
      await new Promise((r) => setTimeout(r, 200));
      // Truth: what the kernel prints for each sleeper to this test (root cgroup namespace).
      const truth = sleepers.map((c) => /^0::(.*)$/m.exec(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8'))![1]!);
      assert.deepEqual(truth, [layout.sandbox, ...layout.others]);

      const port = 20000 + (process.pid % 20000);
      const telemetryPort = port + 1;
      const config = join(scratch, `${layout.name}.yaml`);
      writeFileSync(
        config,
        [
          'receivers:',
          '  taskstats: {collection_interval: 1s, delay_accounting: keep}',
          'exporters:',
          `  prometheus: {endpoint: "127.0.0.1:${port}"}`,
          'service:',
          `  telemetry: {metrics: {address: "127.0.0.1:${telemetryPort}"}, logs: {level: info}}`,
          '  pipelines:',
          '    metrics: {receivers: [taskstats], exporters: [prometheus]}',
          '',
        ].join('\n'),
      );
      // The kubelet's bind mount that names the pod, in the agent's own mount namespace.
      const podDir = join(scratch, 'var/lib/kubelet/pods', layout.podUid);
      mkdirSync(podDir, { recursive: true });
      writeFileSync(join(podDir, 'etc-hosts'), '127.0.0.1 localhost\n');
      writeFileSync(join(scratch, 'hosts-target'), '');
      const inner = `mount --bind ${join(podDir, 'etc-hosts')} ${join(scratch, 'hosts-target')} && exec ${process.execPath} ${join(repoRoot, 'bin', 'taskstats-agent')} run --config ${config}`;
      const agent = runIn(layout.agent, 'unshare', ['--cgroup', '--mount', 'sh', '-c', inner]);
      let log = '';
      agent.stdout.on('data', (d: Buffer) => (log += d.toString()));
      agent.stderr.on('data', (d: Buffer) => (log += d.toString()));
      try {
        const labels = new Set<string>();
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline && !truth.every((t) => labels.has(t))) {
          await new Promise((r) => setTimeout(r, 1000));
          const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
            (r) => r.text(),
            () => '',
          );
          for (const m of text.matchAll(/process_linux_cgroup="([^"]*)"/g)) labels.add(m[1]!);
        }
        for (const t of truth) assert.ok(labels.has(t), `${t} reported absolute; labels: ${[...labels].join(' ')}\n${log}`);
        for (const l of labels) assert.ok(!l.startsWith('/..'), `no path left relative outside the agent's container: ${l}`);
        assert.ok(labels.has('/'), "the agent's own container stays as printed");
        const self = await fetch(`http://127.0.0.1:${telemetryPort}/metrics`).then((r) => r.text());
        const unresolved = /cgroup_paths_unresolved\S*\s+(\d+)/.exec(self);
        assert.ok(
          unresolved && Number(unresolved[1]) >= 1,
          `counted: ${self
            .split('\n')
            .filter((x) => x.includes('unresolved'))
            .join('\n')}`,
        );
        assert.match(log, /cgroup namespace; cgroup paths of other containers are made absolute/);
        // The k8sattributes processor reads pod uid and QoS from the absolute paths.
        for (const t of truth) assert.ok(parseCgroupPath(t)?.podUid, `k8sattributes parses ${t}`);
        assert.equal(parseCgroupPath(layout.sandbox)?.podUid, layout.podUid);
      } finally {
        agent.kill('SIGTERM');
        await new Promise((r) => agent.once('exit', r));
        for (const c of sleepers) c.kill('SIGKILL');
      }
    });
  }
});
