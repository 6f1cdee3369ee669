/**
 * struct taskstats, every version 1..17, with layouts taken from the kernel's own headers, not
 * from parser.ts: the field declarations (test/support/taskstats-layout.ts) are transcribed from include/(uapi/)linux/
 * taskstats.h of the releases cited, and their offsets are computed here by the C layout rules
 * (natural alignment, `__attribute__((aligned(8)))` where the header has it). A C program
 * compiled against this machine's <linux/taskstats.h> gives offsetof() truth for the version
 * that header carries (Debian's linux-libc-dev), checked against the same computation.
 *
 * Each version's buffer holds a distinct value in every field; the parser must return exactly
 * those values for the fields that version has, and "absent" for the rest.
 *
 * Sources (x86-64 layout):
 *  v1  Linux 2.6.18: `__u16 version; __u16 padding[3];` then 8 delay u64s, "version 1 ends
 *      here" (the 2.6.18 header as kept in the CentOS 5 kernel, spacex/kernel-centos5).
 *  v2  Linux 2.6.19: ac_exitcode/ac_flag/ac_nice in the padding, the basic (ac_comm..ac_majflt)
 *      and extended (coremem..write_syscalls) accounting fields (Jay Lan's CSA patches, LKML
 *      Aug-Sep 2006, TS_COMM_LEN 32).
 *  v3  Linux 2.6.20: read_bytes, write_bytes, cancelled_write_bytes (akpm, "io-accounting: via
 *      taskstats", LKML Dec 2006).
 *  v4  the aligned(8) attributes on cpu_count, ac_sched, ac_uid, ac_etime (kernel commit
 *      7e40f2ab0a7e "Taskstats fix the structure members alignment issue", Linux 2.6.20; the
 *      layout RHEL 5 backports as `struct taskstats_v4`). v2 and v3 had none: that commit's
 *      message lists the x86-64 offsets before it (ac_uid 116, ac_etime 136, read_bytes 240,
 *      cancelled_write_bytes 256), which is what the layout rules give without the attributes;
 *      v2's fields are v3's less the three akpm appended.
 *  v5  nvcsw, nivcsw (torvalds/linux include/linux/taskstats.h, TASKSTATS_VERSION 5).
 *  v6  ac_utimescaled, ac_stimescaled, cpu_scaled_run_real_total; v7 freepages_count/_delay_total
 *      (patch "per-task-delay-accounting: update taskstats for memory reclaim delay", 2008:
 *      `-#define TASKSTATS_VERSION 6 / +7`, added after cpu_scaled_run_real_total).
 *  v8  no new field (TASKSTATS_TYPE_NULL padding attribute; torvalds/linux uapi header, v8).
 *  v9 thrashing_count/_delay_total; v10 ac_btime64; v11 compact_count/_delay_total; v12
 *      ac_tgid, ac_tgetime, ac_exe_dev, ac_exe_inode; v13 wpcopy_count/_delay_total (Linux 6.1:
 *      Debian 12's linux-libc-dev 6.1 header, checked by offsetof below); v14 irq_count/
 *      _delay_total (the header's own "vN:" comments).
 *  v15 (commits 658eb5ab916d, f65c64f311ee, b016d0873777, 2025): *_delay_max/_min inserted after
 *      each *_delay_total; v16 ("taskstats: fix struct taskstats breaks backward compatibility
 *      since version 15", May 2025): the same 16 fields moved to the end. This 6.18 kernel
 *      sends v16.
 *  v17 (patch "delay max timestamp record", 2025, after 6.18): 8 struct timespec64
 *      {__s64 tv_sec; long tv_nsec} after irq_delay_min (the parser knows the size, keeps none).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fillRecord, KNOWN_TASKSTATS_VERSION } from './parser.js';
import { newTaskRecord, type TaskRecord } from './record.js';
import { needs } from '../../test/support/caps.js';
import { layout } from '../../test/support/taskstats-layout.js';

/** Kernel field -> TaskRecord property, for the fields the record keeps. */
const RECORD: Record<string, keyof TaskRecord> = {
  version: 'version',
  ac_exitcode: 'exitStatus',
  ac_flag: 'flags',
  ac_nice: 'nice',
  cpu_count: 'cpuDelayCount',
  cpu_delay_total: 'cpuDelayTotalNs',
  blkio_count: 'blkioDelayCount',
  blkio_delay_total: 'blkioDelayTotalNs',
  swapin_count: 'swapinDelayCount',
  swapin_delay_total: 'swapinDelayTotalNs',
  cpu_run_real_total: 'cpuRunRealNs',
  cpu_run_virtual_total: 'cpuRunVirtualNs',
  ac_comm: 'comm',
  ac_sched: 'sched',
  ac_uid: 'uid',
  ac_gid: 'gid',
  ac_pid: 'pid',
  ac_ppid: 'ppid',
  ac_etime: 'elapsedUs',
  ac_utime: 'userUs',
  ac_stime: 'systemUs',
  ac_minflt: 'minorFaults',
  ac_majflt: 'majorFaults',
  coremem: 'coreMemMbUs',
  virtmem: 'virtMemMbUs',
  hiwater_rss: 'hiwaterRssKb',
  hiwater_vm: 'hiwaterVmKb',
  read_char: 'readCharBytes',
  write_char: 'writeCharBytes',
  read_syscalls: 'readSyscalls',
  write_syscalls: 'writeSyscalls',
  read_bytes: 'readBytes',
  write_bytes: 'writeBytes',
  cancelled_write_bytes: 'cancelledWriteBytes',
  nvcsw: 'voluntaryCtxSwitches',
  nivcsw: 'involuntaryCtxSwitches',
  ac_utimescaled: 'userScaledUs',
  ac_stimescaled: 'systemScaledUs',
  freepages_count: 'freepagesDelayCount',
  freepages_delay_total: 'freepagesDelayTotalNs',
  thrashing_count: 'thrashingDelayCount',
  thrashing_delay_total: 'thrashingDelayTotalNs',
  compact_count: 'compactDelayCount',
  compact_delay_total: 'compactDelayTotalNs',
  ac_tgid: 'tgid',
  ac_tgetime: 'groupElapsedUs',
  wpcopy_count: 'wpcopyDelayCount',
  wpcopy_delay_total: 'wpcopyDelayTotalNs',
  irq_count: 'irqDelayCount',
  irq_delay_total: 'irqDelayTotalNs',
};
for (const k of ['cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq']) {
  RECORD[`${k}_delay_max`] = `${k}DelayMaxNs` as keyof TaskRecord;
  RECORD[`${k}_delay_min`] = `${k}DelayMinNs` as keyof TaskRecord;
}

