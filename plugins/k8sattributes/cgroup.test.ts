import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { ATTR, type Attributes, type ComponentContext, type Sample } from '../../src/api/index.js';
import { parseCgroupPath } from './cgroup.js';
import { defaultK8sAttributesConfig, type K8sAttributesConfig } from './config.js';
import { k8sAttributesFactory } from './factory.js';
import { canUseCgroups, TestCgroups } from './testcgroups.js';

// Identifiers of real pods and containers (public fixtures: a kubectl dump of a minikube pod on
// Docker, a coredns pod on containerd, and the container-info library's cgroup fixture).
const CONTAINERD_POD = '5e8a560b-f166-4f91-9b8a-280dabafd10d';
const CONTAINERD_ID = '6819fb158dca3c004885a2bccdf272df840d283c524773a4b2ce96f45e388ac1';
const DOCKER_POD = 'd8aa9a47-ad0f-4bbe-bc12-ab31605d3211';
const DOCKER_ID = 'd8e1e33309272b4a4267e15f995ff7b6612532240cb61dc03a118659620226f2';
const FIXTURE_POD = '74c13223-5a00-11e9-b385-42010a80018d';
const FIXTURE_ID = '34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376';
const CRIO_ID = '9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d';
const STATIC_POD = '6ebb1e7d8a1ac0aa2b7b9ae5f8c49f2e'; // static pods: the kubelet's 32-hex manifest hash

const underscored = (uid: string) => uid.replace(/-/g, '_');

describe('parseCgroupPath (path strings)', () => {
  test('cgroupfs driver, path from a real /proc/PID/cgroup (container-info fixture)', () => {
    assert.deepEqual(parseCgroupPath(`/kubepods/besteffort/pod${FIXTURE_POD}/${FIXTURE_ID}`), {
      podUid: FIXTURE_POD,
      qosClass: 'BestEffort',
      containerId: FIXTURE_ID,
    });
  });

  test('systemd driver: underscores in the slice name become the canonical dashed UID', () => {
    const p = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${underscored(CONTAINERD_POD)}.slice/cri-containerd-${CONTAINERD_ID}.scope`;
    assert.deepEqual(parseCgroupPath(p), { podUid: CONTAINERD_POD, qosClass: 'Burstable', containerId: CONTAINERD_ID, runtime: 'containerd' });
  });

  test('pod-level cgroup (no container level) still gives the pod', () => {
    assert.deepEqual(parseCgroupPath(`/kubepods.slice/kubepods-pod${underscored(DOCKER_POD)}.slice`), { podUid: DOCKER_POD, qosClass: 'Guaranteed' });
  });

  test('systemd + CRI-O path quoted in the Kubernetes node e2e tests (conmon scope)', () => {
    // "example path (systemd): /sys/fs/cgroup/ kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b7632a2_..."
    const p =
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b7632a2_a56e_4278_987a_22de18008dbe.slice/crio-conmon-0bc5eac79e3ae7a0c2651f14722aa10fa333eb2325c2ca97da33aa284cda81b0.scope';
    assert.deepEqual(parseCgroupPath(p), { podUid: '0b7632a2-a56e-4278-987a-22de18008dbe', qosClass: 'Burstable' });
    const ctr = p.replace('crio-conmon-', 'crio-');
    assert.deepEqual(parseCgroupPath(ctr), {
      podUid: '0b7632a2-a56e-4278-987a-22de18008dbe',
      qosClass: 'Burstable',
      containerId: '0bc5eac79e3ae7a0c2651f14722aa10fa333eb2325c2ca97da33aa284cda81b0',
      runtime: 'cri-o',
    });
  });

  test('CRI-O conmon scope is the runtime monitor: pod only, no container id', () => {
    const p = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${underscored(FIXTURE_POD)}.slice/crio-conmon-${CRIO_ID}.scope`;
    assert.deepEqual(parseCgroupPath(p), { podUid: FIXTURE_POD, qosClass: 'BestEffort' });
  });

  test('Docker outside Kubernetes (neuvector fixtures: CentOS systemd scope, Debian cgroupfs)', () => {
    assert.deepEqual(parseCgroupPath(`/system.slice/docker-${CRIO_ID}.scope`), { containerId: CRIO_ID, runtime: 'docker' });
    assert.deepEqual(parseCgroupPath(`/docker/${DOCKER_ID}`), { containerId: DOCKER_ID, runtime: 'docker' });
  });

  test('paths left relative to a cgroup namespace (cgroupfs ancestors the receiver could not name)', () => {
    assert.deepEqual(parseCgroupPath(`/../../../besteffort/pod${FIXTURE_POD}/${FIXTURE_ID}`), {
      podUid: FIXTURE_POD,
      qosClass: 'BestEffort',
      containerId: FIXTURE_ID,
    });
    assert.deepEqual(parseCgroupPath(`/../../pod${FIXTURE_POD}/${FIXTURE_ID}`), { podUid: FIXTURE_POD, containerId: FIXTURE_ID });
    assert.equal(parseCgroupPath(`/../../elsewhere/pod${FIXTURE_POD}/${FIXTURE_ID}`), undefined, 'a pod-like name outside kubepods is not a pod');
    // systemd slice names spell their parents: relative paths parse as absolute ones do.
    const p = `/../../kubepods-burstable-pod${underscored(CONTAINERD_POD)}.slice/cri-containerd-${CONTAINERD_ID}.scope`;
    assert.deepEqual(parseCgroupPath(p), { podUid: CONTAINERD_POD, qosClass: 'Burstable', containerId: CONTAINERD_ID, runtime: 'containerd' });
  });

  test('paths that say nothing', () => {
    for (const p of [
      '/',
      '/system.slice/ssh.service',
      '/user.slice/user-1000.slice/session-2.scope',
      '/podman/pod123',
      '/kubepods/burstable/podnot-a-uid/x',
      '/other/pod74c13223-5a00-11e9-b385-42010a80018d/x',
    ]) {
      assert.equal(parseCgroupPath(p), undefined, p);
    }
  });
});

