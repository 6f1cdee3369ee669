/**
 * The real agent, run the way the chart runs it: the configuration rendered by the chart, uid
 * 10001, every capability dropped except NET_ADMIN, no_new_privs (allowPrivilegeEscalation:
 * false), a read-only root file system with a writable /tmp (readOnlyRootFilesystem and the
 * chart's emptyDir; done in a private mount namespace), and a node binary with the image's file
 * capability cap_net_admin+ep. Its environment is built from the DaemonSet's env entries (downward
 * API fields and a Secret-backed header filled in as the kubelet would). It must register its
 * exit listener, count exits of processes it did not start, answer /healthz and /readyz on the
 * telemetry address the probes use, and export over OTLP to a local receiver with the header from
 * the Secret and the resource attributes from the chart.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { CAP_NET_ADMIN, findObject, readableByUid, renderChart, repoRoot, setFileCapabilities, type K8sObject } from '../support/helm.js';
import { needs } from '../support/caps.js';

const isRoot = process.getuid?.() === 0;
const hasTools = spawnSync('setpriv', ['--version']).status === 0 && spawnSync('unshare', ['--version']).status === 0;
const skip =
  needs('root', 'taskstats', 'libnl') ||
  (!isRoot || !hasTools
    ? 'needs root, setpriv and unshare (util-linux)'
    : !readableByUid(10001)
      ? `uid 10001 cannot read ${repoRoot} (a private parent directory): the agent cannot run as that user from here`
      : false);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface DownwardEnv {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function get(url: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return undefined;
  }
}

/** Sum of every sample of the self-metric families whose name contains `part`. */
function metricSum(text: string, part: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^(\S+?)(\{.*\})? (\S+)$/.exec(line);
    if (m && m[1]!.includes(part)) sum += Number(m[3]);
  }
  return sum;
}

