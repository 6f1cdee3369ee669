import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ATTR, SeverityNumber, type Attributes, type LogRecord, type Processor, type Sample } from '../../src/api/index.js';
import { recordingContext } from '../../test/support/component-context.js';
import { waitFor } from '../../test/support/workload.js';
import { FakeKubeApiServer, type PodJson } from '../../test/support/fake-kube-apiserver.js';
import { defaultK8sAttributesConfig, type K8sAttributesConfig } from './config.js';
import { k8sAttributesFactory } from './factory.js';
import { K8sAttributesProcessor } from './processor.js';
import { canUseCgroups, TestCgroups } from './testcgroups.js';

const testdata = fileURLToPath(new URL('../../../plugins/k8sattributes/testdata/', import.meta.url));
const NODE = 'node-under-test';
const fixtures = (JSON.parse(readFileSync(join(testdata, 'pods.json'), 'utf8')) as { items: PodJson[] }).items;
const coredns = (): PodJson => ({ ...structuredClone(fixtures[0]!), spec: { ...structuredClone(fixtures[0]!.spec), nodeName: NODE } });
const queue = (): PodJson => ({ ...structuredClone(fixtures[1]!), spec: { ...structuredClone(fixtures[1]!.spec), nodeName: NODE } });
const COREDNS_UID = '5e8a560b-f166-4f91-9b8a-280dabafd10d';
const COREDNS_CID = '6819fb158dca3c004885a2bccdf272df840d283c524773a4b2ce96f45e388ac1';
const QUEUE_UID = 'd8aa9a47-ad0f-4bbe-bc12-ab31605d3211';
const QUEUE_CID = 'd8e1e33309272b4a4267e15f995ff7b6612532240cb61dc03a118659620226f2';

/** A sample as the receiver would build it for a process in `cgroupPath`; `attributes` is shared. */
function processOne(p: Processor, attributes: Attributes): Attributes {
  const s: Sample = { schema: { id: 't', metrics: [] }, attributes, values: new Float64Array(0), final: false, timeMs: 0 };
  const out = p.process([s]);
  assert.ok(Array.isArray(out), 'process() must be synchronous');
  return out[0]!.attributes;
}

