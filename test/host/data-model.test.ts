/**
 * The host builds the sdk-metrics data model without loading the OpenTelemetry packages at run
 * time (start-up memory): its enum constants must equal the SDK's, and its resource must behave
 * like the SDK's for what exporters read (attributes, schemaUrl, merge).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as sdk from '@opentelemetry/sdk-metrics';
import * as api from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, ValueType, dataPointTypeName } from '../../src/api/index.js';
import { AgentResource, buildResource } from '../../src/metrics/resource.js';

/** The forward (NAME -> number) entries of a TypeScript numeric enum object. */
function forward(e: object): Record<string, number> {
  return Object.fromEntries(Object.entries(e).filter(([, v]) => typeof v === 'number'));
}

test('AggregationTemporality, DataPointType and ValueType equal the SDK enums, every member', () => {
  assert.deepEqual({ ...AggregationTemporality }, forward(sdk.AggregationTemporality));
  assert.deepEqual({ ...DataPointType }, forward(sdk.DataPointType));
  assert.deepEqual({ ...ValueType }, forward(api.ValueType));
  for (const [name, value] of Object.entries(forward(sdk.DataPointType))) assert.equal(dataPointTypeName(value), name);
  assert.equal(dataPointTypeName(42), '42');
});

test('AgentResource reads and merges like the SDK resource', () => {
  const attrs = { 'service.name': 'a', 'host.name': 'h', n: 3, ok: true };
  const mine = new AgentResource(attrs, 'https://opentelemetry.io/schemas/1.0.0');
  const theirs = resourceFromAttributes(attrs, { schemaUrl: 'https://opentelemetry.io/schemas/1.0.0' });
  assert.deepEqual({ ...mine.attributes }, { ...theirs.attributes });
  assert.equal(mine.schemaUrl, theirs.schemaUrl);
  assert.equal(mine.asyncAttributesPending, false);
  assert.deepEqual(mine.getRawAttributes(), theirs.getRawAttributes());

  // merge: the other resource's attributes win, in both implementations, whichever side is ours.
  const other = resourceFromAttributes({ 'service.name': 'b', extra: 'x', list: ['p', 'q'] });
  assert.deepEqual({ ...mine.merge(other).attributes }, { ...theirs.merge(other).attributes });
  assert.deepEqual({ ...other.merge(mine).attributes }, { ...other.merge(theirs).attributes });
  assert.equal(mine.merge(null), mine);
  // schema URLs: kept when only one side has one, dropped on a conflict (as the SDK does).
  assert.equal(new AgentResource({}).merge(theirs).schemaUrl, theirs.schemaUrl);
  assert.equal(mine.merge(resourceFromAttributes({}, { schemaUrl: 'https://other/1' })).schemaUrl, undefined);
});

test('buildResource is an AgentResource with the agent identity', () => {
  const r = buildResource({ OTEL_SERVICE_NAME: 'svc' });
  assert.ok(r instanceof AgentResource);
  assert.equal(r.attributes['service.name'], 'svc');
  assert.equal(r.attributes['telemetry.sdk.language'], 'nodejs');
});