function ctx(): ComponentContext {
  return {
    id: 'k8sattributes',
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    telemetry: { dropped() {}, counter: () => ({ add() {} }), gauge() {} },
  };
}

function sampleFor(cgroupPath: string): Sample {
  return {
    schema: { id: 'test', metrics: [] },
    attributes: { [ATTR.EXECUTABLE_NAME]: 'sleep', [ATTR.CGROUP]: cgroupPath },
    values: new Float64Array(0),
    final: false,
    timeMs: Date.now(),
  };
}

interface Layout {
  name: string;
  dir: string;
  expect: Attributes;
}

const layouts: Layout[] = [
  {
    name: 'systemd driver, containerd, Burstable',
    dir: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${underscored(CONTAINERD_POD)}.slice/cri-containerd-${CONTAINERD_ID}.scope`,
    expect: { 'k8s.pod.uid': CONTAINERD_POD, 'k8s.pod.qos_class': 'Burstable', 'container.id': CONTAINERD_ID, 'container.runtime.name': 'containerd' },
  },
  {
    name: 'systemd driver, containerd, Guaranteed (no QoS level)',
    dir: `kubepods.slice/kubepods-pod${underscored(CONTAINERD_POD)}.slice/cri-containerd-${CONTAINERD_ID}.scope`,
    expect: { 'k8s.pod.uid': CONTAINERD_POD, 'k8s.pod.qos_class': 'Guaranteed', 'container.id': CONTAINERD_ID, 'container.runtime.name': 'containerd' },
  },
  {
    name: 'systemd driver, CRI-O, BestEffort',
    dir: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${underscored(FIXTURE_POD)}.slice/crio-${CRIO_ID}.scope`,
    expect: { 'k8s.pod.uid': FIXTURE_POD, 'k8s.pod.qos_class': 'BestEffort', 'container.id': CRIO_ID, 'container.runtime.name': 'cri-o' },
  },
  {
    name: 'systemd driver, Docker (cri-dockerd), BestEffort',
    dir: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${underscored(DOCKER_POD)}.slice/docker-${DOCKER_ID}.scope`,
    expect: { 'k8s.pod.uid': DOCKER_POD, 'k8s.pod.qos_class': 'BestEffort', 'container.id': DOCKER_ID, 'container.runtime.name': 'docker' },
  },
  {
    name: 'systemd driver nested under kubelet.slice (kind, nested nodes)',
    dir: `kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod${underscored(CONTAINERD_POD)}.slice/cri-containerd-${CONTAINERD_ID}.scope`,
    expect: { 'k8s.pod.uid': CONTAINERD_POD, 'k8s.pod.qos_class': 'Burstable', 'container.id': CONTAINERD_ID, 'container.runtime.name': 'containerd' },
  },
  {
    name: 'systemd driver, static pod (32-hex UID)',
    dir: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC_POD}.slice/cri-containerd-${CONTAINERD_ID}.scope`,
    expect: { 'k8s.pod.uid': STATIC_POD, 'k8s.pod.qos_class': 'Burstable', 'container.id': CONTAINERD_ID, 'container.runtime.name': 'containerd' },
  },
  {
    name: 'cgroupfs driver, containerd or Docker, Burstable',
    dir: `kubepods/burstable/pod${CONTAINERD_POD}/${CONTAINERD_ID}`,
    expect: { 'k8s.pod.uid': CONTAINERD_POD, 'k8s.pod.qos_class': 'Burstable', 'container.id': CONTAINERD_ID },
  },
  {
    name: 'cgroupfs driver, Guaranteed',
    dir: `kubepods/pod${DOCKER_POD}/${DOCKER_ID}`,
    expect: { 'k8s.pod.uid': DOCKER_POD, 'k8s.pod.qos_class': 'Guaranteed', 'container.id': DOCKER_ID },
  },
  {
    name: 'cgroupfs driver, CRI-O, BestEffort',
    dir: `kubepods/besteffort/pod${FIXTURE_POD}/crio-${CRIO_ID}`,
    expect: { 'k8s.pod.uid': FIXTURE_POD, 'k8s.pod.qos_class': 'BestEffort', 'container.id': CRIO_ID, 'container.runtime.name': 'cri-o' },
  },
  {
    name: 'a process in a sub-cgroup of a container (systemd inside the container)',
    dir: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${underscored(CONTAINERD_POD)}.slice/cri-containerd-${CONTAINERD_ID}.scope/init.scope`,
    expect: { 'k8s.pod.uid': CONTAINERD_POD, 'k8s.pod.qos_class': 'Burstable', 'container.id': CONTAINERD_ID, 'container.runtime.name': 'containerd' },
  },
  {
    name: 'Docker without Kubernetes, cgroupfs (/docker/<id>)',
    dir: `docker/${DOCKER_ID}`,
    expect: { 'container.id': DOCKER_ID, 'container.runtime.name': 'docker' },
  },
  {
    name: 'Docker without Kubernetes, systemd (docker-<id>.scope)',
    dir: `system.slice/docker-${DOCKER_ID}.scope`,
    expect: { 'container.id': DOCKER_ID, 'container.runtime.name': 'docker' },
  },
];

describe('k8sattributes from real cgroups (no API)', { timeout: 60_000, skip: canUseCgroups() ? false : 'needs root and a cgroup v2 hierarchy' }, () => {
  const cgroups = canUseCgroups() ? new TestCgroups('k8sattr') : undefined;
  after(() => cgroups?.cleanup());

  const config = (): K8sAttributesConfig => {
    const c = defaultK8sAttributesConfig();
    c.auth_type = 'none';
    c.extract.metadata = ['container.id', 'container.runtime.name', 'k8s.pod.uid', 'k8s.pod.qos_class'];
    return c;
  };

  for (const layout of layouts) {
    test(layout.name, async () => {
      const { cgroupPath } = await cgroups!.runIn(layout.dir);
      assert.equal(cgroupPath, `/${cgroups!.base}/${layout.dir}`, 'the kernel reports the cgroup we created');
      const p = await k8sAttributesFactory.create(ctx(), config());
      await p.start();
      const s = sampleFor(cgroupPath);
      const input = s.attributes;
      const [out] = await p.process([s]);
      assert.deepEqual(out!.attributes, { ...input, ...layout.expect });
      assert.notEqual(out!.attributes, input, 'a new object, the input is never mutated');
      assert.deepEqual(Object.keys(input), [ATTR.EXECUTABLE_NAME, ATTR.CGROUP]);
      // same input object again: the cached enriched object comes back
      const again = sampleFor(cgroupPath);
      again.attributes = input;
      assert.equal((await p.process([again]))[0]!.attributes, out!.attributes);
      await p.shutdown();
    });
  }

  test('a process outside any container keeps its very attributes object', async () => {
    const { cgroupPath } = await cgroups!.runIn('system.slice/cron.service');
    const p = await k8sAttributesFactory.create(ctx(), config());
    await p.start();
    const s = sampleFor(cgroupPath);
    const input = s.attributes;
    assert.equal((await p.process([s]))[0]!.attributes, input);
    await p.shutdown();
  });

  test('extract.metadata limits what is added', async () => {
    const { cgroupPath } = await cgroups!.runIn(layouts[0]!.dir);
    const c = config();
    c.extract.metadata = ['k8s.pod.uid'];
    const p = await k8sAttributesFactory.create(ctx(), c);
    await p.start();
    const [out] = await p.process([sampleFor(cgroupPath)]);
    assert.equal(out!.attributes['k8s.pod.uid'], CONTAINERD_POD);
    assert.equal(out!.attributes['container.id'], undefined);
    assert.equal(out!.attributes['k8s.pod.qos_class'], undefined);
    await p.shutdown();
  });
});
