/**
 * The pod watch with @kubernetes/client-node 2.x against a local server that answers as the API
 * server does (test/support/fake-kube-apiserver.ts): the pods cache across relists (410 as an
 * ERROR event and as an HTTP status), a watch stream whose chunks do not follow event boundaries,
 * a quiet watch that outlives the library's default inactivity timeout until the server's
 * periodic bookmark, and the retry backoff after repeated connection drops.
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ATTR, type Attributes, type Processor, type Sample } from '../../src/api/index.js';
import { recordingContext } from '../../test/support/component-context.js';
import { waitFor } from '../../test/support/workload.js';
import { FakeKubeApiServer, type PodJson } from '../../test/support/fake-kube-apiserver.js';
import { defaultK8sAttributesConfig, type K8sAttributesConfig } from './config.js';
import { k8sAttributesFactory } from './factory.js';
import { K8sAttributesProcessor } from './processor.js';

const testdata = fileURLToPath(new URL('../../../plugins/k8sattributes/testdata/', import.meta.url));
const NODE = 'node-relist';
const template = (JSON.parse(readFileSync(join(testdata, 'pods.json'), 'utf8')) as { items: PodJson[] }).items[1]!;

/** Pod i of this node (or of another), with a UID and container id of its own. */
function pod(i: number, node = NODE): PodJson {
  const p = structuredClone(template);
  p.metadata.name = `web-${i}`;
  p.metadata.uid = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
  p.metadata.labels = { ...p.metadata.labels, component: 'v1' };
  p.spec.nodeName = node;
  p.status.containerStatuses[0]!.containerID = `containerd://${i.toString(16).padStart(8, '0').repeat(8)}`;
  return p;
}

/** The attributes a sample of pod i's container carries from the receiver (its cgroup path). */
function processAttrs(i: number): Attributes {
  const p = pod(i);
  return { [ATTR.EXECUTABLE_NAME]: 'sleep', [ATTR.CGROUP]: `/kubepods/besteffort/pod${p.metadata.uid}/${i.toString(16).padStart(8, '0').repeat(8)}` };
}

function processOne(p: Processor, attributes: Attributes): Attributes {
  const s: Sample = { schema: { id: 't', metrics: [] }, attributes, values: new Float64Array(0), final: false, timeMs: 0 };
  const out = p.process([s]);
  assert.ok(Array.isArray(out));
  return out[0]!.attributes;
}

