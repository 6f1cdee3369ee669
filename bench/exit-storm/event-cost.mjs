// Where the CPU of an exported exit event goes, without the kernel or the network: the receiver's
// part (accounting.exit + the record, ExitEvents) and the otlp exporter's part (the record in the
// serializer's shape + @opentelemetry/otlp-transformer's protobuf serializer), per record, on
// records shaped like a fork loop's. Run after `npm run build`: node bench/exit-storm/event-cost.mjs
import { ProcessAccounting } from '../../dist/plugins/taskstats/accounting.js';
import { ExitEvents } from '../../dist/plugins/taskstats/exit-events.js';
import { ExitBudget } from '../../dist/plugins/taskstats/volume.js';
import { newTaskRecord } from '../../dist/plugins/taskstats/record.js';
import { toReadableLogRecords } from '../../dist/plugins/otlp/exporter.js';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { log, median, result } from '../lib/report.mjs';
import { rerunUnderShippedFlags } from '../lib/shipped-flags.mjs';

rerunUnderShippedFlags();

const telemetry = { dropped() {}, counter: () => ({ add() {} }), gauge() {} };
const logger = { debug() {}, info() {}, warn() {}, error() {} };
const resource = resourceFromAttributes({ 'service.name': 'taskstats-agent', 'host.name': 'bench' });
const N = 20_000;
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function once(budget) {
  const accounting = new ProcessAccounting({ perProcess: false, logger, telemetry });
  const events = new ExitEvents({ threads: false, budget });
  const rec = Object.assign(newTaskRecord(), {
    kind: 'exit',
    version: 16,
    flags: 0x20,
    comm: 'tsload',
    ppid: 100,
    startTimeSec: 1.7e9,
    elapsedUs: 1200,
    cpuRunVirtualNs: 300_000,
    systemUs: 4000,
    hiwaterRssKb: 900,
    hiwaterVmKb: 2400,
    minorFaults: 80,
    cpuDelayCount: 2,
    cpuDelayTotalNs: 5000,
  });
  const info = { cgroup: '/ts-bench-storm-1234-1', exePath: '', cmdline: '' };
  const samples = [];
  const now = Date.now();
  const t0 = cpuUs();
  for (let i = 0; i < N; i++) {
    rec.pid = rec.tgid = 1000 + i;
    accounting.exit(rec, null, info, now + (i >> 4), samples);
    events.exit(rec, info, accounting.lastEnd, now + (i >> 4));
    samples.length = 0;
  }
  const records = events.take() ?? [];
  const built = (cpuUs() - t0) / N;
  let bytes = 0;
  const t1 = cpuUs();
  for (let i = 0; i < records.length; i += 512)
    bytes += ProtobufLogsSerializer.serializeRequest(toReadableLogRecords(records.slice(i, i + 512), resource)).length;
  const serialized = records.length > 0 ? (cpuUs() - t1) / records.length : 0;
  return { built, serialized, bytes: records.length > 0 ? bytes / records.length : 0 };
}

const all = [];
const budgeted = [];
for (let r = 0; r < 5; r++) {
  all.push(once(new ExitBudget({ failuresPerSecond: Infinity, successesPerSecond: Infinity, maxWorkloads: 1000 })));
  budgeted.push(once(new ExitBudget({ failuresPerSecond: 100, successesPerSecond: 10, maxWorkloads: 1000 })));
}
const m = (xs, k) => median(xs.map((x) => x[k]));
log(
  `every exit an event: receiver ${m(all, 'built').toFixed(2)} us per exit (accounting + record), exporter ${m(all, 'serialized').toFixed(2)} us per record (shape + protobuf), ${m(all, 'bytes').toFixed(0)} bytes per record`,
);
log(`default budgets: receiver ${m(budgeted, 'built').toFixed(2)} us per exit`);
result({
  name: 'exit event: otlp protobuf serialization / building the record',
  value: m(all, 'serialized') / m(all, 'built'),
  unit: 'x',
  detail: `${m(all, 'serialized').toFixed(2)} us vs ${m(all, 'built').toFixed(2)} us per record (medians of 5 x ${N}); with the default budgets the receiver's part is ${m(budgeted, 'built').toFixed(2)} us per exit`,
});