/**
 * A struct of `version` where every field holds its own value (u64s above 2^32, so a read of
 * the wrong half or the wrong slot shows), and the record fillRecord must produce from it.
 */
function build(version: number): { buf: Buffer; want: TaskRecord } {
  const { fields, size } = layout(version);
  const buf = Buffer.alloc(size);
  const want = newTaskRecord();
  const values: Record<string, number | string> = {};
  let n = 0;
  for (const f of fields) {
    n++;
    let v: number | string;
    switch (f.type) {
      case 'u8':
        v = 0x40 + n;
        buf[f.offset] = v;
        break;
      case 'u16':
        v = version;
        buf.writeUInt16LE(v, f.offset);
        break;
      case 'u32':
        v = f.name === 'ac_exitcode' ? 7 << 8 : 0x10000 * n + n; // exit(7)
        buf.writeUInt32LE(v, f.offset);
        break;
      case 'u64':
        v = 2 ** 33 * n + 1000 * n + 1; // below 2^53
        buf.writeBigUInt64LE(BigInt(v), f.offset);
        break;
      case 'comm':
        v = `v${version}-comm-15chars`.slice(0, 15);
        buf.write(v, f.offset, 'latin1');
        break;
      default:
        v = 0; // padding, ac_pad, timespecs: nothing the record keeps
        if (f.type === 'ts64') buf.writeBigInt64LE(BigInt(1_700_000_000 + n), f.offset);
    }
    values[f.name] = v;
    const prop = RECORD[f.name];
    if (prop !== undefined) (want as unknown as Record<string, unknown>)[prop] = v;
  }
  // Derived fields, by their definitions (wait status; btime64 when there, else the u32 btime).
  want.exitCode = values.ac_exitcode !== undefined ? 7 : 0;
  want.startTimeSec = (values.ac_btime64 ?? values.ac_btime ?? 0) as number;
  want.kind = 'live';
  return { buf, want };
}

