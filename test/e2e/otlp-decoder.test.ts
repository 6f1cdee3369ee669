/**
 * What the agent sends over OTLP, decoded by a receiver nobody here wrote: the official
 * OpenTelemetry protobuf definitions (Debian's python3-opentelemetry-proto with python3-protobuf
 * and python3-grpcio; test/support/otlp-decoder.py), strictly, over http/protobuf, http/json and
 * grpc, for logs and for metrics. The agent runs as a real process with a logs and a metrics
 * pipeline fed by one receiver of both signals (test/host/fixtures), whose events are known: the
 * decoded records must be exactly those, field by field, and the decoded sum their count.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startAgent, tempDir, testPlugins } from '../host/helpers.js';
import type { RunningAgent } from '../host/helpers.js';
import { attributesOf, decodedLogRecords, otlpDecoderMissing, startOtlpDecoder, type DecodedRequest, type OtlpDecoder } from '../support/otlp-decoder.js';

const missing = otlpDecoderMissing();
const tmp = tempDir('taskstats-decoder-');
const agents: RunningAgent[] = [];
let decoder: OtlpDecoder | undefined;

const TOTAL = 12;
const BASE_MS = 1_764_672_000_000;
const SEVERITY = [
  ['SEVERITY_NUMBER_INFO', 'INFO'],
  ['SEVERITY_NUMBER_WARN', 'WARN'],
  ['SEVERITY_NUMBER_ERROR', 'ERROR'],
] as const;

function config(protocol: string, endpoint: string): string {
  return `plugins: [${testPlugins}]
receivers:
  event_source: {interval: 40ms, batch_size: 3, total: ${TOTAL}, base_time_ms: ${BASE_MS}}
exporters:
  otlp:
    endpoint: ${endpoint}
    protocol: ${protocol}
    retry_on_failure: {enabled: false}
service:
  telemetry: {metrics: {address: ""}}
  pipelines:
    metrics: {receivers: [event_source], exporters: [otlp]}
    logs:
      receivers: [event_source]
      exporters: [otlp]
      batch: {send_batch_size: 5, timeout: 100ms}
`;
}

/** The value of the `test.events` sum in the last metrics request that has it. */
function lastEventsSum(requests: DecodedRequest[]): { value: number; attributes: Record<string, unknown> } | undefined {
  let found: { value: number; attributes: Record<string, unknown> } | undefined;
  for (const r of requests) {
    for (const rm of r.request.resource_metrics ?? []) {
      for (const sm of rm.scope_metrics ?? []) {
        for (const m of sm.metrics ?? []) {
          if (m.name !== 'test.events') continue;
          assert.equal(m.sum?.aggregation_temporality, 'AGGREGATION_TEMPORALITY_CUMULATIVE');
          assert.equal(m.sum.is_monotonic, true);
          const dp = m.sum.data_points?.[0];
          assert.ok(dp, 'one data point');
          found = { value: Number(dp.as_int), attributes: attributesOf(dp.attributes) };
        }
      }
    }
  }
  return found;
}

describe('OTLP decoded by the official definitions', { skip: missing, timeout: 120_000 }, () => {
  before(async () => {
    decoder = await startOtlpDecoder();
  });
  after(async () => {
    for (const a of agents) a.kill();
    await decoder?.stop();
    tmp.remove();
  });

  for (const protocol of ['http/protobuf', 'http/json', 'grpc'] as const) {
    test(`${protocol}: every event as a log record, exactly; the metrics sum; nothing refused`, async () => {
      assert.ok(decoder);
      const endpoint = protocol === 'grpc' ? decoder.grpcUrl : decoder.httpUrl;
      const first = decoder.requests.length;
      const agent = startAgent(['run', '--config', tmp.write(`${protocol.replace('/', '-')}.yaml`, config(protocol, endpoint))]);
      agents.push(agent);
      const logsOf = () => decoder!.requests.slice(first).filter((r) => r.signal === 'logs');
      const deadline = Date.now() + 20_000;
      while (decodedLogRecords(logsOf()).length < TOTAL && Date.now() < deadline && !agent.exit) await new Promise((r) => setTimeout(r, 50));
      const stopped = await agent.stop('SIGTERM');
      assert.equal(stopped.code, 0, agent.stderr);
      assert.deepEqual(decoder.errors, [], 'the definitions refused nothing');

      const mine = decoder.requests.slice(first);
      assert.ok(
        mine.every((r) => r.protocol === protocol),
        `all arrived over ${protocol}`,
      );
      const records = decodedLogRecords(mine.filter((r) => r.signal === 'logs'));
      assert.equal(records.length, TOTAL, 'each event once');
      // Batched by the pipeline (5 per batch or 100 ms), not one request per receiver batch of 3.
      assert.ok(logsOf().length < TOTAL / 3 + 1, `${logsOf().length} logs requests`);
      const bySequence = new Map(records.map((r) => [attributesOf(r.record.attributes)['test.sequence'], r]));
      for (let n = 0; n < TOTAL; n++) {
        const got = bySequence.get(n);
        assert.ok(got, `event ${n} arrived`);
        const { record, resource, scope } = got;
        const nanos = (BigInt(BASE_MS + n) * 1_000_000n + 250_000n).toString();
        assert.equal(record.time_unix_nano, nanos, 'time to the nanosecond');
        assert.equal(record.observed_time_unix_nano, nanos);
        assert.equal(record.severity_number, SEVERITY[n % 3]![0]);
        assert.equal(record.severity_text, SEVERITY[n % 3]![1]);
        assert.deepEqual(record.body, { string_value: `event ${n}` });
        assert.equal(record.event_name, 'test.event');
        assert.deepEqual(attributesOf(record.attributes), { 'test.sequence': n, 'test.flag': n % 2 === 0, 'test.ratio': n / 4, 'test.source': 'event_source' });
        assert.equal(resource['service.name'], 'taskstats-agent');
        assert.equal(scope.name, 'taskstats-agent');
      }

      const sum = lastEventsSum(mine.filter((r) => r.signal === 'metrics'));
      assert.ok(sum, 'test.events arrived as a metric');
      assert.deepEqual(sum, { value: TOTAL, attributes: { source: 'event_source' } });
    });
  }
});
