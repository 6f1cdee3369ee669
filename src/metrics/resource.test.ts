import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { buildResource, parseResourceAttributes } from './index.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

describe('buildResource', () => {
  test('defaults: service.name, service.version, host.name; no k8s.node.name without K8S_NODE_NAME', () => {
    const a = buildResource({}).attributes;
    assert.equal(a['service.name'], 'taskstats-agent');
    assert.equal(a['service.version'], pkg.version);
    assert.equal(a['host.name'], hostname());
    assert.equal('k8s.node.name' in a, false);
    assert.equal(a['telemetry.sdk.language'], 'nodejs');
  });

  test('K8S_NODE_NAME, OTEL_RESOURCE_ATTRIBUTES (percent-decoded) and OTEL_SERVICE_NAME', () => {
    const a = buildResource({
      K8S_NODE_NAME: 'node-7',
      OTEL_RESOURCE_ATTRIBUTES: ' deployment.environment.name = prod , team=a%2Cb%3Dc ,service.name=from-attrs,host.name=h1',
    }).attributes;
    assert.equal(a['k8s.node.name'], 'node-7');
    assert.equal(a['deployment.environment.name'], 'prod');
    assert.equal(a['team'], 'a,b=c');
    assert.equal(a['service.name'], 'from-attrs');
    assert.equal(a['host.name'], 'h1');
    // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES (as the spec says)
    assert.equal(buildResource({ OTEL_SERVICE_NAME: 'svc', OTEL_RESOURCE_ATTRIBUTES: 'service.name=x' }).attributes['service.name'], 'svc');
  });

  test('a malformed OTEL_RESOURCE_ATTRIBUTES is ignored as a whole, with a warning naming it', () => {
    const warnings: string[] = [];
    const a = buildResource({ OTEL_RESOURCE_ATTRIBUTES: 'good=1,bad%ZZ=2' }, (m) => warnings.push(m)).attributes;
    assert.equal('good' in a, false);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /OTEL_RESOURCE_ATTRIBUTES ignored: entry "bad%ZZ=2" has an invalid percent-encoding/);
    assert.throws(() => parseResourceAttributes('a=b=c'), /entry "a=b=c" is not key=value/);
    assert.throws(() => parseResourceAttributes('=b'), /empty key/);
    assert.deepEqual(parseResourceAttributes('k=,x=%E2%9C%93'), { k: '', x: '✓' });
  });
});
