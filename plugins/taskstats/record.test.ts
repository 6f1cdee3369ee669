/**
 * The field table (record.ts) and what is made from it: every raw counter is supplied by exactly
 * the field accounting always read it from, and `--json` prints what it printed before the
 * table existed (field by field, in the same order).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FIELD_NAMES, NUMERIC_FIELDS, copyTaskRecord, newTaskRecord, recordToJson, type TaskRecord } from './record.js';
import { COUNTER_FIELDS } from './accounting.js';
import { RAW, RAW_COUNTERS } from './schema.js';

describe('the TaskRecord field table', () => {
  test('a fresh record has every field of the table, in its order; the numbers are the numeric fields', () => {
    const r = newTaskRecord();
    assert.deepEqual(Object.keys(r), FIELD_NAMES);
    assert.deepEqual(
      NUMERIC_FIELDS,
      FIELD_NAMES.filter((k) => typeof r[k] === 'number'),
    );
    assert.equal(r.exitCode, -1);
    assert.equal(r.irqDelayMaxNs, -1);
    const copy = copyTaskRecord(r);
    assert.notEqual(copy, r);
    assert.deepEqual(copy, r);
  });

  test('each raw counter comes from one field, the one accounting read it from before the table', () => {
    const byIndex = new Map<number, string>();
    for (const [field, i] of COUNTER_FIELDS) {
      assert.equal(byIndex.has(i), false, `RAW index ${i} supplied twice`);
      byIndex.set(i, field);
    }
    assert.equal(byIndex.size, RAW_COUNTERS);
    const expected: Record<number, string> = {
      [RAW.USER]: 'userUs',
      [RAW.SYSTEM]: 'systemUs',
      [RAW.DISK_READ]: 'readBytes',
      [RAW.DISK_WRITE]: 'writeBytes',
      [RAW.VOLUNTARY]: 'voluntaryCtxSwitches',
      [RAW.INVOLUNTARY]: 'involuntaryCtxSwitches',
      [RAW.MINOR]: 'minorFaults',
      [RAW.MAJOR]: 'majorFaults',
      [RAW.CHAR_READ]: 'readCharBytes',
      [RAW.CHAR_WRITE]: 'writeCharBytes',
      [RAW.SYSCALL_READ]: 'readSyscalls',
      [RAW.SYSCALL_WRITE]: 'writeSyscalls',
      [RAW.CANCELLED_WRITE]: 'cancelledWriteBytes',
      [RAW.RSS_TIME]: 'coreMemMbUs',
      [RAW.VIRTUAL_TIME]: 'virtMemMbUs',
      [RAW.RUN_TIME]: 'cpuRunVirtualNs',
    };
    ['cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq'].forEach((k, i) => {
      expected[RAW.DELAY_TIME + i] = `${k}DelayTotalNs`;
      expected[RAW.DELAY_COUNT + i] = `${k}DelayCount`;
    });
    assert.deepEqual(Object.fromEntries(byIndex), Object.fromEntries(Object.entries(expected).map(([i, f]) => [Number(i), f])));
  });

  test('--json prints the fields it printed before the table, in the same order; unknown max/min delays are left out', () => {
    const r = newTaskRecord() as unknown as Record<string, unknown>;
    let i = 1;
    for (const k of Object.keys(r)) if (typeof r[k] === 'number') r[k] = i++;
    Object.assign(r, { kind: 'exit', aggregate: 'tgid', comm: 'work', coreDumped: true });
    r.irqDelayMaxNs = -1;
    r.irqDelayMinNs = -1;
    // The output of the written-out recordToJson this table replaced, for this record (its
    // `cgroup`, printed when set, never was: the CLI reads records without process metadata).
    const before =
      '{"kind":"exit","aggregate":"tgid","version":1,"pid":2,"tgid":3,"ppid":4,"comm":"work","uid":5,"gid":6,"flags":7,"nice":8,"start_time":10,' +
      '"exit_status":11,"exit_code":12,"exit_signal":13,"core_dumped":true,"elapsed_us":14,"utime_us":16,"stime_us":17,"cpu_run_real_ns":20,' +
      '"cpu_run_virtual_ns":21,"minflt":22,"majflt":23,"hiwater_rss_kb":24,"hiwater_vm_kb":25,"coremem_mb_us":26,"virtmem_mb_us":27,"read_char":28,' +
      '"write_char":29,"read_syscalls":30,"write_syscalls":31,"read_bytes":32,"write_bytes":33,"cancelled_write_bytes":34,"nvcsw":35,"nivcsw":36,' +
      '"delays":{"cpu":{"count":37,"total_ns":38,"max_ns":39,"min_ns":40},"blkio":{"count":41,"total_ns":42,"max_ns":43,"min_ns":44},' +
      '"swapin":{"count":45,"total_ns":46,"max_ns":47,"min_ns":48},"freepages":{"count":49,"total_ns":50,"max_ns":51,"min_ns":52},' +
      '"thrashing":{"count":53,"total_ns":54,"max_ns":55,"min_ns":56},"compact":{"count":57,"total_ns":58,"max_ns":59,"min_ns":60},' +
      '"wpcopy":{"count":61,"total_ns":62,"max_ns":63,"min_ns":64},"irq":{"count":65,"total_ns":66}}}';
    assert.equal(JSON.stringify(recordToJson(r as unknown as TaskRecord)), before);
  });
});
