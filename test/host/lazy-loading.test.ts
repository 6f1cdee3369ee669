// test-requires: root taskstats libnl
/**
 * Start-up memory: the agent loads a component's implementation (and the packages it needs) only
 * when the configuration uses that component. Checked on the real agent process: a module loader
 * hook (`node --import`) records every module file it loads while the agent runs a config.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startAgent, type AgentProcess, type ConfigDocument } from '../support/agent.js';
import { repoRoot } from '../support/workload.js';

const dir = mkdtempSync(join(tmpdir(), 'ts-lazy-'));
const agents: AgentProcess[] = [];
after(async () => {
  for (const a of agents) await a.kill();
  rmSync(dir, { recursive: true, force: true });
});

// Registers a loader hook that appends the URL of every module loaded (ESM and CommonJS through
// import) to $MODULES_LOG; CommonJS files loaded by require() are recorded through Module._compile.
const hook = join(dir, 'record-modules.mjs');
writeFileSync(
  hook,
  `import { register } from 'node:module';
import Module from 'node:module';
import { appendFileSync, writeFileSync } from 'node:fs';
const out = process.env.MODULES_LOG;
// The built-ins node loaded (its own list), at exit.
process.on('exit', () => writeFileSync(out + '.builtins', process.moduleLoadList.join('\\n')));
const loader = 'import { appendFileSync } from "node:fs";' +
  'export async function load(url, context, next) { appendFileSync(' + JSON.stringify(out) + ', url + "\\\\n"); return next(url, context); }';
register('data:text/javascript,' + encodeURIComponent(loader));
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  appendFileSync(out, 'file://' + filename + '\\n');
  return compile.apply(this, arguments);
};
`,
);

/**
 * Runs the agent with `config` until ready and started (and until `until` resolves, if given),
 * stops it, returns the modules it loaded.
 */
async function modulesLoadedBy(name: string, config: ConfigDocument, until?: () => Promise<void>): Promise<string[]> {
  const log = join(dir, `${name}.modules`);
  writeFileSync(log, '');
  const agent = await startAgent({
    config,
    nodeArgs: ['--import', hook],
    env: { MODULES_LOG: log, OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: '' },
    readyTimeoutMs: 30_000,
  });
  agents.push(agent);
  await until?.();
  const stop = await agent.stop();
  assert.equal(stop.code, 0, agent.logs);
  assert.match(agent.logs, /taskstats-agent started/);
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

const loaded = (modules: string[], part: string): boolean => modules.some((m) => m.includes(part));
const builtinsLoadedBy = (name: string): string[] => readFileSync(join(dir, `${name}.modules.builtins`), 'utf8').split('\n');

describe('lazy loading of components', { timeout: 90_000 }, () => {
  test('the default config.yaml (debug, idle otlp) loads no OpenTelemetry package and no unused component', async () => {
    const config = parse(readFileSync(join(repoRoot, 'config.yaml'), 'utf8')) as ConfigDocument;
    const modules = await modulesLoadedBy('default', config);
    // The recording works, and the components in use were loaded...
    assert.ok(loaded(modules, '/dist/src/cli.js'), modules.join('\n'));
    assert.ok(loaded(modules, '/dist/plugins/debug/exporter.js'));
    assert.ok(loaded(modules, '/dist/plugins/otlp/exporter.js'));
    assert.ok(loaded(modules, '/dist/plugins/taskstats/receiver.js'));
    // ...the others were not.
    for (const unused of ['/dist/plugins/prometheus/exporter.js', '/dist/plugins/k8sattributes/processor.js', '/dist/plugins/filter/processor.js']) {
      assert.ok(!loaded(modules, unused), `${unused} loaded`);
    }
    // The host needs no OpenTelemetry package at run time; an idle otlp exporter loads none either.
    assert.deepEqual(
      modules.filter((m) => m.includes('/node_modules/@opentelemetry/')),
      [],
    );
    assert.ok(!loaded(modules, '/node_modules/@kubernetes/'));
  });

  test('a config with prometheus and filter loads exactly those', async () => {
    const config = {
      receivers: { taskstats: { collection_interval: '1s' } },
      processors: { filter: { exclude: { commands: ['never-such-command'] } } },
      exporters: { prometheus: { endpoint: '127.0.0.1:0' } },
      service: { pipelines: { metrics: { receivers: ['taskstats'], processors: ['filter'], exporters: ['prometheus'] } } },
    };
    const modules = await modulesLoadedBy('prometheus', config);
    assert.ok(loaded(modules, '/dist/plugins/prometheus/exporter.js'), modules.join('\n'));
    assert.ok(loaded(modules, '/node_modules/@opentelemetry/exporter-prometheus/'));
    assert.ok(loaded(modules, '/dist/plugins/filter/processor.js'));
    for (const unused of ['/dist/plugins/otlp/exporter.js', '/dist/plugins/debug/exporter.js', '/dist/plugins/k8sattributes/processor.js']) {
      assert.ok(!loaded(modules, unused), `${unused} loaded`);
    }
  });

  test('an otlp exporter sending over http/protobuf loads its packages, and node:http without undici', async () => {
    // A backend that accepts every export.
    let requests = 0;
    let sent: () => void = () => undefined;
    const firstRequest = new Promise<void>((resolve) => (sent = resolve));
    const backend = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        requests++;
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        sent();
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = backend.address() as AddressInfo;
      const config = {
        receivers: { taskstats: { collection_interval: '1s' } },
        exporters: { otlp: { endpoint: `http://127.0.0.1:${port}` } },
        service: { pipelines: { metrics: { receivers: ['taskstats'], exporters: ['otlp'] } } },
      };
      const modules = await modulesLoadedBy('otlp', config, () => firstRequest);
      assert.ok(requests > 0);
      // Our protobuf encoder on the OTel exporters' HTTP transport.
      assert.ok(loaded(modules, '/dist/plugins/otlp/protobuf-metrics.js'), modules.join('\n'));
      assert.ok(loaded(modules, '/node_modules/@opentelemetry/otlp-exporter-base/'), modules.join('\n'));
      // ...without the library's serializers and sdk-metrics, which only the JSON protocol uses.
      for (const unused of ['/@opentelemetry/otlp-transformer/', '/@opentelemetry/sdk-metrics/', '/@opentelemetry/exporter-metrics-otlp-http/']) {
        assert.ok(!loaded(modules, unused), `${unused} loaded`);
      }
      const builtins = builtinsLoadedBy('otlp');
      assert.ok(builtins.includes('NativeModule http'), builtins.join(' '));
      // node:http's lazy WebSocket exports load undici (fetch, http2, ...): src/builtin-facades.ts.
      assert.ok(!builtins.includes('NativeModule internal/deps/undici/undici'), 'undici loaded');
      assert.ok(!builtins.includes('NativeModule http2'), 'http2 loaded');
    } finally {
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    }
  });
});
