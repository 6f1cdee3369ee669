/**
 * The exporter helper's sending queue is bounded in items (data points, log records), what holds
 * memory, as well as in batches: a big node's collection (~330,000 points) against a slow backend
 * must not pile up 100 of them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createExporterHelper,
  DEFAULT_BATCH_MAX_SIZE,
  DEFAULT_QUEUE_ITEMS,
  EXPORTER_HELPER_DEFAULTS,
  resolveExporterHelperSettings,
} from '../../src/api/index.js';
import type { ComponentContext, SendResult } from '../../src/api/index.js';

/** A context that records drops, gauges and warnings. */
function context() {
  const dropped: Record<string, number> = {};
  const gauges: Record<string, () => number> = {};
  const warnings: Array<Record<string, unknown>> = [];
  const ctx: ComponentContext = {
    id: 'test_exporter',
    logger: { debug() {}, info() {}, warn: (_msg, fields) => void warnings.push(fields ?? {}), error() {} },
    telemetry: {
      dropped(count, reason) {
        dropped[reason] = (dropped[reason] ?? 0) + count;
      },
      counter: () => ({ add() {} }),
      gauge(name, _description, read) {
        gauges[name] = read;
      },
    },
  };
  return { ctx, dropped, gauges, warnings };
}

/** A backend that holds every send until released. */
function heldBackend() {
  const sent: number[][] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  return {
    sent,
    release,
    send: async (batch: number[]): Promise<SendResult> => {
      await released;
      sent.push(batch);
      return { ok: true };
    },
  };
}

const batch = (id: number, items: number): number[] => new Array<number>(items).fill(id);

describe('exporter helper: sending queue bounded in items', () => {
  test('the oldest batches go when the items would pass queue_items; the newest is always kept', async () => {
    const { ctx, dropped, gauges, warnings } = context();
    const backend = heldBackend();
    const helper = createExporterHelper<number[]>(ctx, {
      signal: 'metrics',
      settings: { ...EXPORTER_HELPER_DEFAULTS, queue: { enabled: true, queueSize: 100, queueItems: 10 } },
      count: (b) => b.length,
      send: backend.send,
    });
    await helper.export(batch(1, 4)); // in flight: not in the queue
    await helper.export(batch(2, 4));
    await helper.export(batch(3, 4));
    assert.equal(helper.queuedItems, 8);
    await helper.export(batch(4, 4)); // 12 > 10: batch 2 goes
    assert.equal(helper.queueSize, 2);
    assert.equal(helper.queuedItems, 8);
    assert.equal(dropped.queue_full, 4);
    assert.equal(gauges.queue_items!(), 8);
    assert.equal(gauges.queue_items_capacity!(), 10);
    // A batch larger than the bound alone: everything older goes, it is queued.
    await helper.export(batch(5, 15));
    assert.equal(helper.queueSize, 1);
    assert.equal(helper.queuedItems, 15);
    assert.equal(dropped.queue_full, 12);
    assert.deepEqual(helper.stats.droppedBatches, { queue_full: 3 });
    const w = warnings.filter((f) => f.key === 'queue_full:metrics');
    assert.deepEqual(
      w.map((f) => [f.batches, f.items]),
      [
        [1, 4],
        [2, 8],
      ],
      'one warning per export that dropped, with what it dropped',
    );
    backend.release();
    await helper.forceFlush();
    assert.deepEqual(
      backend.sent.map((b) => b[0]),
      [1, 5],
    );
    assert.equal(helper.queuedItems, 0);
    assert.equal(helper.stats.sentItems, 19);
    await helper.shutdown();
  });

  test('queue_size still bounds the batches', async () => {
    const { ctx, dropped } = context();
    const backend = heldBackend();
    const helper = createExporterHelper<number[]>(ctx, {
      signal: 'logs',
      settings: { ...EXPORTER_HELPER_DEFAULTS, queue: { enabled: true, queueSize: 2 } },
      count: (b) => b.length,
      send: backend.send,
    });
    for (let i = 1; i <= 5; i++) await helper.export(batch(i, 1));
    assert.equal(helper.queueSize, 2);
    assert.equal(dropped.queue_full, 2);
    backend.release();
    await helper.shutdown();
    assert.deepEqual(
      backend.sent.map((b) => b[0]),
      [1, 4, 5],
    );
  });

  test('sending_queue.queue_items from the config; unset, the default applies', () => {
    assert.equal(resolveExporterHelperSettings({ sending_queue: { queue_items: 5000 } }).queue.queueItems, 5000);
    assert.equal(resolveExporterHelperSettings({}).queue.queueItems, undefined);
    const { ctx, gauges } = context();
    const helper = createExporterHelper<number[]>(ctx, {
      signal: 'metrics',
      settings: EXPORTER_HELPER_DEFAULTS,
      count: (b) => b.length,
      send: () => Promise.resolve({ ok: true }),
    });
    assert.equal(gauges.queue_items_capacity!(), DEFAULT_QUEUE_ITEMS);
    void helper.shutdown();
  });
});

