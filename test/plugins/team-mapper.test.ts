/**
 * The example plugin (examples/team-mapper) loaded the way a user loads a plugin: named by path in
 * a config file's `plugins:` list, through the real agent (bin/taskstats-agent) as a process.
 * Also: a failing custom plugin is contained and counted, and the full chain with the real kernel
 * (taskstats receiver -> filter -> k8sattributes against a local API server -> team_mapper).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { repoRoot, runCli, startAgent, tempDir, sleep, type RunningAgent } from '../host/helpers.js';
import { FakeKubeApiServer, type PodJson } from '../support/fake-kube-apiserver.js';
import { canUseCgroups, TestCgroups } from '../../plugins/k8sattributes/testcgroups.js';

const tmp = tempDir('taskstats-plugins-');
const agents: RunningAgent[] = [];
after(() => {
  for (const a of agents) a.kill();
  tmp.remove();
});

const teamMapperJs = join(repoRoot, 'dist', 'examples', 'team-mapper', 'index.js');
const fixturePlugins = join(repoRoot, 'test', 'plugins', 'fixtures', 'pipeline-plugins.mjs');
/** A `plugins:` entry for `file`, relative to the temporary config's directory (a path, as users write it). */
const rel = (file: string) => {
  const r = relative(tmp.dir, file);
  return r.startsWith('.') ? r : `./${r}`;
};

interface Point {
  id: string;
  metric: string;
  attributes: Record<string, unknown>;
  value: number;
}
/** Data points an exporter wrote, without the agent's own metrics (every export carries them). */
function points(name: string): Point[] {
  const p = join(tmp.dir, name);
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Point)
    .filter((pt) => !pt.metric.startsWith('taskstats_agent.'));
}

const TEAMS = `
    attribute: team
    default_team: unowned
    teams:
      - team: payments
        namespaces: [payments]
      - team: data
        cgroup_prefixes: [/system.slice/postgresql]
      - team: platform
        cgroup_prefixes: [/kubepods/]
        namespaces: [kube-system]`;

