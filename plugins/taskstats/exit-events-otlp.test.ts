// test-requires: root taskstats libnl
/**
 * The minimal configuration, as a user writes it: the taskstats receiver with no options,
 * the otlp exporter with only an endpoint, one logs pipeline. The agent runs as a real process;
 * processes whose end the test knows exit; their exit events must reach a receiver nobody here
 * wrote (the official OpenTelemetry protobuf definitions, test/support/otlp-decoder.py) with the
 * right pid, outcome, severity, event name, body and exit time.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../../test/support/agent.js';
import { attributesOf, decodedLogRecords, otlpDecoderMissing, startOtlpDecoder, type OtlpDecoder } from '../../test/support/otlp-decoder.js';
import { compileC, repoRoot, waitFor } from '../../test/support/workload.js';

const skip = process.getuid?.() !== 0 ? 'needs root (CAP_NET_ADMIN for exit events)' : otlpDecoderMissing();

describe('exit events over OTLP with the minimal configuration (real agent, real kernel, independent decoder)', { skip, timeout: 120_000 }, () => {
  let decoder: OtlpDecoder | undefined;
  let agent: AgentProcess | undefined;
  let cases = '';

  before(async () => {
    cases = compileC(readFileSync(join(repoRoot, 'test/support/exit-cases.c'), 'utf8'), 'exit-cases', ['-pthread']);
    decoder = await startOtlpDecoder();
  });
  after(async () => {
    await agent?.kill();
    await decoder?.stop();
  });

  test('receivers: {taskstats: {}}, exporters: {otlp: {endpoint}}, a logs pipeline: the exits arrive as process.exit records', async () => {
    const d = decoder!;
    agent = await startAgent({
      config: {
        receivers: { taskstats: {} },
        exporters: { otlp: { endpoint: d.httpUrl } },
        service: { pipelines: { logs: { receivers: ['taskstats'], exporters: ['otlp'] } } },
      },
    });
    const run = (args: string[], kill?: NodeJS.Signals) =>
      new Promise<{ pid: number; beforeMs: number; afterMs: number }>((resolve, reject) => {
        const beforeMs = Date.now();
        const child = spawn(cases, args, { stdio: ['ignore', 'pipe', 'inherit'] });
        child.on('error', reject);
        if (kill) child.stdout.once('data', () => child.kill(kill));
        child.on('exit', () => resolve({ pid: child.pid!, beforeMs, afterMs: Date.now() }));
      });
    // Failures: they have a budget of their own (100/s) that the host's other exits do not use up.
    const three = await run(['exit', '3']);
    const killed = await run(['wait'], 'SIGKILL');
    const records = () => decodedLogRecords(d.requests.filter((r) => r.signal === 'logs'));
    const find = (pid: number) => records().find((r) => r.record.event_name === 'process.exit' && attributesOf(r.record.attributes)['process.pid'] === pid);
    await waitFor('both exit events at the decoder', () => find(three.pid) && find(killed.pid), 30_000);
    assert.deepEqual(d.errors, [], 'the definitions refused nothing');

    const t = find(three.pid)!;
    const ta = attributesOf(t.record.attributes);
    assert.equal(t.record.severity_number, 'SEVERITY_NUMBER_WARN');
    assert.equal(t.record.severity_text, 'WARN');
    assert.equal(ta['process.exit.code'], 3);
    assert.equal(ta['process.parent_pid'], process.pid);
    assert.equal(ta['process.executable.name'], 'exit-cases');
    assert.match(String(t.record.body?.string_value), new RegExp(`^exit-cases \\(pid ${three.pid}\\) exited with code 3 after `));
    const timeMs = Number(BigInt(String(t.record.time_unix_nano)) / 1_000_000n);
    assert.ok(
      timeMs >= three.beforeMs - 1 && timeMs <= three.afterMs + 1000,
      `exit time ${timeMs} within the process's life (${three.beforeMs}..${three.afterMs} + 1 s)`,
    );
    assert.equal(t.resource['service.name'], 'taskstats-agent');

    const k = find(killed.pid)!;
    const ka = attributesOf(k.record.attributes);
    assert.equal(k.record.severity_number, 'SEVERITY_NUMBER_ERROR');
    assert.equal(ka['process.linux.exit.signal'], 'SIGKILL');
    assert.equal(ka['process.exit.code'], undefined);
    assert.match(String(k.record.body?.string_value), /was killed by SIGKILL/);

    const stopped = await agent.stop();
    assert.equal(stopped.code, 0, agent.stderr);
  });
});
