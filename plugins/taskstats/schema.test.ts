import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PROCESS_SCHEMA, PROCESS_SCHEMA_PER_PROCESS } from './schema.js';
import { defaultExitDistributionsConfig, withExitDistributions } from './exit-distributions.js';
import { CGROUP_PRESSURE_SCHEMA, CGROUP_UNACCOUNTED_SCHEMA } from './cgroup-reconcile.js';

const docs = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');

test('every metric of the schemas has its catalogue row in docs/metrics.md (name, instrument, unit, value, attributes)', () => {
  const rows = new Map<string, string>();
  for (const line of docs.split('\n')) {
    const m = /^\| `([a-z0-9_.]+)` \| (counter|gauge|histogram) \| `([^`]+)` \| (int|double) \|/.exec(line);
    if (m) rows.set(m[1]!, line);
  }
  const seen = new Set<string>();
  // Every metric the receiver can emit: per-process schema with every exit distribution, and the
  // cgroup schemas.
  const everything = [
    ...withExitDistributions(PROCESS_SCHEMA_PER_PROCESS, { ...defaultExitDistributionsConfig(), all_delays: true }).metrics,
    ...CGROUP_UNACCOUNTED_SCHEMA.metrics,
    ...CGROUP_PRESSURE_SCHEMA.metrics,
  ];
  for (const d of everything) {
    const row = rows.get(d.name);
    assert.ok(row, `docs/metrics.md has no catalogue row for ${d.name}`);
    assert.ok(row.includes(`| ${d.instrument} | \`${d.unit}\` | ${d.valueType} |`), `${d.name}: row says ${row}`);
    for (const [k, v] of Object.entries(d.pointAttributes ?? {})) {
      assert.ok(row.includes(`\`${k}\``) && row.includes(`\`${String(v)}\``), `${d.name}: row lacks ${k}=${String(v)}`);
    }
    for (const k of d.samplePointAttributes ?? []) assert.ok(row.includes(`\`${k}\``), `${d.name}: row lacks ${k}`);
    seen.add(d.name);
  }
  for (const name of rows.keys()) assert.ok(seen.has(name), `docs/metrics.md documents ${name}, which no schema has`);
  // the aggregate schema is the per-process one without the gauges
  assert.deepEqual(PROCESS_SCHEMA.metrics, PROCESS_SCHEMA_PER_PROCESS.metrics.slice(0, PROCESS_SCHEMA.metrics.length));
  assert.ok(PROCESS_SCHEMA_PER_PROCESS.metrics.slice(PROCESS_SCHEMA.metrics.length).every((d) => d.instrument === 'gauge'));
});
