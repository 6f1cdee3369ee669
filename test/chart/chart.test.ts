/**
 * The Helm chart, rendered by the real helm binaries (v3 and v4, fetched by scripts/fetch-helm.sh):
 * lint, templates with the default values and every values file of charts/taskstats-agent/ci/,
 * every rendered object validated against the Kubernetes schemas, the security shape of the
 * DaemonSet, the agent configuration it renders (checked by `taskstats-agent validate`), the
 * values schema, and the README listing every value.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir, findObject, helm, helmBinary, renderChart, repoRoot, validateObject, type K8sObject } from '../support/helm.js';

const ciDir = join(chartDir, 'ci');
const ciValues = readdirSync(ciDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => join(ciDir, f));
const ci = (name: string) => join(ciDir, `${name}-values.yaml`);

interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }[];
  ports?: { name: string; containerPort: number }[];
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsUser?: number;
    runAsNonRoot?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  livenessProbe?: { httpGet?: { path: string; port: string | number; host?: string } };
  readinessProbe?: { httpGet?: { path: string; port: string | number; host?: string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  hostPID?: boolean;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  tolerations?: { operator?: string; key?: string }[];
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}
interface DaemonSet extends K8sObject {
  spec: { updateStrategy: { type: string }; template: { metadata: { annotations: Record<string, string> }; spec: PodSpec } };
}

const daemonSet = (objects: K8sObject[]) => {
  const ds = findObject(objects, 'DaemonSet') as DaemonSet | undefined;
  assert.ok(ds, 'a DaemonSet is rendered');
  return ds;
};
const agentContainer = (ds: DaemonSet) => {
  const c = ds.spec.template.spec.containers.find((x) => x.name === 'agent');
  assert.ok(c, 'the agent container exists');
  return c;
};
/** The agent configuration as rendered into the ConfigMap the DaemonSet mounts. */
function agentConfigText(objects: K8sObject[]): string {
  const ds = daemonSet(objects);
  const cmName = ds.spec.template.spec.volumes?.find((v) => v.name === 'config')?.configMap?.name;
  const cm = findObject(objects, 'ConfigMap', cmName) as (K8sObject & { data: Record<string, string> }) | undefined;
  assert.ok(cm, `the ConfigMap ${cmName} mounted by the DaemonSet is rendered`);
  assert.ok(agentContainer(ds).args?.includes('/etc/taskstats-agent/config.yaml'));
  const text = cm.data['config.yaml'];
  assert.ok(text, 'ConfigMap has config.yaml');
  return text;
}
/** The rendered agent configuration, as far as these tests read it. */
interface AgentConfig {
  receivers: { taskstats: Record<string, unknown> };
  processors: {
    k8sattributes: { auth_type: string; filter: { node_from_env_var: string }; extract: { metadata: string[]; labels: unknown[] } };
    filter: { exclude: { commands: string[] } };
  };
  exporters: { otlp: Record<string, unknown>; debug?: unknown };
  service: { telemetry: { metrics: { address: string } }; pipelines: { metrics: { processors?: string[] } } };
}
const agentConfig = (objects: K8sObject[]): AgentConfig => parseYaml(agentConfigText(objects)) as AgentConfig;

