// test-requires: root taskstats libnl
/**
 * A backend that answers 429 (with Retry-After), 503 or 500, played by a local HTTP server that
 * records when each request arrived: the agent waits as long as Retry-After asks, backs off
 * exponentially, keeps its queue bounded, and counts what it drops in its self-telemetry.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startAgent, type AgentProcess } from '../support/agent.js';
import { sleep, waitFor } from '../support/workload.js';
import { faultConfig } from './configs.js';
import { fakeOtlpBackend, type Answer, type FakeOtlpBackend } from '../support/fake-otlp-backend.js';

/** The fake backend at its metrics endpoint. */
async function fakeBackend(answer: Answer): Promise<FakeOtlpBackend> {
  const b = await fakeOtlpBackend(answer, 'protobuf');
  return { ...b, url: `${b.url}/v1/metrics` };
}

const agents: AgentProcess[] = [];
const backends: FakeOtlpBackend[] = [];
after(async () => {
  for (const a of agents) await a.kill();
  for (const b of backends) await b.close();
});

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);

describe('backend answering errors', () => {
  test('429 with Retry-After: the next attempt waits at least that long, then data is delivered', async () => {
    const RETRY_AFTER_S = 3;
    // Refuse the first three requests, then accept everything.
    const backend = await fakeBackend((i) => (i < 3 ? { status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } } : { status: 200 }));
    backends.push(backend);
    const agent = await startAgent({
      config: faultConfig({
        metricsUrl: backend.url,
        collectionInterval: '2s',
        otlp: { timeout: '30s', retry_on_failure: { initial_interval: '100ms', max_interval: '1s', max_elapsed_time: '2m' } },
      }),
    });
    agents.push(agent);
    await waitFor('a request accepted after three 429 answers', () => backend.answers.includes(200), 60_000);
    const g = gaps(backend.arrivals.slice(0, 4));
    if (process.env.FAULTS_VERBOSE) console.log('429 gaps (ms):', g.map(Math.round).join(' '));
    // Whatever its own backoff says (100 ms here), the server asked for 3 s each time.
    for (const [i, gap] of g.entries()) {
      assert.ok(gap >= RETRY_AFTER_S * 1000 - 50, `request ${i + 2} came ${Math.round(gap)} ms after a 429 with Retry-After: ${RETRY_AFTER_S}`);
    }
    const m = await agent.metrics();
    const retryable = m.sum('taskstats_agent_exporter_requests_total', { status: '429' });
    assert.ok(retryable >= 3, `self-telemetry should count the 429 answers (got ${retryable})\n${m.text}`);
    assert.ok(m.sum('taskstats_agent_exporter_sent_points_total') > 0, 'points sent after the backend accepted');
    const stop = await agent.stop();
    assert.equal(stop.code, 0);
  });

  test('503 without Retry-After: exponential backoff, no tight loop', async () => {
    const backend = await fakeBackend(() => ({ status: 503 }));
    backends.push(backend);
    const INITIAL_MS = 200;
    const MAX_MS = 10_000;
    const agent = await startAgent({
      config: faultConfig({
        metricsUrl: backend.url,
        collectionInterval: '1s',
        // A timeout shorter than the OTel exporter's own first retry (~1 s): every attempt seen
        // here is the agent's backoff.
        otlp: { timeout: '500ms', retry_on_failure: { initial_interval: `${INITIAL_MS}ms`, max_interval: `${MAX_MS}ms`, max_elapsed_time: '5m' } },
      }),
    });
    agents.push(agent);
    // One batch is sent at a time: these are the first batch's attempts, each after the wait of
    // its retry: initial_interval x 1.5 per retry (src/api/exporter-helper.ts), jittered by +-20%.
    // A slow machine only makes the gaps longer, so the lower bounds are the behaviour itself.
    const ATTEMPTS = 8;
    await waitFor(`${ATTEMPTS} attempts`, () => backend.arrivals.length >= ATTEMPTS, 60_000);
    const g = gaps(backend.arrivals.slice(0, ATTEMPTS));
    if (process.env.FAULTS_VERBOSE) console.log('503 gaps (ms):', g.map(Math.round).join(' '));
    for (const [k, gap] of g.entries()) {
      const least = 0.8 * Math.min(INITIAL_MS * 1.5 ** k, MAX_MS) - 5; // 5 ms: the two clocks' granularity
      assert.ok(
        gap >= least,
        `retry ${k + 1} came ${Math.round(gap)} ms after the previous attempt, before the backoff's ${Math.round(least)} ms (gaps ${g.map(Math.round).join(', ')} ms)`,
      );
    }
    const m = await agent.metrics();
    assert.ok(m.sum('taskstats_agent_exporter_batch_retries_total') >= ATTEMPTS - 1, 'retries are counted');
    await agent.stop();
  });

  test('a backend that stays unavailable: the queue stays bounded and its drops are counted', async () => {
    const backend = await fakeBackend(() => ({ status: 503 }));
    backends.push(backend);
    const agent = await startAgent({
      config: faultConfig({
        metricsUrl: backend.url,
        collectionInterval: '300ms',
        otlp: {
          timeout: '1s',
          sending_queue: { queue_size: 2 },
          retry_on_failure: { initial_interval: '1s', max_interval: '5s', max_elapsed_time: '10m' },
        },
      }),
    });
    agents.push(agent);
    let maxQueue = 0;
    const m = await waitFor(
      'queue_full drops in self-telemetry',
      async () => {
        const s = await agent.metrics();
        maxQueue = Math.max(maxQueue, s.sum('taskstats_agent_exporter_queue_size'));
        return s.sum('taskstats_agent_component_dropped_items_total', { reason: 'queue_full' }) > 0 ? s : undefined;
      },
      30_000,
      200,
    );
    assert.ok(maxQueue <= 2, `queue size ${maxQueue} exceeds its capacity 2`);
    assert.match(agent.logs, /queue full/i, 'the drop is logged');
    // Bounded for good: keep going and watch the queue.
    for (let i = 0; i < 10; i++) {
      await sleep(300);
      const s = await agent.metrics();
      assert.ok(s.sum('taskstats_agent_exporter_queue_size') <= 2, 'queue grew past its capacity');
    }
    assert.ok(m.sum('taskstats_agent_component_dropped_items_total', { reason: 'queue_full' }) > 0);
    const stop = await agent.stop();
    assert.equal(stop.code, 0, `exit code after SIGTERM with an unavailable backend:\n${agent.logs.slice(-3000)}`);
    assert.ok(agent.shutdownCompleted(), `an unavailable backend did not hold shutdown past its deadline:\n${agent.logs.slice(-3000)}`);
  });

  test('500 (not retryable): the batch is dropped and counted, later batches are still sent', async () => {
    // 500 for the first two requests, then 200.
    const backend = await fakeBackend((i) => ({ status: i < 2 ? 500 : 200 }));
    backends.push(backend);
    const agent = await startAgent({
      config: faultConfig({ metricsUrl: backend.url, collectionInterval: '1s', otlp: { timeout: '5s' } }),
    });
    agents.push(agent);
    await waitFor('a later batch accepted', () => backend.answers.includes(200), 30_000);
    const m = await agent.metrics();
    const dropped = m.sum('taskstats_agent_component_dropped_items_total', { component_id: 'otlp' });
    assert.ok(dropped > 0, `points refused with 500 should be counted as dropped:\n${m.text}`);
    assert.ok(m.sum('taskstats_agent_exporter_requests_total', { status: '500' }) >= 2, '500 answers are counted');
    // 500 is not retried: the two refused requests were two different batches, a collection apart.
    assert.ok(backend.arrivals[1]! - backend.arrivals[0]! >= 500, 'a 500 should not be retried at once');
    await agent.stop();
  });
});