describe('exporter helper: a batch over sending_queue.batch.max_size goes as several requests', () => {
  const splitArray = (b: number[], max: number): number[][] => {
    const out: number[][] = [];
    for (let i = 0; i < b.length; i += max) out.push(b.slice(i, i + max));
    return out;
  };
  const numbered = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const noRetry = { ...EXPORTER_HELPER_DEFAULTS.retry, enabled: false };

  test('in order, none above the limit, every item once; counted as one batch', async () => {
    const { ctx } = context();
    const sent: number[][] = [];
    const helper = createExporterHelper<number[]>(ctx, {
      signal: 'metrics',
      settings: { ...EXPORTER_HELPER_DEFAULTS, queue: { enabled: true, queueSize: 10, batchMaxSize: 4 } },
      count: (b) => b.length,
      split: splitArray,
      send: (b) => {
        sent.push(b);
        return Promise.resolve({ ok: true });
      },
    });
    await helper.export(numbered(10));
    await helper.export(numbered(3)); // at most the limit: one request, not split
    await helper.forceFlush();
    assert.deepEqual(sent, [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
      [0, 1, 2],
    ]);
    assert.equal(helper.stats.sentItems, 13);
    assert.equal(helper.stats.sentBatches, 2);
    await helper.shutdown();
  });

  test('a request refused for good drops its items only; the other requests of the batch are sent', async () => {
    const { ctx, dropped, warnings } = context();
    const sent: number[][] = [];
    const helper = createExporterHelper<number[]>(ctx, {
      signal: 'logs',
      settings: { ...EXPORTER_HELPER_DEFAULTS, queue: { enabled: false, queueSize: 10, batchMaxSize: 4 } },
      count: (b) => b.length,
      split: splitArray,
      send: (b) => {
        if (b[0] === 4) return Promise.resolve({ ok: false, retryable: false, reason: 'HTTP 400 bad point' });
        sent.push(b);
        return Promise.resolve({ ok: true });
      },
    });
    await assert.rejects(helper.export(numbered(10)), /export failed/);
    assert.deepEqual(sent, [
      [0, 1, 2, 3],
      [8, 9],
    ]);
    assert.equal(dropped.send_failed, 4);
    assert.equal(helper.stats.sentItems, 6);
    const w = warnings.find((f) => f.key === 'send_failed:logs');
    assert.ok(w);
    assert.equal(w.items, 4);
    assert.equal(w.requests, 3);
    await helper.shutdown();
  });

  test('a backend that stays down: the rest of the batch is dropped with the failed request, counted', async () => {
    const { ctx, dropped } = context();
    let attempts = 0;
    const helper = createExporterHelper<number[]>(ctx, {
      signal: 'metrics',
      settings: { ...EXPORTER_HELPER_DEFAULTS, retry: noRetry, queue: { enabled: false, queueSize: 10, batchMaxSize: 4 } },
      count: (b) => b.length,
      split: splitArray,
      send: (b) => {
        attempts++;
        return Promise.resolve(b[0] === 0 ? { ok: true } : { ok: false, retryable: true, reason: 'ECONNREFUSED' });
      },
    });
    await assert.rejects(helper.export(numbered(10)));
    assert.equal(attempts, 2, 'the third request is not tried against a backend that just failed');
    assert.equal(dropped.send_failed, 6);
    assert.deepEqual(helper.stats.droppedBatches, { send_failed: 1 });
    await helper.shutdown();
  });

  test('sending_queue.batch.max_size from the config; 0 sends a batch whole; unset, the default applies', async () => {
    assert.equal(resolveExporterHelperSettings({ sending_queue: { batch: { max_size: 500 } } }).queue.batchMaxSize, 500);
    assert.equal(resolveExporterHelperSettings({}).queue.batchMaxSize, undefined);
    const sizes = async (batchMaxSize: number | undefined): Promise<number[]> => {
      const { ctx } = context();
      const sent: number[] = [];
      const helper = createExporterHelper<number[]>(ctx, {
        signal: 'metrics',
        settings: { ...EXPORTER_HELPER_DEFAULTS, queue: { enabled: false, queueSize: 10, ...(batchMaxSize !== undefined ? { batchMaxSize } : {}) } },
        count: (b) => b.length,
        split: splitArray,
        send: (b) => {
          sent.push(b.length);
          return Promise.resolve({ ok: true });
        },
      });
      await helper.export(numbered(2 * DEFAULT_BATCH_MAX_SIZE + 1));
      await helper.shutdown();
      return sent;
    };
    assert.deepEqual(await sizes(undefined), [DEFAULT_BATCH_MAX_SIZE, DEFAULT_BATCH_MAX_SIZE, 1]);
    assert.deepEqual(await sizes(0), [2 * DEFAULT_BATCH_MAX_SIZE + 1]);
  });
});