describe('helm chart charts/taskstats-agent', { timeout: 240_000 }, () => {
  let scratch: string;
  before(() => {
    helmBinary(4); // fetch once, outside the timed tests
    helmBinary(3);
    scratch = mkdtempSync(join(tmpdir(), 'taskstats-chart-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  test('helm 3 and helm 4 are the real binaries', () => {
    for (const major of [3, 4] as const) {
      const r = helm(['version', '--short'], major);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout.trim(), new RegExp(`^v${major}\\.\\d+\\.\\d+`));
    }
  });

  for (const major of [3, 4] as const) {
    test(`helm ${major}: lint --strict passes with the default values and with every ci values file`, () => {
      for (const values of [undefined, ...ciValues]) {
        const args = ['lint', '--strict', chartDir, ...(values ? ['--values', values] : [])];
        const r = helm(args, major);
        assert.equal(r.status, 0, `helm ${major} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      }
    });

    test(`helm ${major}: every object rendered with every values file is valid against the Kubernetes schemas`, async () => {
      assert.ok(ciValues.length >= 5, 'several ci values files');
      for (const values of [undefined, ...ciValues]) {
        const objects = renderChart({ valuesFiles: values ? [values] : [], helm: major });
        assert.ok(objects.length >= 3, `${values}: objects rendered`);
        const problems: string[] = [];
        for (const o of objects) problems.push(...(await validateObject(o)));
        assert.deepEqual(problems, [], values ?? 'default values');
      }
    });
  }

  test('helm 3 and helm 4 render the same manifests', () => {
    for (const values of [undefined, ...ciValues]) {
      const args = ['template', 'tsa', chartDir, '--namespace', 'monitoring', ...(values ? ['--values', values] : [])];
      const three = helm(args, 3);
      const four = helm(args, 4);
      assert.equal(three.status, 0, three.stderr);
      assert.equal(four.stdout, three.stdout, values ?? 'default values');
    }
  });

  test('the schema validation catches what the API server would reject', async () => {
    const ds = daemonSet(renderChart());
    const typo = structuredClone(ds);
    (typo.spec.template.spec as unknown as Record<string, unknown>).hostPid = true;
    const badType = structuredClone(ds);
    (badType.spec.template.spec.containers[0]!.securityContext!.capabilities as { add: unknown }).add = [7];
    assert.match((await validateObject(typo)).join('\n'), /hostPid: unknown field/);
    assert.match((await validateObject(badType)).join('\n'), /must be string/);
  });

  test('default DaemonSet: host namespaces, NET_ADMIN only, read-only root, non-root, probes', () => {
    const objects = renderChart();
    const ds = daemonSet(objects);
    const pod = ds.spec.template.spec;
    assert.equal(pod.hostPID, true, 'hostPID: exit events only in the initial pid namespace');
    assert.equal(pod.hostNetwork, true, 'hostNetwork: exit events only in the initial network namespace');
    assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
    assert.equal(ds.spec.updateStrategy.type, 'RollingUpdate');
    assert.ok(
      pod.tolerations?.some((t) => t.operator === 'Exists' && !t.key),
      'tolerates every taint',
    );
    assert.equal(pod.initContainers, undefined, 'no privileged init container by default');

    const agent = agentContainer(ds);
    const sc = agent.securityContext!;
    assert.equal(sc.privileged, false);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.deepEqual(sc.capabilities?.drop, ['ALL']);
    assert.deepEqual(sc.capabilities.add, ['NET_ADMIN']);
    assert.equal(sc.runAsNonRoot, true);
    assert.equal(sc.runAsUser, 10001);

    const env = new Map(agent.env!.map((e) => [e.name, e]));
    assert.equal(env.get('K8S_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    assert.equal(env.get('K8S_POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
    assert.ok(agent.resources?.requests?.cpu && agent.resources.requests.memory);
    assert.ok(agent.resources.limits?.cpu && agent.resources.limits.memory);

    // Probes reach the agent's telemetry server where the rendered config makes it listen:
    // loopback, which the kubelet reaches because the pod shares the node's network namespace.
    assert.equal(agent.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(agent.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(agent.livenessProbe.httpGet.host, '127.0.0.1');
    assert.equal(agent.readinessProbe.httpGet.host, '127.0.0.1');
    const port = agent.ports!.find((p) => p.name === agent.livenessProbe!.httpGet!.port)!.containerPort;
    assert.equal(agentConfig(objects).service.telemetry.metrics.address, `127.0.0.1:${port}`);

    // A chart-owned PriorityClass, used by the pods.
    const pc = findObject(objects, 'PriorityClass') as (K8sObject & { value: number }) | undefined;
    assert.ok(pc);
    assert.equal(pod.priorityClassName, pc.metadata.name);
    assert.ok(pc.value >= 1_000_000);
  });

  test('API lookups on (default): ClusterRole get/list/watch pods bound to the ServiceAccount, token mounted', () => {
    const objects = renderChart();
    const pod = daemonSet(objects).spec.template.spec;
    const role = findObject(objects, 'ClusterRole') as (K8sObject & { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }) | undefined;
    assert.ok(role);
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
    const binding = findObject(objects, 'ClusterRoleBinding') as
      (K8sObject & { subjects: { name: string; namespace: string }[]; roleRef: { name: string } }) | undefined;
    assert.ok(binding);
    assert.equal(binding.roleRef.name, role.metadata.name);
    assert.deepEqual(
      binding.subjects.map((s) => [s.name, s.namespace]),
      [[pod.serviceAccountName, 'monitoring']],
    );
    assert.ok(findObject(objects, 'ServiceAccount', pod.serviceAccountName));
    assert.equal(pod.automountServiceAccountToken, true);
    const k8s = agentConfig(objects).processors.k8sattributes;
    assert.equal(k8s.auth_type, 'serviceAccount');
    assert.equal(k8s.filter.node_from_env_var, 'K8S_NODE_NAME');
  });

  test('API lookups off: no ClusterRole, no token, cgroup-only attribution', () => {
    const objects = renderChart({ valuesFiles: [ci('api-disabled')] });
    assert.equal(findObject(objects, 'ClusterRole'), undefined);
    assert.equal(findObject(objects, 'ClusterRoleBinding'), undefined);
    assert.equal(daemonSet(objects).spec.template.spec.automountServiceAccountToken, false);
    const config = agentConfig(objects);
    assert.equal(config.processors.k8sattributes.auth_type, 'none');
    assert.deepEqual(config.processors.k8sattributes.extract.metadata, ['container.id', 'k8s.pod.uid', 'k8s.pod.qos_class']);
    assert.deepEqual(config.service.pipelines.metrics.processors, ['k8sattributes']);
  });

  test('clusterName and resourceAttributes become OTEL_RESOURCE_ATTRIBUTES; none by default', () => {
    const plain = agentContainer(daemonSet(renderChart()));
    assert.equal(
      plain.env!.find((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES'),
      undefined,
    );
    const agent = agentContainer(
      daemonSet(renderChart({ set: { clusterName: 'prod-eu', 'resourceAttributes.deployment\\.environment': 'prod', 'resourceAttributes.team': 'infra' } })),
    );
    assert.equal(agent.env!.find((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES')?.value, 'deployment.environment=prod,k8s.cluster.name=prod-eu,team=infra');
    const bad = helm(['template', 'tsa', chartDir, '--set', 'resourceAttributes.team=a\\,b']);
    assert.notEqual(bad.status, 0, 'a comma in a value is rejected by the schema');
  });

  test('header values from a Secret reach the agent as env vars, never in the ConfigMap', () => {
    const objects = renderChart({ valuesFiles: [ci('headers-from-secret')] });
    const agent = agentContainer(daemonSet(objects));
    const env = new Map(agent.env!.map((e) => [e.name, e]));
    assert.deepEqual(env.get('OTLP_HEADER_AUTHORIZATION')?.valueFrom?.secretKeyRef, { name: 'otlp-auth', key: 'authorization' });
    assert.deepEqual(env.get('OTLP_HEADER_X_API_KEY')?.valueFrom?.secretKeyRef, { name: 'otlp-auth', key: 'api-key' });
    const otlp = agentConfig(objects).exporters.otlp;
    assert.equal(otlp.endpoint, 'https://otlp.example.com');
    assert.deepEqual(otlp.headers, {
      'X-Scope-OrgID': 'tenant-a',
      Authorization: '${env:OTLP_HEADER_AUTHORIZATION}',
      'x-api-key': '${env:OTLP_HEADER_X_API_KEY}',
    });
  });

  test('delay accounting: a privileged init container writes the sysctl, the agent stays unprivileged', () => {
    const ds = daemonSet(renderChart({ valuesFiles: [ci('delay-accounting')] }));
    const init = ds.spec.template.spec.initContainers ?? [];
    assert.equal(init.length, 1);
    assert.equal(init[0]!.securityContext?.privileged, true);
    assert.match(init[0]!.command!.join(' '), /echo 1 > \/proc\/sys\/kernel\/task_delayacct/);
    const agent = agentContainer(ds);
    assert.equal(agent.securityContext?.privileged, false);
    assert.deepEqual(agent.securityContext.capabilities?.add, ['NET_ADMIN']);
  });

  test('free-form config is deep-merged over the generated one', () => {
    const config = agentConfig(renderChart({ valuesFiles: [ci('extra-config')] }));
    assert.equal(config.receivers.taskstats.collection_interval, '30s', 'config value wins');
    assert.equal(config.receivers.taskstats.delay_accounting, 'keep', 'default kept');
    assert.equal(config.exporters.otlp.endpoint, 'http://otel-collector.observability.svc:4318', 'first-class value kept');
    assert.deepEqual(config.exporters.debug, { verbosity: 'basic' });
    assert.deepEqual(config.processors.filter.exclude.commands, ['pause']);
    assert.deepEqual(config.processors.k8sattributes.extract.labels, [{ key: 'app.kubernetes.io/name' }]);
    assert.deepEqual(config.service.pipelines.metrics, { receivers: ['taskstats'], processors: ['filter', 'k8sattributes'], exporters: ['otlp', 'debug'] });
  });

  test('telemetry on the pod IP (scrapable): the probes go to the pod IP, the kubelet default', () => {
    const objects = renderChart({ valuesFiles: [ci('victoriametrics')] });
    const ds = daemonSet(objects);
    const agent = agentContainer(ds);
    assert.equal(agent.livenessProbe?.httpGet?.host, undefined);
    assert.equal(agent.readinessProbe?.httpGet?.host, undefined);
    const config = agentConfig(objects);
    assert.equal(config.service.telemetry.metrics.address, '${env:K8S_POD_IP}:18888');
    assert.equal(config.exporters.otlp.metrics_endpoint, 'http://victoria-metrics.monitoring.svc:8428/opentelemetry/v1/metrics');
    assert.equal(config.exporters.otlp.endpoint, undefined);
    assert.equal(ds.spec.template.spec.priorityClassName, 'system-node-critical');
    assert.equal(findObject(objects, 'PriorityClass'), undefined);
    assert.deepEqual(config.service.pipelines.metrics.processors, []);
  });

  test('a configuration change rolls the pods (checksum annotation), other changes do not', () => {
    const sum = (set: Record<string, string>) => daemonSet(renderChart({ set })).spec.template.metadata.annotations['checksum/config'];
    const base = sum({});
    assert.match(base!, /^[0-9a-f]{64}$/);
    assert.notEqual(sum({ 'otlp.endpoint': 'http://other:4318' }), base);
    assert.notEqual(sum({ 'config.receivers.taskstats.collection_interval': '5s' }), base);
    assert.equal(sum({ 'resources.limits.memory': '512Mi' }), base);
  });

  test('values.schema.json rejects wrong values with a message naming them (helm 3 and 4)', () => {
    const cases: [string[], RegExp][] = [
      [['--set', 'otlp.protocol=thrift'], /otlp[./]protocol/],
      [['--set', 'otlp.endpoint='], /otlp/],
      [['--set', 'telemetry.port=70000'], /telemetry[./]port/],
      [['--set', 'hostPid=true'], /hostPid/],
      [['--set', 'otlp.headersFromSecrets[0].name=Authorization'], /secretName|secretKey/],
    ];
    for (const major of [3, 4] as const) {
      for (const [args, message] of cases) {
        const r = helm(['template', 'tsa', chartDir, ...args], major);
        assert.notEqual(r.status, 0, `helm ${major} ${args.join(' ')} must fail`);
        assert.match(r.stderr, message, `helm ${major} ${args.join(' ')}: ${r.stderr}`);
      }
    }
  });

  test('NOTES.txt renders (helm 4 install --dry-run=client) and tells where the metrics go', () => {
    const plain = helm(['install', 'tsa', chartDir, '--dry-run=client', '--namespace', 'monitoring']);
    assert.equal(plain.status, 0, plain.stderr);
    const notes = plain.stdout.slice(plain.stdout.indexOf('NOTES:'));
    assert.match(notes, /http:\/\/\$\{env:K8S_NODE_IP\}:4318/);
    assert.match(notes, /node-local OpenTelemetry Collector/);
    assert.match(notes, /rollout status daemonset\/tsa-taskstats-agent/);
    assert.match(notes, /API lookups .*: on/);
    const vm = helm([
      'install',
      'tsa',
      chartDir,
      '--dry-run=client',
      '--namespace',
      'monitoring',
      '--values',
      ci('victoriametrics'),
      '--values',
      ci('delay-accounting'),
    ]);
    assert.equal(vm.status, 0, vm.stderr);
    const vmNotes = vm.stdout.slice(vm.stdout.indexOf('NOTES:'));
    assert.match(vmNotes, /victoria-metrics\.monitoring\.svc:8428\/opentelemetry\/v1\/metrics/);
    assert.match(vmNotes, /curl http:\/\/<node-ip>:18888\/metrics/);
    assert.match(vmNotes, /privileged init container/);
  });

  test("values.schema.json's k8sAttributes.metadata enum is the processor's list of attributes", async () => {
    const { METADATA_ATTRIBUTES } = await import('../../plugins/k8sattributes/config.js');
    const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as {
      properties: { k8sAttributes: { properties: { metadata: { items: { enum: string[] } } } } };
    };
    assert.deepEqual(schema.properties.k8sAttributes.properties.metadata.items.enum, [...METADATA_ATTRIBUTES]);
    const r = helm(['template', 'tsa', chartDir, '--set', 'k8sAttributes.metadata={k8s.pod.nam}']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /metadata/);
  });

  test('the chart README lists every value of values.yaml', () => {
    const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
    const keys: string[] = [];
    const walk = (obj: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(obj)) {
        const key = prefix ? `${prefix}.${k}` : k;
        keys.push(key);
        // Leaves of free-form maps (config, resources, securityContext ...) are documented by their parent.
        const freeForm = ['config', 'resources', 'delayAccounting.resources', 'securityContext', 'nodeSelector', 'updateStrategy'];
        if (v && typeof v === 'object' && !Array.isArray(v) && !freeForm.includes(key)) walk(v as Record<string, unknown>, key);
      }
    };
    walk(values, '');
    const missing = keys.filter((k) => !readme.includes(`\`${k}\``));
    assert.deepEqual(missing, [], 'values missing from charts/taskstats-agent/README.md');
  });

  test('the rendered agent configuration passes `taskstats-agent validate` (default and every ci values file)', async () => {
    // Rendered one by one, validated concurrently (each validate is a node process start).
    const runs = [undefined, ...ciValues].map((values) => {
      const objects = renderChart({ valuesFiles: values ? [values] : [] });
      const file = join(scratch, `config-${values ? values.split('/').pop() : 'default'}`);
      writeFileSync(file, agentConfigText(objects));
      const agent = agentContainer(daemonSet(objects));
      // The environment the pod gives the agent (downward API and Secret-backed headers).
      const env: Record<string, string> = {
        ...process.env,
        K8S_NODE_NAME: 'node-a',
        K8S_POD_IP: '10.0.0.7',
        K8S_NODE_IP: '10.0.0.7',
        K8S_POD_NAME: 'tsa-x',
        K8S_NAMESPACE: 'monitoring',
      };
      for (const e of agent.env ?? []) if (e.valueFrom?.secretKeyRef) env[e.name] = 'Bearer test-token';
      return new Promise<{ values: string; code: number | null; out: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(repoRoot, 'bin', 'taskstats-agent'), 'validate', '--config', file],
          { env, timeout: 90_000 },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
            resolve({ values: values ?? 'default values', code, out: `${stderr}\n${stdout}` });
          },
        );
      });
    });
    for (const r of await Promise.all(runs)) {
      assert.equal(r.code, 0, `${r.values}: taskstats-agent validate exited ${r.code}\n${r.out}`);
    }
  });

  test('`taskstats-agent validate` really rejects a broken rendered configuration', () => {
    const objects = renderChart({ set: { 'config.exporters.otlp.protocol': 'thrift' } });
    const file = join(scratch, 'config-broken.yaml');
    writeFileSync(file, agentConfigText(objects));
    const env = { ...process.env, K8S_POD_IP: '10.0.0.7', K8S_NODE_IP: '10.0.0.7', K8S_NODE_NAME: 'node-a' };
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'taskstats-agent'), 'validate', '--config', file], { encoding: 'utf8', env, timeout: 60_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /exporters\.otlp\.protocol: must be one of/);
    assert.match(r.stderr, /1 error/);
  });
});
