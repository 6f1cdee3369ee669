/**
 * The contract every built-in plugin must meet, checked the way the host checks custom plugins:
 * registrable (shape, unique types), schema compiles, defaults valid against the schema, and a
 * component with an empty config (`type:` alone) validates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtinPlugins } from '../../plugins/index.js';
import { formatIssue } from '../../src/config/issues.js';
import type { ConfigIssue } from '../../src/config/issues.js';
import { COMPONENT_KINDS, Registry } from '../../src/registry.js';

test('every built-in plugin registers with compiled schemas; defaults are valid', () => {
  const registry = new Registry();
  for (const p of builtinPlugins) registry.registerPlugin(p, 'built-in', { withCommands: true, compileSchemas: true });
  const positions = { valuePositions: new Map(), keyPositions: new Map() };
  let count = 0;
  for (const kind of COMPONENT_KINDS) {
    for (const { factory } of registry.list(kind)) {
      count++;
      assert.match(factory.description, /^[^\n]+$/, `${kind} ${factory.type}: one-line description`);
      const issues: ConfigIssue[] = [];
      const config = registry.validator.resolve(factory, null, `${kind}s.${factory.type}`, positions, issues);
      // Some components need a setting without default (an endpoint...): then the only problems
      // allowed are missing required keys or the factory's own checks, never schema/defaults conflicts.
      for (const i of issues) {
        assert.doesNotMatch(i.message, /unknown key|must be|invalid configSchema|threw/, `${kind} ${factory.type}: defaults invalid: ${formatIssue(i)}`);
      }
      if (issues.length === 0) assert.ok(config !== undefined);
    }
  }
  assert.ok(count >= 1);
  for (const [name, { command }] of registry.commands) {
    assert.equal(command.name, name);
    assert.ok(command.summary && command.usage, `command ${name}: summary and usage`);
  }
});
