import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ATTR, SeverityNumber, type Attributes, type ComponentContext, type LogRecord, type Sample } from '../../src/api/index.js';
import plugin from './index.js';
import { teamMapperFactory } from './factory.js';
import type { TeamMapperConfig } from './config.js';

function ctx(counts: Map<string, number>): ComponentContext {
  return {
    id: 'team_mapper',
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    telemetry: {
      dropped() {},
      counter: (name) => ({ add: (v, a) => counts.set(`${name}${JSON.stringify(a ?? {})}`, (counts.get(`${name}${JSON.stringify(a ?? {})}`) ?? 0) + v) }),
      gauge() {},
    },
  };
}

const sample = (attributes: Attributes): Sample => ({ schema: { id: 't', metrics: [] }, attributes, values: new Float64Array(0), final: false, timeMs: 0 });

const config: TeamMapperConfig = {
  attribute: 'team',
  default_team: 'unowned',
  teams: [
    { team: 'payments', namespaces: ['payments', 'billing'] },
    { team: 'data', cgroup_prefixes: ['/system.slice/postgresql', '/system.slice/kafka'] },
    { team: 'platform', cgroup_prefixes: ['/kubepods.slice/', '/system.slice/'], namespaces: ['kube-system'] },
  ],
};

describe('team-mapper example plugin', () => {
  test('the module exports one processor factory through definePlugin', () => {
    assert.deepEqual(
      plugin.factories.map((f) => `${f.kind}/${f.type}`),
      ['processor/team_mapper'],
    );
  });

  test('namespace first, then cgroup prefixes in rule order, else default_team', async () => {
    const counts = new Map<string, number>();
    const p = await teamMapperFactory.create(ctx(counts), config);
    await p.start();
    const cases: Array<[Attributes, string]> = [
      [{ [ATTR.CGROUP]: '/kubepods.slice/kubepods-burstable.slice/x', 'k8s.namespace.name': 'billing' }, 'payments'],
      [{ [ATTR.CGROUP]: '/kubepods.slice/kubepods-burstable.slice/x', 'k8s.namespace.name': 'web' }, 'platform'],
      [{ [ATTR.CGROUP]: '/system.slice/postgresql@15-main.service' }, 'data'],
      [{ [ATTR.CGROUP]: '/system.slice/ssh.service' }, 'platform'],
      [{ [ATTR.CGROUP]: '/user.slice/user-1000.slice/session-1.scope' }, 'unowned'],
      [{ [ATTR.EXECUTABLE_NAME]: 'kthreadd' }, 'unowned'],
    ];
    const out = await p.process(cases.map(([a]) => sample(a)));
    assert.deepEqual(
      out.map((s) => s.attributes.team),
      cases.map(([, team]) => team),
    );
    assert.equal(counts.get('workloads_mapped{"team":"platform"}'), 2);
  });

  test("log records (exit events): the same team, written into each record's own attributes", async () => {
    const p = await teamMapperFactory.create(ctx(new Map()), config);
    const record = (attributes: Attributes): LogRecord => ({
      timeMs: 0,
      severityNumber: SeverityNumber.WARN,
      eventName: 'process.exit',
      body: 'x',
      attributes,
    });
    const batch = [
      record({ [ATTR.CGROUP]: '/kubepods.slice/x', 'k8s.namespace.name': 'billing', 'process.exit.code': 1 }),
      record({ [ATTR.CGROUP]: '/system.slice/kafka.service' }),
      record({ [ATTR.EXECUTABLE_NAME]: 'kthreadd' }),
    ];
    const own = batch.map((r) => r.attributes);
    const out = await p.processLogs(batch);
    assert.deepEqual(
      out.map((r) => r.attributes.team),
      ['payments', 'data', 'unowned'],
    );
    assert.equal(out[0]!.attributes, own[0], 'in place: a logs pipeline owns its records');
    assert.equal(out[0]!.attributes['process.exit.code'], 1, 'other attributes kept');
  });

  test('never mutates the input; one enriched object per input object', async () => {
    const p = await teamMapperFactory.create(ctx(new Map()), config);
    const input = Object.freeze({ [ATTR.CGROUP]: '/system.slice/kafka.service' });
    const [a] = await p.process([sample(input)]);
    const [b] = await p.process([sample(input)]);
    assert.equal(a!.attributes, b!.attributes);
    assert.deepEqual(input, { [ATTR.CGROUP]: '/system.slice/kafka.service' });
    assert.equal(a!.attributes.team, 'data');
  });

  test('without default_team, unmatched samples keep their very attributes object', async () => {
    const p = await teamMapperFactory.create(ctx(new Map()), { ...config, default_team: undefined });
    const input = { [ATTR.CGROUP]: '/user.slice/x' };
    assert.equal((await p.process([sample(input)]))[0]!.attributes, input);
  });

  test('validate names the path of each problem', () => {
    assert.deepEqual(
      teamMapperFactory.validate!({
        attribute: 'team',
        teams: [
          { team: 'a', cgroup_prefixes: ['/ok', 'system.slice/'] },
          { team: 'b' },
          { team: 'c', namespaces: ['x'] },
          { team: 'd', namespaces: ['y', 'x'] },
        ],
      }).map((p) => p.path),
      ['teams[0].cgroup_prefixes[1]', 'teams[1]', 'teams[3].namespaces[1]'],
    );
    assert.deepEqual(
      teamMapperFactory.validate!({ attribute: 'team', teams: [] }).map((p) => p.path),
      ['teams'],
    );
  });
});