describe('pod watch with @kubernetes/client-node 2.x: relists, chunking, quiet watches, retries', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'k8srelist-'));
  const kubeconfig = join(dir, 'kubeconfig');
  let server: FakeKubeApiServer;
  const processors: Processor[] = [];

  const start = async (rec = recordingContext('k8sattributes')) => {
    const c: K8sAttributesConfig = defaultK8sAttributesConfig();
    c.auth_type = 'kubeConfig';
    c.kube_config_path = kubeconfig;
    c.filter.node = NODE;
    c.pod_delete_grace = 300;
    c.extract.labels = [{ key: 'component' }];
    const p = await k8sAttributesFactory.create(rec, c);
    assert.ok(p instanceof K8sAttributesProcessor);
    processors.push(p);
    await p.start();
    return p;
  };
  const label = (p: Processor, i: number) => processOne(p, processAttrs(i))['k8s.pod.labels.component'];

  before(async () => {
    server = new FakeKubeApiServer({ token: 'relist-token' });
    await server.start();
    server.writeKubeconfig(kubeconfig);
  });

  afterEach(async () => {
    for (const p of processors.splice(0)) await p.shutdown();
    await waitFor('watches closed after shutdown', () => server.openWatches === 0, 3000);
    server.rechunk = false;
    server.expireWithHttpStatus = false;
    server.bookmarkEveryMs = undefined;
  });

  after(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset when before() failed
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const how of ['an ERROR event (watch cache)', 'HTTP 410 (etcd)'] as const) {
    test(`410 Gone as ${how}: the relist adds, updates and deletes what changed meanwhile, leaves the rest alone, and the watch goes on from the list`, async () => {
      server.expireWithHttpStatus = how === 'HTTP 410 (etcd)';
      const base = how === 'HTTP 410 (etcd)' ? 100 : 0;
      const [kept, changed, removed, added, later] = [1, 2, 3, 4, 5].map((k) => base + k) as [number, number, number, number, number];
      for (const i of [kept, changed, removed]) server.addPod(pod(i));
      server.addPod(pod(base + 50, 'another-node'));
      const p = await start();
      await waitFor('the list', () => [kept, changed, removed].every((i) => label(p, i) === 'v1'));
      await waitFor('a watch', () => server.openWatches === 1);
      const keptAttrs = processAttrs(kept);
      const keptBefore = processOne(p, keptAttrs);
      const lists = server.listRequests().length;
      assert.equal(server.listRequests()[lists - 1]!.query.limit, undefined, 'no limit: the server answers the whole list in one page (no continue tokens)');

      // While the client is away: one pod changes, one goes, one comes; then the history is compacted.
      server.breakWatches();
      server.modifyPod('default', `web-${changed}`, (q) => {
        q.metadata.labels.component = 'v2';
      });
      server.deletePod('default', `web-${removed}`);
      server.addPod(pod(added));
      server.compact();

      await waitFor('relist: update and add', () => label(p, changed) === 'v2' && label(p, added) === 'v1', 15_000);
      assert.equal(server.listRequests().length, lists + 1, 'exactly one relist');
      assert.equal(label(p, removed), 'v1', 'the pod gone meanwhile is deleted by the relist, kept for the grace period first');
      await waitFor('the deleted pod forgotten after the grace period', () => label(p, removed) === undefined, 5000);
      assert.equal(processOne(p, keptAttrs), keptBefore, 'the unchanged pod is not rebuilt by the relist (no spurious update)');
      assert.equal(processOne(p, processAttrs(base + 50))['k8s.pod.name'], undefined, "another node's pod is still not listed");

      // The watch after the relist starts at the list's resourceVersion and delivers live changes.
      await waitFor('a watch after the relist', () => server.openWatches === 1);
      const lastWatch = server.watchRequests().at(-1)!;
      assert.equal(lastWatch.query.resourceVersion, server.currentResourceVersion, 'watch from the relist resourceVersion');
      server.addPod(pod(later));
      server.modifyPod('default', `web-${kept}`, (q) => {
        q.metadata.labels.component = 'v3';
      });
      await waitFor('live events after the relist', () => label(p, later) === 'v1' && label(p, kept) === 'v3');
      for (const i of [kept, changed, added, later]) server.deletePod('default', `web-${i}`);
      server.deletePod('default', `web-${base + 50}`);
    });
  }

  test('a watch stream cut into chunks at random bytes (and several events per chunk): every event applied, in order', async () => {
    server.rechunk = true;
    for (let i = 200; i < 220; i++) server.addPod(pod(i));
    const [lists, watches] = [server.listRequests().length, server.watchRequests().length];
    const p = await start();
    await waitFor('the list', () => label(p, 219) === 'v1');
    await waitFor('a watch', () => server.openWatches === 1);
    // Many changes: labels rewritten 30 times each, 10 pods deleted, 10 added; bookmarks between.
    for (let round = 0; round < 30; round++) {
      for (let i = 200; i < 220; i++) {
        server.modifyPod('default', `web-${i}`, (q) => {
          q.metadata.labels.component = `r${round}-${'x'.repeat(round * 10)}`;
        });
      }
      if (round % 5 === 0) server.sendBookmark();
    }
    for (let i = 200; i < 210; i++) server.deletePod('default', `web-${i}`);
    for (let i = 220; i < 230; i++) server.addPod(pod(i));
    const last = `r29-${'x'.repeat(290)}`;
    await waitFor('the final state', () => {
      for (let i = 210; i < 220; i++) if (label(p, i) !== last) return false;
      for (let i = 220; i < 230; i++) if (label(p, i) !== 'v1') return false;
      return true;
    });
    await waitFor('the deleted pods forgotten', () => [...Array(10).keys()].every((k) => label(p, 200 + k) === undefined), 5000);
    assert.equal(server.listRequests().length, lists + 1, 'no relist');
    assert.equal(server.watchRequests().length, watches + 1, 'one watch throughout');
    for (let i = 210; i < 230; i++) server.deletePod('default', `web-${i}`);
  });

  test("a quiet node's watch outlives client-node 2.x's default 30 s inactivity timeout, and the server's periodic bookmark advances its resume point", async () => {
    // The API server sends a bookmark about once a minute; here after 33 s. A client that cuts a
    // silent watch at 30 s never sees one: it reconnects from its old resourceVersion, forever.
    server.bookmarkEveryMs = 33_000;
    server.addPod(pod(300));
    const rec = recordingContext('k8sattributes');
    const p = await start(rec);
    await waitFor('the list', () => label(p, 300) === 'v1');
    await waitFor('a watch', () => server.openWatches === 1);
    const watches = server.watchRequests().length;
    const startRv = server.watchRequests().at(-1)!.query.resourceVersion;
    // Other nodes' pods change: the resourceVersion moves, this watch gets no event.
    server.addPod(pod(301, 'another-node'));
    const movedRv = server.currentResourceVersion;
    assert.notEqual(movedRv, startRv);
    await new Promise((r) => setTimeout(r, 34_500));
    assert.equal(server.watchRequests().length, watches, `the quiet watch was not cut (requests after it: ${server.watchRequests().length - watches})`);
    assert.equal(server.openWatches, 1);
    server.endWatches(); // the server's timeoutSeconds: the client comes back from the bookmark's resourceVersion
    await waitFor('the next watch', () => server.watchRequests().length > watches);
    assert.equal(server.watchRequests()[watches]!.query.resourceVersion, movedRv, 'resumed from the bookmark');
    assert.equal(rec.counters.get('k8s_api_errors') ?? 0, 0, 'nothing counted as an error');
    server.deletePod('default', 'web-300');
    server.deletePod('default', 'web-301');
  });

  test('repeated connection drops: each resume waits the base retry delay again once events flow (no backoff left over from earlier drops)', async () => {
    server.addPod(pod(400));
    const lists = server.listRequests().length;
    const rec = recordingContext('k8sattributes');
    const p = await start(rec);
    await waitFor('the list', () => label(p, 400) === 'v1');
    const resumeMs: number[] = [];
    for (let k = 1; k <= 6; k++) {
      await waitFor('a watch', () => server.openWatches === 1);
      await new Promise((r) => setTimeout(r, 1100)); // a watch that lived over a second (no pause of its own)
      assert.equal(server.breakWatches(), 1);
      const t0 = Date.now();
      server.modifyPod('default', 'web-400', (q) => {
        q.metadata.labels.component = `drop${k}`;
      });
      // Without a reset the delays would double: 1, 2, 4, 8, 16, 30 s.
      await waitFor(`the change after drop ${k}`, () => label(p, 400) === `drop${k}`, 10_000);
      resumeMs.push(Date.now() - t0);
    }
    console.log(`# resume after each drop: ${resumeMs.join(', ')} ms`);
    assert.equal(server.listRequests().length, lists + 1, 'resumed each time without a relist');
    assert.ok((rec.counters.get('k8s_api_errors') ?? 0) >= 6, 'each drop counted');
    server.deletePod('default', 'web-400');
  });
});