describe('k8sattributes with the Kubernetes API (local fake API server)', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'k8sattr-'));
  const kubeconfig = join(dir, 'kubeconfig');
  const cgroups = canUseCgroups() ? new TestCgroups('k8sapi') : undefined;
  // The processor reads only the cgroup path's text: as root a real process in a real cgroup
  // gives it (as /proc/PID/cgroup shows it); elsewhere the same text, so these tests of the API
  // side run anywhere.
  const cgroupOf = async (d: string): Promise<string> => (cgroups ? (await cgroups.runIn(d)).cgroupPath : `/taskstats-k8sapi-${process.pid}/${d}`);
  let server: FakeKubeApiServer;
  let corednsAttrs: Attributes;
  let queueAttrs: Attributes;
  let otherAttrs: Attributes;
  const processors: Processor[] = [];

  const config = (over: Partial<K8sAttributesConfig> = {}): K8sAttributesConfig => {
    const c = defaultK8sAttributesConfig();
    c.auth_type = 'kubeConfig';
    c.kube_config_path = kubeconfig;
    c.filter.node = NODE;
    c.pod_delete_grace = 400;
    c.extract.labels = [{ key: 'k8s-app', tag_name: 'app' }, { key: 'component' }];
    c.extract.annotations = [{ key: 'shadow.clusterpedia.io/cluster-name' }];
    return { ...c, ...over };
  };
  const start = async (c: K8sAttributesConfig, rec = recordingContext('k8sattributes')) => {
    const p = await k8sAttributesFactory.create(rec, c);
    assert.ok(p instanceof K8sAttributesProcessor);
    processors.push(p);
    // That start() does not wait for the API is proven by the slow-API test (no metadata yet when it returns).
    await p.start();
    return p;
  };

  before(async () => {
    server = new FakeKubeApiServer({ token: 'test-token-7f3a' });
    await server.start();
    server.writeKubeconfig(kubeconfig);
    server.addPod(coredns());
    server.addPod(queue());
    // a pod of another node: must never be listed for this node
    const elsewhere = queue();
    elsewhere.metadata.name = 'queue-elsewhere';
    elsewhere.metadata.uid = '0a0b0c0d-1111-2222-3333-444455556666';
    elsewhere.spec.nodeName = 'another-node';
    server.addPod(elsewhere);
    const mk = async (d: string) => ({ [ATTR.EXECUTABLE_NAME]: 'sleep', [ATTR.CGROUP]: await cgroupOf(d) });
    corednsAttrs = await mk(
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${COREDNS_UID.replace(/-/g, '_')}.slice/cri-containerd-${COREDNS_CID}.scope`,
    );
    queueAttrs = await mk(`kubepods/besteffort/pod${QUEUE_UID}/${QUEUE_CID}`);
    otherAttrs = await mk(`kubepods/besteffort/pod0a0b0c0d-1111-2222-3333-444455556666/${'e'.repeat(64)}`);
  });

  // Every processor a test started is shut down after it (even when it failed), and its watch
  // connection must be gone from the server: shutdown releases what it holds.
  afterEach(async () => {
    for (const p of processors.splice(0)) await p.shutdown();
    await waitFor('watches closed after shutdown', () => server.openWatches === 0, 3000);
  });

  after(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset when before() failed
    await server?.close();
    await cgroups?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('lists the pods of this node and adds pod, container, workload, label and annotation attributes', async () => {
    const p = await start(config());
    await waitFor('coredns metadata', () => processOne(p, corednsAttrs)['k8s.pod.name'] !== undefined);
    assert.deepEqual(processOne(p, corednsAttrs), {
      ...corednsAttrs,
      'container.id': COREDNS_CID,
      'k8s.pod.uid': COREDNS_UID,
      'k8s.pod.qos_class': 'Burstable',
      'k8s.pod.name': 'coredns-74586cf9b6-2fqjz',
      'k8s.namespace.name': 'kube-system',
      'k8s.node.name': NODE,
      'k8s.deployment.name': 'coredns',
      'k8s.container.name': 'coredns',
      app: 'kube-dns',
      'k8s.pod.annotations.shadow.clusterpedia.io/cluster-name': 'cluster-example',
    });
    const q = processOne(p, queueAttrs);
    assert.equal(q['k8s.pod.name'], 'queue-l4dv8');
    assert.equal(q['k8s.container.name'], 'queue');
    assert.equal(q['k8s.pod.labels.component'], 'queue');
    assert.equal(q['k8s.deployment.name'], undefined, 'a ReplicaSet without pod-template-hash is no Deployment');
    // the other node's pod is not known: only what its cgroup says
    const o = processOne(p, otherAttrs);
    assert.equal(o['k8s.pod.uid'], '0a0b0c0d-1111-2222-3333-444455556666');
    assert.equal(o['k8s.pod.name'], undefined);

    const list = server.listRequests()[0]!;
    assert.equal(list.query.fieldSelector, `spec.nodeName=${NODE}`);
    assert.equal(list.authorization, 'Bearer test-token-7f3a');
    await waitFor('a watch', () => server.watchRequests().length > 0);
    const watch = server.watchRequests()[0]!;
    assert.equal(watch.query.fieldSelector, `spec.nodeName=${NODE}`);
    assert.equal(watch.query.allowWatchBookmarks, 'true');
    assert.ok(Number(watch.query.resourceVersion) > 0, 'the watch starts at the list resourceVersion');
    await p.shutdown();
  });

  test('log records (exit events) get the attributes samples get, in their own object, and follow pod changes', async () => {
    const p = await start(config());
    await waitFor('coredns metadata', () => processOne(p, corednsAttrs)['k8s.pod.name'] !== undefined);
    // an exit event as the taskstats receiver builds it: its own attributes object per record
    const event = (a: Attributes, pid: number): LogRecord => ({
      timeMs: Date.now(),
      severityNumber: SeverityNumber.WARN,
      eventName: 'process.exit',
      body: 'sleep exited with code 3',
      attributes: { ...a, 'process.pid': pid, 'process.exit.code': 3 },
    });
    const batch = [
      event(corednsAttrs, 101),
      event(queueAttrs, 102),
      event({ [ATTR.EXECUTABLE_NAME]: 'sshd', [ATTR.CGROUP]: '/system.slice/ssh.service' }, 103),
    ];
    const inputs = batch.map((r) => r.attributes);
    const out = p.processLogs(batch);
    assert.equal(out.length, 3, 'nothing dropped');
    assert.deepEqual(out[0]!.attributes, { ...processOne(p, corednsAttrs), 'process.pid': 101, 'process.exit.code': 3 });
    assert.deepEqual(out[1]!.attributes, { ...processOne(p, queueAttrs), 'process.pid': 102, 'process.exit.code': 3 });
    assert.deepEqual(
      out[2]!.attributes,
      { [ATTR.EXECUTABLE_NAME]: 'sshd', [ATTR.CGROUP]: '/system.slice/ssh.service', 'process.pid': 103, 'process.exit.code': 3 },
      'not a container',
    );
    assert.equal(out[0]!.attributes, inputs[0], "the record's own object, written in place");
    assert.equal(corednsAttrs['k8s.pod.name'], undefined, 'the shared sample attributes are untouched');
    server.modifyPod('default', 'queue-l4dv8', (pod) => {
      pod.metadata.labels.component = 'queue-v3';
    });
    await waitFor('MODIFIED label on records', () => p.processLogs([event(queueAttrs, 104)])[0]!.attributes['k8s.pod.labels.component'] === 'queue-v3');
    server.modifyPod('default', 'queue-l4dv8', (pod) => {
      pod.metadata.labels.component = 'queue'; // as the later tests expect it
    });
    await waitFor('label restored', () => processOne(p, queueAttrs)['k8s.pod.labels.component'] === 'queue');
  });

  test('watch events: ADDED, MODIFIED (cached enrichment refreshed), DELETED (kept for the grace period)', async () => {
    const p = await start(config());
    await waitFor('initial list', () => processOne(p, queueAttrs)['k8s.pod.name'] !== undefined);
    await waitFor('a watch', () => server.openWatches > 0);

    // ADDED: a new pod on this node
    const fresh = queue();
    fresh.metadata.name = 'queue-new01';
    fresh.metadata.uid = '11111111-2222-4333-8444-555555555555';
    fresh.status.containerStatuses[0]!.containerID = `containerd://${'a'.repeat(64)}`;
    server.addPod(fresh);
    const freshAttrs = {
      [ATTR.EXECUTABLE_NAME]: 'sleep',
      [ATTR.CGROUP]: await cgroupOf(
        `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod11111111_2222_4333_8444_555555555555.slice/cri-containerd-${'a'.repeat(64)}.scope`,
      ),
    };
    await waitFor('ADDED pod', () => processOne(p, freshAttrs)['k8s.pod.name'] === 'queue-new01');

    // MODIFIED: a label changes; the same input attributes object gets a refreshed output
    const before = processOne(p, queueAttrs);
    assert.equal(before['k8s.pod.labels.component'], 'queue');
    server.modifyPod('default', 'queue-l4dv8', (pod) => {
      pod.metadata.labels.component = 'queue-v2';
    });
    await waitFor('MODIFIED label', () => processOne(p, queueAttrs)['k8s.pod.labels.component'] === 'queue-v2');
    const afterMod = processOne(p, queueAttrs);
    assert.notEqual(afterMod, before);
    assert.equal(processOne(p, queueAttrs), afterMod, 'cached again once rebuilt');

    // DELETED: late exits still get the metadata during pod_delete_grace, then only the cgroup facts
    server.deletePod('default', 'queue-new01');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(processOne(p, freshAttrs)['k8s.pod.name'], 'queue-new01', 'kept during the grace period');
    await waitFor('grace expiry', () => processOne(p, freshAttrs)['k8s.pod.name'] === undefined, 3000);
    assert.equal(processOne(p, freshAttrs)['k8s.pod.uid'], '11111111-2222-4333-8444-555555555555');
    await p.shutdown();
  });

  test('a watch broken mid-stream resumes from the last resourceVersion without relisting', async () => {
    const rec = recordingContext('k8sattributes');
    const p = await start(config(), rec);
    await waitFor('watch', () => server.openWatches > 0 && processOne(p, corednsAttrs)['k8s.pod.name'] !== undefined);
    const lists = server.listRequests().length;
    const watches = server.watchRequests().length;
    server.modifyPod('kube-system', 'coredns-74586cf9b6-2fqjz', (pod) => {
      pod.metadata.labels['k8s-app'] = 'dns-before-break';
    });
    await waitFor('event before the break', () => processOne(p, corednsAttrs).app === 'dns-before-break');
    const seenRv = server.currentResourceVersion;
    assert.equal(server.breakWatches(), 1, 'exactly the watch of this processor');
    // changes while the client is disconnected
    server.modifyPod('kube-system', 'coredns-74586cf9b6-2fqjz', (pod) => {
      pod.metadata.labels['k8s-app'] = 'dns-during-break';
    });
    await waitFor('resumed watch delivers the missed event', () => processOne(p, corednsAttrs).app === 'dns-during-break', 10000);
    const resumed = server.watchRequests().slice(watches);
    assert.ok(resumed.length >= 1);
    assert.equal(resumed[0]!.query.resourceVersion, seenRv, 'resumed from the last resourceVersion seen');
    assert.equal(server.listRequests().length, lists, 'no relist for a broken watch');
    assert.ok((rec.counters.get('k8s_api_errors') ?? 0) >= 1, 'the break is counted');
    await p.shutdown();
  });

  test('410 Gone on resume (history compacted) forces a relist that catches up, deletions included', async () => {
    const p = await start(config());
    await waitFor('watch', () => server.openWatches > 0 && processOne(p, queueAttrs)['k8s.pod.name'] !== undefined);
    // a pod this processor knows about, deleted while it is disconnected
    const gone = queue();
    gone.metadata.name = 'queue-gone';
    gone.metadata.uid = '99999999-8888-4777-8666-555555555555';
    server.addPod(gone);
    const goneAttrs = { [ATTR.EXECUTABLE_NAME]: 'sleep', [ATTR.CGROUP]: `/kubepods/besteffort/pod99999999-8888-4777-8666-555555555555/${'b'.repeat(64)}` };
    await waitFor('ADDED queue-gone', () => processOne(p, goneAttrs)['k8s.pod.name'] === 'queue-gone');
    const lists = server.listRequests().length;
    server.breakWatches();
    server.deletePod('default', 'queue-gone');
    server.modifyPod('default', 'queue-l4dv8', (pod) => {
      pod.metadata.labels.component = 'after-compaction';
    });
    server.compact();
    await waitFor('relist after 410', () => processOne(p, queueAttrs)['k8s.pod.labels.component'] === 'after-compaction', 10000);
    assert.equal(server.listRequests().length, lists + 1, 'exactly one relist');
    await waitFor('deleted pod forgotten after grace', () => processOne(p, goneAttrs)['k8s.pod.name'] === undefined, 3000);
    await p.shutdown();
  });

  test('a watch that goes silent (dead connection, no reset) is aborted after idleTimeoutMs and resumed', async () => {
    server.hangWatches = true;
    try {
      const p = await start(config());
      p.watcher!.idleTimeoutMs = 800;
      await waitFor('list', () => processOne(p, queueAttrs)['k8s.pod.name'] !== undefined);
      await waitFor('a (silent) watch', () => server.openWatches > 0);
      const watches = server.watchRequests().length;
      const listRv = server.watchRequests()[watches - 1]!.query.resourceVersion;
      server.modifyPod('default', 'queue-l4dv8', (pod) => {
        pod.metadata.labels.component = 'while-silent';
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.notEqual(processOne(p, queueAttrs)['k8s.pod.labels.component'], 'while-silent', 'nothing arrives on a silent watch');
      server.hangWatches = false;
      await waitFor('event after the reconnection', () => processOne(p, queueAttrs)['k8s.pod.labels.component'] === 'while-silent', 10_000);
      const resumed = server.watchRequests().slice(watches);
      assert.ok(resumed.length >= 1);
      assert.equal(resumed[resumed.length - 1]!.query.resourceVersion, listRv, 'resumed from the last resourceVersion it had');
    } finally {
      server.hangWatches = false;
    }
  });

  test('bookmarks advance the resume point', async () => {
    const p = await start(config());
    await waitFor('watch', () => server.openWatches > 0 && processOne(p, queueAttrs)['k8s.pod.name'] !== undefined);
    // a change on another node moves the resourceVersion without an event for this node
    server.modifyPod('default', 'queue-elsewhere', (pod) => {
      pod.metadata.labels.component = 'x';
    });
    server.sendBookmark();
    const bookmarkRv = server.currentResourceVersion;
    await new Promise((r) => setTimeout(r, 100));
    const watches = server.watchRequests().length;
    server.endWatches(); // a clean end (server-side timeout): the client reconnects at once
    await waitFor('reconnect', () => server.watchRequests().length > watches);
    assert.equal(server.watchRequests()[watches]!.query.resourceVersion, bookmarkRv);
    await p.shutdown();
  });

  test('a slow API never holds samples back: start() returns, process() passes what the cgroup says', async () => {
    server.listDelayMs = 3000;
    try {
      const p = await start(config());
      // process() is synchronous: it cannot wait for the API; what it gives before the list is the cgroup's part.
      const out = processOne(p, corednsAttrs);
      assert.equal(out['k8s.pod.uid'], COREDNS_UID);
      assert.equal(out['k8s.pod.name'], undefined, 'start() returned before the list: metadata not there yet');
      await waitFor('metadata after the slow list', () => processOne(p, corednsAttrs)['k8s.pod.name'] !== undefined, 8000);
      await p.shutdown();
    } finally {
      server.listDelayMs = 0;
    }
  });

  test('an absent API (connection refused) or a rejected token: data flows, errors are counted and retried', async () => {
    const downDir = mkdtempSync(join(tmpdir(), 'k8sattr-down-'));
    try {
      const closed = new FakeKubeApiServer();
      await closed.start();
      const closedKubeconfig = join(downDir, 'kubeconfig');
      closed.writeKubeconfig(closedKubeconfig);
      await closed.close();
      const rec = recordingContext('k8sattributes');
      const p = await start(config({ kube_config_path: closedKubeconfig }), rec);
      await waitFor('an error counted', () => (rec.counters.get('k8s_api_errors') ?? 0) >= 1);
      assert.equal(processOne(p, queueAttrs)['container.id'], QUEUE_CID);
      assert.ok(rec.warnings.some((w) => /pod list\/watch failed/.test(w)));
      await p.shutdown();

      const wrongToken = new FakeKubeApiServer({ token: 'right' });
      await wrongToken.start();
      wrongToken.token = undefined;
      const wrongKubeconfig = join(downDir, 'wrong');
      wrongToken.token = 'wrong';
      wrongToken.writeKubeconfig(wrongKubeconfig);
      wrongToken.token = 'right';
      wrongToken.addPod(coredns());
      const rec2 = recordingContext('k8sattributes');
      const p2 = await start(config({ kube_config_path: wrongKubeconfig }), rec2);
      await waitFor('401 counted', () => (rec2.counters.get('k8s_api_errors') ?? 0) >= 1);
      assert.equal(processOne(p2, corednsAttrs)['k8s.pod.name'], undefined);
      assert.equal(processOne(p2, corednsAttrs)['k8s.pod.uid'], COREDNS_UID);
      await p2.shutdown();
      await wrongToken.close();
    } finally {
      rmSync(downDir, { recursive: true, force: true });
    }
  });

  const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
  test(
    'in-cluster: service account token and CA over https, node name from K8S_NODE_NAME, auth_type auto',
    { skip: hasOpenssl ? false : 'needs the openssl CLI to make a certificate' },
    async () => {
      const sa = mkdtempSync(join(tmpdir(), 'k8sattr-sa-'));
      const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT, node: process.env.K8S_NODE_NAME };
      let tlsServer: FakeKubeApiServer | undefined;
      try {
        // a self-signed server certificate for 127.0.0.1, as the cluster CA would issue
        const r = spawnSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'rsa:2048',
            '-nodes',
            '-keyout',
            join(sa, 'key.pem'),
            '-out',
            join(sa, 'cert.pem'),
            '-days',
            '1',
            '-subj',
            '/CN=kube-apiserver',
            '-addext',
            'subjectAltName=IP:127.0.0.1',
          ],
          { encoding: 'utf8' },
        );
        assert.equal(r.status, 0, `openssl: ${r.stderr}`);
        const dir = join(sa, 'var/run/secrets/kubernetes.io/serviceaccount');
        mkdirSync(dir, { recursive: true });
        const token = 'eyJhbGciOiJSUzI1NiJ9.in-cluster-test-token';
        writeFileSync(join(dir, 'token'), token);
        writeFileSync(join(dir, 'ca.crt'), readFileSync(join(sa, 'cert.pem')));
        writeFileSync(join(dir, 'namespace'), 'observability');
        tlsServer = new FakeKubeApiServer({
          token,
          tls: { key: readFileSync(join(sa, 'key.pem'), 'utf8'), cert: readFileSync(join(sa, 'cert.pem'), 'utf8') },
        });
        await tlsServer.start();
        const pod = coredns();
        pod.spec.nodeName = 'node-from-env';
        tlsServer.addPod(pod);
        process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
        process.env.KUBERNETES_SERVICE_PORT = new URL(tlsServer.url).port;
        process.env.K8S_NODE_NAME = 'node-from-env';
        K8sAttributesProcessor.serviceAccountPathPrefix = sa;
        const c = config({ auth_type: 'auto', kube_config_path: undefined });
        c.filter = { node_from_env_var: 'K8S_NODE_NAME' };
        const p = await start(c);
        await waitFor('metadata over https', () => processOne(p, corednsAttrs)['k8s.pod.name'] === 'coredns-74586cf9b6-2fqjz');
        const list = tlsServer.listRequests()[0]!;
        assert.equal(list.authorization, `Bearer ${token}`, 'the service account token');
        assert.equal(list.query.fieldSelector, 'spec.nodeName=node-from-env');
        assert.equal(processOne(p, corednsAttrs)['k8s.node.name'], 'node-from-env');
        await p.shutdown();
        await waitFor('https watch closed', () => tlsServer!.openWatches === 0, 3000);
      } finally {
        K8sAttributesProcessor.serviceAccountPathPrefix = '';
        for (const [k, v] of [
          ['KUBERNETES_SERVICE_HOST', saved.host],
          ['KUBERNETES_SERVICE_PORT', saved.port],
          ['K8S_NODE_NAME', saved.node],
        ] as const) {
          // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- an unset variable must be absent from process.env, not empty
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
        await tlsServer?.close();
        rmSync(sa, { recursive: true, force: true });
      }
    },
  );

  test('configuration errors are clear: serviceAccount outside a cluster, missing kubeconfig, unknown context', async () => {
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      const sa = await k8sAttributesFactory.create(recordingContext('k8sattributes'), config({ auth_type: 'serviceAccount', kube_config_path: undefined }));
      await assert.rejects(sa.start(), /KUBERNETES_SERVICE_HOST/);
      const auto = await start(config({ auth_type: 'auto', kube_config_path: undefined }));
      assert.equal(auto.watcher, undefined, 'auto outside a cluster: cgroup only');
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
    const missing = await k8sAttributesFactory.create(recordingContext('k8sattributes'), config({ kube_config_path: join(dir, 'nope') }));
    await assert.rejects(missing.start(), /kubeconfig .*nope does not exist/);
    const ctxMissing = await k8sAttributesFactory.create(recordingContext('k8sattributes'), config({ kube_config_context: 'prod' }));
    await assert.rejects(ctxMissing.start(), /has no context "prod"/);
    assert.deepEqual(
      k8sAttributesFactory.validate!(
        config({ extract: { metadata: ['k8s.pod.name'], labels: [{ key: 'a', tag_name: 'k8s.pod.name' }], annotations: [] } }),
      ).map((p) => p.path),
      ['extract.labels[0]'],
    );
  });
});