describe('custom plugins loaded from the config by path', { timeout: 120_000 }, () => {
  test('validate: the example config of the plugin (plugins: [../../../dist/examples/team-mapper/index.js])', async () => {
    const r = await runCli(['validate', '--config', join(repoRoot, 'examples', 'team-mapper', 'testdata', 'config.yaml')]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('validate: a problem in the plugin config is reported with its path and line', async () => {
    const file = tmp.write(
      'bad.yaml',
      `plugins: [${rel(teamMapperJs)}, ${rel(fixturePlugins)}]
receivers:
  cgroup_source: {}
processors:
  team_mapper:
    teams:
      - team: data
        cgroup_prefixes: [system.slice/postgresql]
exporters:
  point_sink: {path: /dev/null}
service:
  pipelines:
    metrics: {receivers: [cgroup_source], processors: [team_mapper], exporters: [point_sink]}
`,
    );
    const r = await runCli(['validate', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.yaml:8:\d+: processors\.team_mapper\.teams\[0\]\.cgroup_prefixes\[0\]: "system\.slice\/postgresql" must start with "\/"/);
  });

  test('components --config lists the plugin', async () => {
    const r = await runCli(['components', '--config', join(repoRoot, 'examples', 'team-mapper', 'testdata', 'config.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /processor\s+team_mapper\s+development\s+metrics,logs\s+Example plugin/);
  });

  test('run: the team attribute arrives at the exporter; a throwing plugin is contained and counted', async () => {
    const kubeCgroup = '/kubepods/burstable/pod5e8a560b-f166-4f91-9b8a-280dabafd10d/6819fb158dca3c004885a2bccdf272df840d283c524773a4b2ce96f45e388ac1';
    const file = tmp.write(
      'run.yaml',
      `plugins:
  - ${rel(teamMapperJs)}
  - ${rel(fixturePlugins)}
receivers:
  cgroup_source:
    interval: 50ms
    cgroups: [${kubeCgroup}, /system.slice/postgresql@15-main.service, /user.slice/user-1000.slice/session-1.scope]
processors:
  k8sattributes:
    auth_type: none
  team_mapper:${TEAMS}
  explode: {}
exporters:
  point_sink:
    path: ${tmp.dir}/points.jsonl
  point_sink/broken:
    path: ${tmp.dir}/broken.jsonl
service:
  telemetry:
    metrics: {address: "127.0.0.1:0"}
  pipelines:
    metrics:
      receivers: [cgroup_source]
      processors: [k8sattributes, team_mapper]
      exporters: [point_sink]
    metrics/broken:
      receivers: [cgroup_source]
      processors: [explode]
      exporters: [point_sink/broken]
`,
    );
    const agent = startAgent(['run', '--config', file]);
    agents.push(agent);
    await agent.waitReady(20_000);
    const dropped =
      'taskstats_agent_component_dropped_items_total{component_id="explode",pipeline_id="metrics/broken",component_kind="processor",reason="processor_error"}';
    const deadline = Date.now() + 20_000;
    let m = await agent.metrics();
    while ((m.get(dropped) ?? 0) < 9 || points('points.jsonl').length < 3) {
      if (Date.now() > deadline) assert.fail(`no drops or points within 20 s; drops=${m.get(dropped)}\n${agent.stderr}`);
      await sleep(100);
      m = await agent.metrics();
    }
    const byCgroup = new Map(points('points.jsonl').map((p) => [p.attributes['process.linux.cgroup'], p.attributes]));
    assert.equal(byCgroup.get(kubeCgroup)?.team, 'platform');
    assert.equal(byCgroup.get(kubeCgroup)?.['k8s.pod.uid'], '5e8a560b-f166-4f91-9b8a-280dabafd10d', 'k8sattributes ran before team_mapper');
    assert.equal(byCgroup.get('/system.slice/postgresql@15-main.service')?.team, 'data');
    assert.equal(byCgroup.get('/user.slice/user-1000.slice/session-1.scope')?.team, 'unowned');
    assert.equal(points('broken.jsonl').length, 0, 'the broken pipeline delivered nothing');
    // the plugin's own counter, at the agent's /metrics
    const mapped = [...m.entries()].find(
      ([k]) => k.startsWith('taskstats_agent_processor_workloads_mapped_total{') && k.includes('component_id="team_mapper"') && k.includes('team="platform"'),
    );
    assert.equal(mapped?.[1], 1, 'one workload mapped to platform');
    assert.ok(
      agent.logs().some((l) => l.msg === 'processor failed: batch dropped'),
      'the failure is logged',
    );
    const stop = await agent.stop();
    assert.equal(stop.code, 0, agent.stderr);
  });

  test(
    'real kernel: taskstats -> filter -> k8sattributes (API) -> team_mapper, team from the pod namespace',
    {
      skip: canUseCgroups() ? false : 'needs root and a cgroup v2 hierarchy',
    },
    async () => {
      const server = new FakeKubeApiServer({ token: 'plugin-test' });
      const cgroups = new TestCgroups('teamtest');
      try {
        await server.start();
        const kubeconfig = join(tmp.dir, 'kubeconfig');
        server.writeKubeconfig(kubeconfig);
        const pods = (JSON.parse(readFileSync(join(repoRoot, 'plugins', 'k8sattributes', 'testdata', 'pods.json'), 'utf8')) as { items: PodJson[] }).items;
        const coredns = pods[0]!;
        coredns.spec.nodeName = 'plugin-test-node';
        server.addPod(coredns);
        const uid = coredns.metadata.uid;
        const cid = coredns.status.containerStatuses[0]!.containerID.replace('containerd://', '');
        const dir = `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-${cid}.scope`;
        // create the cgroup (and check the path the kernel reports) with a sleeper, then run short workers there
        const { cgroupPath } = await cgroups.runIn(dir);
        const file = tmp.write(
          'kernel.yaml',
          `plugins: [${rel(teamMapperJs)}, ${rel(fixturePlugins)}]
receivers:
  taskstats:
    collection_interval: 1s
processors:
  filter/test_cgroup:
    include:
      match_type: strict
      cgroups: [${cgroupPath}]
  k8sattributes:
    auth_type: kubeConfig
    kube_config_path: ${kubeconfig}
    filter: {node: plugin-test-node}
  team_mapper:${TEAMS}
exporters:
  point_sink:
    path: ${tmp.dir}/kernel.jsonl
service:
  telemetry:
    metrics: {address: "127.0.0.1:0"}
  pipelines:
    metrics:
      receivers: [taskstats]
      processors: [filter/test_cgroup, k8sattributes, team_mapper]
      exporters: [point_sink]
`,
        );
        const agent = startAgent(['run', '--config', file]);
        agents.push(agent);
        await agent.waitReady(30_000);
        // The pod list arrives in the background (samples before it carry only the cgroup facts)
        await agent.waitForLog((l) => l.msg === 'listed pods of this node', 20_000);
        const procs = join(cgroups.root, cgroups.base, dir, 'cgroup.procs');
        for (let i = 0; i < 5; i++) {
          // like a container runtime: join the cgroup, then exec the workload
          await new Promise<void>((resolve, reject) => {
            const c = spawn('sh', ['-c', `echo $$ > ${procs} && exec dd if=/dev/zero of=/dev/null bs=64k count=2000`], { stdio: 'ignore' });
            c.on('error', reject);
            c.on('exit', () => resolve());
          });
        }
        const deadline = Date.now() + 20_000;
        let hit: Point | undefined;
        while (!hit) {
          hit = points('kernel.jsonl').find((p) => p.attributes['process.executable.name'] === 'dd' && p.attributes['k8s.pod.name'] !== undefined);
          if (hit) break;
          if (Date.now() > deadline)
            assert.fail(
              `no enriched dd point within 20 s\n${readFileSync(join(tmp.dir, 'kernel.jsonl'), 'utf8').slice(0, 2000)}\n${agent.stderr.slice(-3000)}`,
            );
          await sleep(200);
        }
        assert.equal(hit.attributes['process.linux.cgroup'], cgroupPath);
        assert.equal(hit.attributes['k8s.namespace.name'], 'kube-system');
        assert.equal(hit.attributes['k8s.pod.name'], 'coredns-74586cf9b6-2fqjz');
        assert.equal(hit.attributes['k8s.container.name'], 'coredns');
        assert.equal(hit.attributes.team, 'platform', 'team from the namespace the API reported');
        const others = points('kernel.jsonl').filter((p) => p.attributes['process.linux.cgroup'] !== cgroupPath);
        assert.deepEqual(others, [], 'filter let only the test cgroup through');
        assert.equal((await agent.stop()).code, 0);
      } finally {
        await cgroups.cleanup();
        await server.close();
      }
    },
  );
});
