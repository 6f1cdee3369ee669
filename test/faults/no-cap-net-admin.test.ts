// test-requires: root
/**
 * Without CAP_NET_ADMIN the kernel refuses taskstats registration (EPERM): the agent must say so
 * clearly, naming CAP_NET_ADMIN with the code missing_capability, and exit non-zero instead of running deaf or crashing.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AS_NOBODY_WITHOUT_CAPS, freePort, portIsOpen, runAgentCommand, writeConfig } from '../support/agent.js';
import { faultConfig } from './configs.js';

async function refusal(wrapper: string[]) {
  const port = await freePort();
  const config = faultConfig({ metricsUrl: 'http://127.0.0.1:9/v1/metrics' });
  config.service.telemetry.metrics = { address: `127.0.0.1:${port}` };
  const cfg = writeConfig(config);
  try {
    const r = await runAgentCommand(['run', '--config', cfg.file], { wrapper, timeoutMs: 20_000 });
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, `expected a non-zero exit without CAP_NET_ADMIN, got ${r.code}\n${out}`);
    assert.equal(r.signal, null, `killed by ${r.signal} instead of exiting\n${out}`);
    assert.match(out, /CAP_NET_ADMIN/, `the refusal should name CAP_NET_ADMIN:\n${out}`);
    // The catalogue's code, whichever socket (taskstats or proc connector) was refused first.
    assert.match(out, /"code":"missing_capability"|code=missing_capability/, `the refusal should carry its code:\n${out}`);
    // One clear message, not a stack trace.
    assert.doesNotMatch(out, /^\s+at .+:\d+:\d+\)?$/m, `the refusal should not be a stack trace:\n${out}`);
    assert.equal(await portIsOpen(port), false, 'nothing may be left listening after the refusal');
    return r;
  } finally {
    cfg.cleanup();
  }
}

describe('no CAP_NET_ADMIN', () => {
  test('as nobody without any capability: a clear refusal naming CAP_NET_ADMIN, non-zero exit', async () => {
    await refusal(AS_NOBODY_WITHOUT_CAPS);
  });

  test('as root with only CAP_NET_ADMIN removed: the same refusal', async () => {
    await refusal(['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin']);
  });
});
