/**
 * struct taskstats as the kernel's headers declare it, version by version, for tests that build
 * payloads: the field declarations are transcribed from include/(uapi/)linux/taskstats.h (sources
 * per version in plugins/taskstats/struct-versions.test.ts, which also checks them against
 * offsetof() of this machine's header), and offsets follow from the C layout rules here, never
 * from the parser's table.
 */
export type CType = 'u8' | 'u16' | 'u32' | 'u64' | 'comm' | 'pad3' | 'pad6' | 'ts64';
interface Decl {
  name: string;
  type: CType;
  /** `__attribute__((aligned(8)))` in the header (from v4 on: v2 and v3 had none) */
  aligned8?: boolean;
  /** the version that appended it */
  since: number;
}
const SIZE: Record<CType, number> = { u8: 1, u16: 2, u32: 4, u64: 8, comm: 32, pad3: 3, pad6: 6, ts64: 16 };
const ALIGN: Record<CType, number> = { u8: 1, u16: 2, u32: 4, u64: 8, comm: 1, pad3: 1, pad6: 2, ts64: 8 };

const u64s = (since: number, ...names: string[]): Decl[] => names.map((name) => ({ name, type: 'u64', since }));
const maxMin = (since: number, ...kinds: string[]): Decl[] => kinds.flatMap((k) => u64s(since, `${k}_delay_max`, `${k}_delay_min`));

/** v1 (2.6.18). */
const V1: Decl[] = [
  { name: 'version', type: 'u16', since: 1 },
  { name: 'padding', type: 'pad6', since: 1 },
  ...u64s(
    1,
    'cpu_count',
    'cpu_delay_total',
    'blkio_count',
    'blkio_delay_total',
    'swapin_count',
    'swapin_delay_total',
    'cpu_run_real_total',
    'cpu_run_virtual_total',
  ),
];

/** v2 .. v14 in declaration order (append-only); `tail` is what v16/v17 add at the end. */
function declarations(v15: boolean): Decl[] {
  const mid = (kind: string): Decl[] => (v15 ? maxMin(15, kind) : []);
  return [
    { name: 'version', type: 'u16', since: 1 },
    { name: 'ac_exitcode', type: 'u32', since: 2 },
    { name: 'ac_flag', type: 'u8', since: 2 },
    { name: 'ac_nice', type: 'u8', since: 2 },
    { name: 'cpu_count', type: 'u64', aligned8: true, since: 1 },
    ...u64s(1, 'cpu_delay_total'),
    ...mid('cpu'),
    ...u64s(1, 'blkio_count', 'blkio_delay_total'),
    ...mid('blkio'),
    ...u64s(1, 'swapin_count', 'swapin_delay_total'),
    ...mid('swapin'),
    ...u64s(1, 'cpu_run_real_total', 'cpu_run_virtual_total'),
    { name: 'ac_comm', type: 'comm', since: 2 },
    { name: 'ac_sched', type: 'u8', aligned8: true, since: 2 },
    { name: 'ac_pad', type: 'pad3', since: 2 },
    { name: 'ac_uid', type: 'u32', aligned8: true, since: 2 },
    { name: 'ac_gid', type: 'u32', since: 2 },
    { name: 'ac_pid', type: 'u32', since: 2 },
    { name: 'ac_ppid', type: 'u32', since: 2 },
    { name: 'ac_btime', type: 'u32', since: 2 },
    { name: 'ac_etime', type: 'u64', aligned8: true, since: 2 },
    ...u64s(2, 'ac_utime', 'ac_stime', 'ac_minflt', 'ac_majflt'),
    ...u64s(2, 'coremem', 'virtmem', 'hiwater_rss', 'hiwater_vm', 'read_char', 'write_char', 'read_syscalls', 'write_syscalls'),
    ...u64s(3, 'read_bytes', 'write_bytes', 'cancelled_write_bytes'),
    ...u64s(5, 'nvcsw', 'nivcsw'),
    ...u64s(6, 'ac_utimescaled', 'ac_stimescaled', 'cpu_scaled_run_real_total'),
    ...u64s(7, 'freepages_count', 'freepages_delay_total'),
    ...mid('freepages'),
    ...u64s(9, 'thrashing_count', 'thrashing_delay_total'),
    ...mid('thrashing'),
    ...u64s(10, 'ac_btime64'),
    ...u64s(11, 'compact_count', 'compact_delay_total'),
    ...mid('compact'),
    { name: 'ac_tgid', type: 'u32', since: 12 },
    ...u64s(12, 'ac_tgetime', 'ac_exe_dev', 'ac_exe_inode'),
    ...u64s(13, 'wpcopy_count', 'wpcopy_delay_total'),
    ...mid('wpcopy'),
    ...u64s(14, 'irq_count', 'irq_delay_total'),
    ...mid('irq'),
    ...(v15 ? [] : maxMin(16, 'cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq')),
    ...(v15
      ? []
      : ['cpu', 'blkio', 'swapin', 'freepages', 'thrashing', 'compact', 'wpcopy', 'irq'].map((k): Decl => ({
          name: `${k}_delay_max_ts`,
          type: 'ts64',
          since: 17,
        }))),
  ];
}

export interface Field {
  name: string;
  type: CType;
  offset: number;
}
/** The C layout of the fields of `version` (x86-64: u64 aligned to 8), and the struct's size. */
export function layout(version: number): { fields: Field[]; size: number } {
  const decls = version === 1 ? V1 : declarations(version === 15).filter((d) => d.since <= version);
  let off = 0;
  let maxAlign = 1;
  const fields: Field[] = [];
  for (const d of decls) {
    const a = Math.max(ALIGN[d.type], d.aligned8 === true && version >= 4 ? 8 : 1);
    maxAlign = Math.max(maxAlign, a);
    off = Math.ceil(off / a) * a;
    fields.push({ name: d.name, type: d.type, offset: off });
    off += SIZE[d.type];
  }
  return { fields, size: Math.ceil(off / maxAlign) * maxAlign };
}

/**
 * A struct of `version` with the named fields set (kernel names: `ac_exitcode`, `cpu_count`,
 * `ac_comm` ...) and every other field 0. Throws on a name the version does not have.
 */
export function struct(version: number, values: Record<string, number | string>): Buffer {
  const { fields, size } = layout(version);
  const buf = Buffer.alloc(size);
  buf.writeUInt16LE(version, 0);
  for (const [name, v] of Object.entries(values)) {
    const f = fields.find((x) => x.name === name);
    if (f === undefined) throw new Error(`struct taskstats v${version} has no field ${name}`);
    if (f.type === 'comm') buf.write(String(v), f.offset, 32, 'latin1');
    else if (f.type === 'u8') buf[f.offset] = Number(v);
    else if (f.type === 'u16') buf.writeUInt16LE(Number(v), f.offset);
    else if (f.type === 'u32') buf.writeUInt32LE(Number(v), f.offset);
    else if (f.type === 'u64') buf.writeBigUInt64LE(BigInt(v), f.offset);
    else throw new Error(`${name}: not a settable field`);
  }
  return buf;
}