describe("the agent under the chart's security context (real kernel)", { skip, timeout: 120_000 }, () => {
  let dir: string;
  let sink: Server;
  let sinkPort = 0;
  const exports: { path: string; body: string; authorization?: string }[] = [];
  let agent: ChildProcess | undefined;
  const rwProbe = `/.taskstats-rw-probe-${process.pid}`;
  let stderr = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskstats-secctx-'));
    chmodSync(dir, 0o755);
    sink = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        exports.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8'), authorization: req.headers.authorization });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    sinkPort = (sink.address() as { port: number }).port;
  });
  after(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    await new Promise((r) => sink.close(r));
    rmSync(dir, { recursive: true, force: true });
    rmSync(rwProbe, { recursive: true, force: true }); // only there if the root was not read-only
  });

  test('exit events, probes and OTLP export work with NET_ADMIN only, as uid 10001, under no_new_privs, on a read-only root', async () => {
    const telemetryPort = await freePort();
    const objects = renderChart({
      set: {
        'otlp.endpoint': `http://127.0.0.1:${sinkPort}`,
        'otlp.compression': 'none',
        'otlp.protocol': 'http/json',
        'otlp.headersFromSecrets[0].name': 'Authorization',
        'otlp.headersFromSecrets[0].secretName': 'otlp-auth',
        'otlp.headersFromSecrets[0].secretKey': 'authorization',
        clusterName: 'prod-eu',
        'telemetry.port': String(telemetryPort),
        'k8sAttributes.api.enabled': 'false',
        'config.receivers.taskstats.collection_interval': '1s',
      },
    });
    const ds = findObject(objects, 'DaemonSet') as K8sObject & {
      spec: {
        template: {
          spec: {
            containers: {
              name: string;
              env: DownwardEnv[];
              securityContext: { runAsUser: number; capabilities: { add: string[] } };
              ports: { name: string; containerPort: number }[];
              livenessProbe: { httpGet: { path: string; port: string; host?: string } };
              readinessProbe: { httpGet: { path: string; port: string; host?: string } };
            }[];
          };
        };
      };
    };
    const container = ds.spec.template.spec.containers.find((c) => c.name === 'agent')!;
    const sc = container.securityContext;
    // What the kubelet would put in the environment (loopback stands for the node's IP here).
    const fields: Record<string, string> = {
      'spec.nodeName': 'node-a',
      'status.podIP': '127.0.0.1',
      'status.hostIP': '127.0.0.1',
      'metadata.name': 'tsa-abcde',
      'metadata.namespace': 'monitoring',
    };
    const secrets: Record<string, string> = { 'otlp-auth/authorization': 'Bearer s3cr3t-token' };
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    for (const e of container.env) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef) env[e.name] = fields[e.valueFrom.fieldRef.fieldPath]!;
      else if (e.valueFrom?.secretKeyRef) env[e.name] = secrets[`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`]!;
      assert.ok(env[e.name] !== undefined, `env ${e.name} resolved`);
    }
    const cm = findObject(objects, 'ConfigMap') as unknown as { data: Record<string, string> };
    const config = join(dir, 'config.yaml');
    writeFileSync(config, cm.data['config.yaml']!);
    chmodSync(config, 0o644);

    // The image's node: a copy with the file capability.
    const node = join(dir, 'node');
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
    await setFileCapabilities(node, [CAP_NET_ADMIN]);

    const caps = sc.capabilities.add.map((c) => `,+${c.toLowerCase()}`).join('');
    agent = spawn(
      'unshare',
      [
        // readOnlyRootFilesystem + a writable /tmp (the chart's emptyDir), in a private mount
        // namespace. /tmp stays the host's (a bind mount of itself, which keeps its own rw flag):
        // a fresh tmpfs there would hide a checkout that lives under /tmp. The mkdir proves the
        // root is read-only before the agent starts (the && chain stops otherwise).
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount --bind /tmp /tmp && mount -o remount,bind,ro / && ! mkdir ${rwProbe} 2>/dev/null && exec "$@"`,
        'sh',
        'setpriv',
        `--reuid=${sc.runAsUser}`,
        `--regid=${sc.runAsUser}`,
        '--clear-groups',
        '--inh-caps=-all',
        `--bounding-set=-all${caps}`,
        '--no-new-privs',
        '--',
        node,
        join(repoRoot, 'bin', 'taskstats-agent'),
        'run',
        '--config',
        config,
      ],
      {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    agent.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const base = `http://127.0.0.1:${telemetryPort}`;
    // The probes as rendered: host (the pod IP when absent), named port, path.
    const probeUrl = (probe: { httpGet: { path: string; port: string; host?: string } }) => {
      const port = container.ports.find((p) => p.name === probe.httpGet.port)?.containerPort;
      assert.equal(port, telemetryPort, 'the probe port is the telemetry port');
      return `http://${probe.httpGet.host ?? fields['status.podIP']!}:${port}${probe.httpGet.path}`;
    };

    // Readiness as the kubelet sees it.
    let ready: { status: number; text: string } | undefined;
    for (let i = 0; i < 150 && agent.exitCode === null; i++) {
      ready = await get(probeUrl(container.readinessProbe));
      if (ready?.status === 200) break;
      await sleep(100);
    }
    assert.equal(ready?.status, 200, `the readiness probe never answered 200 (agent exit ${agent.exitCode}):\n${stderr}`);
    assert.equal((await get(probeUrl(container.livenessProbe)))?.status, 200);

    // Processes the agent did not start end; their exit events must reach it.
    for (let i = 0; i < 20; i++) spawnSync('/bin/true');
    let exits = 0;
    let metrics = '';
    for (let i = 0; i < 100; i++) {
      metrics = (await get(`${base}/metrics`))?.text ?? '';
      exits = metricSum(metrics, 'exits_received');
      if (exits >= 20 && exports.some((e) => e.body.includes('"process.'))) break;
      await sleep(100);
    }
    assert.ok(exits >= 20, `exits_received = ${exits} after 20 exits\n${metrics}\n${stderr}`);
    assert.ok(exports.length > 0, `no OTLP export arrived\n${stderr}`);
    assert.ok(
      exports.every((e) => e.path === '/v1/metrics'),
      JSON.stringify(exports.map((e) => e.path)),
    );
    // The Secret's value travelled env -> ${env:...} in the ConfigMap -> the HTTP header.
    assert.ok(
      exports.every((e) => e.authorization === 'Bearer s3cr3t-token'),
      `authorization: ${exports[0]!.authorization}`,
    );
    assert.ok(!cm.data['config.yaml']!.includes('s3cr3t'), 'the secret is not in the ConfigMap');
    // Resource attributes: k8s.node.name from the downward API, k8s.cluster.name from clusterName.
    const withProcesses = exports.find((e) => e.body.includes('"process.'));
    assert.ok(withProcesses, 'an export with process metrics arrived');
    const body = JSON.parse(withProcesses.body) as {
      resourceMetrics: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeMetrics: { metrics: { name: string }[] }[] }[];
    };
    const attrs = new Map(body.resourceMetrics[0]!.resource.attributes.map((a) => [a.key, a.value.stringValue]));
    assert.equal(attrs.get('k8s.node.name'), 'node-a');
    assert.equal(attrs.get('k8s.cluster.name'), 'prod-eu');
    const names = body.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.name)));
    assert.ok(
      names.some((n) => n.startsWith('process.')),
      `process metrics exported: ${names.join(', ')}`,
    );
    assert.doesNotMatch(stderr, /EPERM|permission denied|EINVAL|EROFS|read-only file system/i);

    agent.kill('SIGTERM');
    const code = await Promise.race([new Promise((r) => agent!.once('exit', (c) => r(c))), sleep(15_000).then(() => 'timeout')]);
    assert.equal(code, 0, `agent exit after SIGTERM: ${String(code)}\n${stderr}`);
  });
});
