// The receiver under test: the full taskstats receiver (exit listener, process metadata with its
// proc connector, per-process accounting) built by its factory, consuming into a counting sink.
// usage: node listener.mjs PPID...   prints "ready" on stderr; on SIGTERM prints one JSON line:
// {"exits":N (exit records whose parent is a PPID),"records":M,"samples":S,"kernel_drops":K,"cpu_us":U}
import { TaskstatsReceiver } from '../../dist/plugins/taskstats/receiver.js';
import { defaultReceiverParts } from '../../dist/plugins/taskstats/factory.js';
import { defaultTaskstatsConfig } from '../../dist/plugins/taskstats/config.js';

const ppids = new Set(process.argv.slice(2).map(Number));
let exits = 0;
let samples = 0;
let batches = 0;
const warnings = [];
const logger = {
  debug() {},
  info() {},
  warn(msg) {
    warnings.push(msg);
  },
  error(msg) {
    warnings.push(msg);
  },
};
const telemetry = {
  dropped() {},
  counter() {
    return { add() {} };
  },
  gauge() {},
};
// Count the exits the accounting part sees (the receiver's own path up to the samples).
const parts = {
  createMetadata: (o) => defaultReceiverParts.createMetadata(o),
  createAccounting: (o) => {
    const a = defaultReceiverParts.createAccounting(o);
    const exit = a.exit.bind(a);
    a.exit = (thread, ...rest) => {
      if (ppids.has(thread.ppid)) exits++;
      exit(thread, ...rest);
    };
    return a;
  },
};
const config = { ...defaultTaskstatsConfig(), live: false, collection_interval: 10_000, delay_accounting: 'keep' };
const receiver = new TaskstatsReceiver(
  {
    id: 'taskstats',
    logger,
    telemetry,
    next: {
      consume(b) {
        samples += b.length;
        batches++;
      },
      collectionDone() {},
    },
  },
  config,
  parts,
);
await receiver.start();
const cpu0 = process.cpuUsage();
process.stderr.write('ready\n');
process.once('SIGTERM', async () => {
  const c = process.cpuUsage(cpu0);
  const st = receiver.exitStats;
  await receiver.shutdown();
  process.stdout.write(
    JSON.stringify({
      exits,
      datagrams: st?.datagrams ?? 0,
      records: st?.records ?? 0,
      samples,
      batches,
      kernel_drops: st?.kernelDrops ?? 0,
      cpu_us: c.user + c.system,
      warnings: warnings.slice(0, 5),
    }) + '\n',
  );
  process.exit(0);
});