describe('struct taskstats v1..v17: layouts from the kernel headers', () => {
  test('sizes: v1 72 bytes, v3 264 (no aligned(8) yet), v13 416 (Linux 6.1), v16 560 (this kernel), v17 688', () => {
    const offset = (v: number, name: string) => layout(v).fields.find((f) => f.name === name)!.offset;
    assert.equal(layout(1).size, 72);
    assert.equal(offset(1, 'cpu_count'), 8);
    // The x86-64 offsets commit 7e40f2ab0a7e lists for the v3 struct before it added the attributes.
    assert.deepEqual(
      ['ac_sched', 'ac_uid', 'ac_btime', 'ac_etime', 'write_syscalls', 'read_bytes', 'cancelled_write_bytes'].map((n) => offset(3, n)),
      [112, 116, 132, 136, 232, 240, 256],
    );
    assert.equal(layout(2).size, 240);
    assert.equal(layout(3).size, 264);
    assert.equal(offset(4, 'ac_uid'), 120);
    assert.equal(layout(4).size, 272);
    assert.equal(layout(13).size, 416);
    assert.equal(layout(15).size, 560);
    assert.equal(layout(16).size, 560);
    assert.equal(layout(17).size, 688);
    assert.equal(KNOWN_TASKSTATS_VERSION, 17, 'a new version needs its header transcribed here');
  });

  for (let version = 1; version <= 17; version++) {
    test(`v${version}: every field the version has, exactly; nothing it lacks`, () => {
      const { buf, want } = build(version);
      // at a 4-mod-8 offset, as in a datagram
      const payload = Buffer.alloc(buf.length + 12);
      buf.copy(payload, 4);
      const got = newTaskRecord();
      Object.assign(got, { readBytes: 999, cpuDelayMaxNs: 5, comm: 'stale' }); // must be reset
      fillRecord(payload, 4, buf.length, got);
      assert.deepEqual(got, want);
    });
  }

  test('a version newer than any known reads its known prefix (v17 fields of a longer v18 struct)', () => {
    const { buf, want } = build(17);
    const longer = Buffer.concat([buf, Buffer.alloc(64, 0xff)]);
    longer.writeUInt16LE(18, 0);
    const got = newTaskRecord();
    fillRecord(longer, 0, longer.length, got);
    assert.deepEqual(got, { ...want, version: 18 });
  });

  test("offsetof() from this machine's <linux/taskstats.h> equals the computed layout", { skip: needs('cc') }, (t) => {
    const header = '/usr/include/linux/taskstats.h';
    const dir = mkdtempSync(join(tmpdir(), 'ts-offsetof-'));
    try {
      const names = layout(17)
        .fields.filter((f) => !['padding', 'ac_pad'].includes(f.name))
        .map((f) => f.name);
      // The header's TASKSTATS_VERSION decides which fields to ask offsetof() for.
      const probe = join(dir, 'v.c');
      writeFileSync(probe, '#include <linux/taskstats.h>\n#include <stdio.h>\nint main(void){printf("%d\\n", TASKSTATS_VERSION);return 0;}\n');
      const vbin = join(dir, 'v');
      const cv = spawnSync('cc', ['-o', vbin, probe], { encoding: 'utf8' });
      if (cv.status !== 0) {
        t.skip(`no usable ${header} (${cv.stderr.trim().split('\n')[0]})`);
        return;
      }
      const hv = Number(spawnSync(vbin, { encoding: 'utf8' }).stdout.trim());
      const mine = layout(hv);
      const have = names.filter((n) => mine.fields.some((f) => f.name === n));
      const src = join(dir, 'o.c');
      writeFileSync(
        src,
        '#include <linux/taskstats.h>\n#include <stddef.h>\n#include <stdio.h>\nint main(void){\n' +
          have.map((n) => `printf("${n} %zu\\n", offsetof(struct taskstats, ${n}));`).join('\n') +
          '\nprintf("sizeof %zu\\n", sizeof(struct taskstats));\nreturn 0;}\n',
      );
      const bin = join(dir, 'o');
      const c = spawnSync('cc', ['-o', bin, src], { encoding: 'utf8' });
      assert.equal(c.status, 0, c.stderr);
      const out = spawnSync(bin, { encoding: 'utf8' }).stdout;
      const truth = Object.fromEntries(
        out
          .trim()
          .split('\n')
          .map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]),
      );
      const computed: Record<string, number> = { sizeof: mine.size };
      for (const f of mine.fields) if (have.includes(f.name)) computed[f.name] = f.offset;
      t.diagnostic(`${header}: TASKSTATS_VERSION ${hv}, ${have.length} fields, sizeof ${truth.sizeof}`);
      assert.deepEqual(computed, truth);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
