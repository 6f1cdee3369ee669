/**
 * Parser: datagram structure (status codes, several messages, PID + TGID) and fuzzing with
 * random and mutated datagrams (mutations of datagrams captured from the real kernel: GET
 * replies and exit events of a single- and a multi-threaded process).
 */
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import {
  TaskstatsParser,
  PARSED_PID,
  PARSED_TGID,
  PARSE_IGNORED,
  PARSE_TRUNCATED,
  PARSE_NETLINK_ERROR,
  PARSE_MALFORMED,
  fillRecord,
  activityOf,
} from './parser.js';
import { newTaskRecord, type TaskRecord } from './record.js';
import { TaskstatsSocket } from './libnl.js';
import { possibleCpus } from './config.js';
import { needs } from '../../test/support/caps.js';
import { struct } from '../../test/support/taskstats-layout.js';

const FAMILY = 31;

/** A datagram as the kernel builds it: nlmsghdr, genlmsghdr (cmd NEW), AGGR_* nests. */
function datagram(records: { aggr: 'pid' | 'tgid'; id: number; stats: Buffer }[], family = FAMILY, seq = 7): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    const statsLen = 4 + r.stats.length;
    const statsPadded = (statsLen + 3) & ~3;
    const nest = Buffer.alloc(4 + 8 + statsPadded);
    nest.writeUInt16LE(4 + 8 + statsLen, 0);
    nest.writeUInt16LE(r.aggr === 'pid' ? 4 : 5, 2);
    nest.writeUInt16LE(8, 4);
    nest.writeUInt16LE(r.aggr === 'pid' ? 1 : 2, 6);
    nest.writeUInt32LE(r.id, 8);
    nest.writeUInt16LE(statsLen, 12);
    nest.writeUInt16LE(3, 14);
    r.stats.copy(nest, 16);
    parts.push(nest);
  }
  const body = Buffer.concat(parts);
  const hdr = Buffer.alloc(20);
  hdr.writeUInt32LE(20 + body.length, 0);
  hdr.writeUInt16LE(family, 4);
  hdr.writeUInt32LE(seq, 8);
  hdr[16] = 2; // TASKSTATS_CMD_NEW
  hdr[17] = 1;
  return Buffer.concat([hdr, body]);
}

/** A v16 struct of a thread that exited with code 3, fields by their kernel names (the layout from the kernel's header). */
function stats(over: Record<string, number | string> = {}): Buffer {
  return struct(16, {
    ac_exitcode: 3 << 8,
    ac_flag: 0x21, // AFORK | AGROUP
    cpu_count: 1016,
    ac_comm: 'worker',
    ac_uid: 1001,
    ac_gid: 1002,
    ac_pid: 4242,
    ac_ppid: 1,
    ac_btime: 1_700_000_000,
    ac_btime64: 1_700_000_001,
    ac_tgid: 4242,
    ...over,
  });
}
/** TGID records carry no identity (seen on 6.18). */
const NO_IDENTITY = { ac_comm: '', ac_uid: 0, ac_gid: 0, ac_pid: 0, ac_ppid: 0, ac_btime: 0, ac_btime64: 0, ac_tgid: 0 };

// Every struct version's layout, from the kernel headers: struct-versions.test.ts.
describe('parser: datagrams', () => {
  const p = new TaskstatsParser(FAMILY);

  test('exit status: signal, core dump, and a PID + TGID datagram', () => {
    const t = stats({ ac_exitcode: 0x80 | 11 }); // SIGSEGV, core dumped
    const g = stats(NO_IDENTITY);
    const pidRec = newTaskRecord();
    const tgidRec = newTaskRecord();
    const st = p.parseMessage(
      datagram([
        { aggr: 'pid', id: 4242, stats: t },
        { aggr: 'tgid', id: 4000, stats: g },
      ]),
      0,
      5000,
      'exit',
      pidRec,
      tgidRec,
    );
    assert.equal(st, PARSED_PID | PARSED_TGID);
    assert.equal(pidRec.exitSignal, 11);
    assert.equal(pidRec.exitCode, -1);
    assert.equal(pidRec.coreDumped, true);
    assert.equal(tgidRec.aggregate, 'tgid');
    assert.equal(tgidRec.tgid, 4000);
    assert.equal(tgidRec.pid, 4000);
    assert.equal(tgidRec.comm, '');
  });

  test('NLMSG_ERROR (ESRCH), ACK, other families, truncation', () => {
    const err = Buffer.alloc(36);
    err.writeUInt32LE(36, 0);
    err.writeUInt16LE(2, 4);
    err.writeInt32LE(-3, 16);
    const r = newTaskRecord();
    assert.equal(p.parseMessage(err, 0, err.length, 'live', r, r), PARSE_NETLINK_ERROR);
    assert.equal(p.errno, 3);
    err.writeInt32LE(0, 16);
    assert.equal(p.parseMessage(err, 0, err.length, 'live', r, r), PARSE_IGNORED);
    const other = datagram([{ aggr: 'pid', id: 1, stats: stats() }], FAMILY + 1);
    assert.equal(p.parseMessage(other, 0, other.length, 'live', r, r), PARSE_IGNORED);
    const d = datagram([{ aggr: 'pid', id: 1, stats: stats() }]);
    assert.equal(p.parseMessage(d, 0, 10, 'live', r, r), PARSE_TRUNCATED);
    assert.equal(p.parseMessage(d, 0, d.length - 1, 'live', r, r), PARSE_TRUNCATED);
    const bad = Buffer.from(d);
    bad.writeUInt16LE(2000, 20); // nest longer than the message
    assert.equal(p.parseMessage(bad, 0, bad.length, 'live', r, r), PARSE_MALFORMED);
  });

  test('several messages in one datagram are walked with next', () => {
    const a = datagram([{ aggr: 'pid', id: 11, stats: stats() }]);
    const b = datagram([{ aggr: 'pid', id: 12, stats: stats() }]);
    const both = Buffer.concat([a, b]);
    const r = newTaskRecord();
    const ids: number[] = [];
    for (let off = 0; off < both.length; off = p.next) {
      assert.equal(p.parseMessage(both, off, both.length, 'exit', r, r), PARSED_PID);
      ids.push(r.pid);
    }
    assert.deepEqual(ids, [11, 12]);
  });
});

/** Datagrams captured from this kernel, for mutation. */
const captured: Buffer[] = [];
let familyId = FAMILY;

describe('parser: fuzzing', () => {
  before(() => {
    // GET replies (PID and TGID) of this process: always possible as root.
    let sock: TaskstatsSocket | undefined;
    try {
      sock = TaskstatsSocket.open({ receiveBuffer: 1 << 20 });
    } catch {
      return; // no libnl: fuzz the synthetic datagrams only (the kernel tests report the cause)
    }
    familyId = sock.familyId;
    const buf = Buffer.alloc(65536);
    for (const by of ['pid', 'tgid'] as const) {
      sock.sendGets(by, [process.pid], 0, 1);
      const n = sock.recv(buf);
      if (n > 0) captured.push(Buffer.from(buf.subarray(0, n)));
    }
    // Exit events of a single-threaded process and of node (multi-threaded: PID + TGID datagram).
    try {
      sock.register(possibleCpus());
    } catch {
      sock.close();
      return;
    }
    spawnSync('/bin/sh', ['-c', 'exit 3']);
    spawnSync(process.execPath, ['-e', '0']);
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      const n = sock.recv(buf);
      if (n > 0) captured.push(Buffer.from(buf.subarray(0, n)));
      else if (captured.length >= 8) break;
    }
    sock.close();
  });

  function checkRecord(r: TaskRecord): void {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === 'number') assert.ok(Number.isFinite(v) && v >= -1, `${k} = ${v}`);
    }
    assert.ok(r.comm.length <= 32);
    assert.ok(['pid', 'tgid'].includes(r.aggregate), r.aggregate);
  }

  /**
   * Structure, not only sanity: a record holds what its own STATS payload says and nothing from
   * the bytes around it (the same payload copied alone gives the same fields), and its version is
   * the payload's first u16.
   */
  const alone = newTaskRecord();
  function checkPayload(p: TaskstatsParser, b: Buffer, r: TaskRecord): void {
    const payload = Buffer.from(b.subarray(p.statsOff, p.statsOff + p.statsLen));
    assert.equal(r.version, payload.length >= 2 ? payload.readUInt16LE(0) : 0, "version is the payload's first u16");
    fillRecord(payload, 0, payload.length, alone);
    for (const k of Object.keys(alone) as (keyof TaskRecord)[]) {
      if (k === 'pid' || k === 'tgid' || k === 'kind' || k === 'aggregate') continue; // the nest's id and kind
      assert.equal(r[k], alone[k], `${k}: from the payload alone`);
    }
    if (r.aggregate === 'pid') assert.equal(r.pid, p.id, "an AGGR_PID record is the nest id's");
    else assert.equal(r.tgid, p.id, "an AGGR_TGID record is the nest id's");
  }

  const located = newTaskRecord();
  const activity = new Float64Array(3);
  /**
   * The live sweep's path (locate, activityOf, fillLocated) on the same message: never throws,
   * and when the message holds one record it gives exactly what parseMessage gives.
   */
  function checkLocate(p: TaskstatsParser, b: Buffer, off: number, a: TaskRecord, g: TaskRecord, st: number): void {
    const next = p.next;
    const seq = p.seq;
    // parseMessage's record (the last nest of its kind), to compare only the same payload: locate
    // takes the first nest (a GET reply holds one; a mutated message may hold several).
    const parsed = { id: p.id, statsOff: p.statsOff, statsLen: p.statsLen };
    const found = p.locate(b, off, b.length);
    assert.equal(p.next, next, 'locate advances as parseMessage does');
    if (st >= PARSE_IGNORED || st === PARSE_NETLINK_ERROR) assert.equal(p.seq, seq);
    if (found === PARSED_PID || found === PARSED_TGID) {
      activityOf(b, p.statsOff, p.statsLen, activity);
      for (const v of activity) assert.ok(Number.isFinite(v) && v >= 0);
      if (st === found && p.statsOff === parsed.statsOff) {
        p.fillLocated(b, found === PARSED_PID, 'exit', located);
        const want = found === PARSED_PID ? a : g;
        assert.deepEqual(located, want, 'locate + fillLocated = parseMessage');
        assert.deepEqual([...activity], [want.cpuDelayCount, want.cpuRunRealNs, want.voluntaryCtxSwitches + want.involuntaryCtxSwitches]);
      }
    } else if (st <= 0) assert.equal(found, st, 'the same status as parseMessage');
    p.next = next;
    Object.assign(p, parsed);
  }

  function parseAll(p: TaskstatsParser, b: Buffer, a: TaskRecord, g: TaskRecord): number {
    let records = 0;
    let steps = 0;
    for (let off = 0; off < b.length; off = p.next) {
      const st = p.parseMessage(b, off, b.length, 'exit', a, g);
      checkLocate(p, b, off, a, g, st);
      assert.ok([PARSE_IGNORED, PARSE_TRUNCATED, PARSE_NETLINK_ERROR, PARSE_MALFORMED, 1, 2, 3].includes(st), `status ${st}`);
      if (st & PARSED_PID) checkRecord(a);
      if (st & PARSED_TGID) checkRecord(g);
      if (st === PARSED_PID || st === PARSED_TGID) checkPayload(p, b, st === PARSED_PID ? a : g);
      if (st > 0) records += (st & 1) + ((st >> 1) & 1);
      assert.ok(p.next > off || p.next === b.length, 'parser must advance');
      if (++steps > 1000) assert.fail('parser loops');
    }
    return records;
  }

  test('captured kernel datagrams parse', { skip: needs('root', 'taskstats', 'libnl') }, () => {
    assert.ok(captured.length >= 3, `captured ${captured.length} datagrams from the kernel`);
    const p = new TaskstatsParser(familyId);
    let records = 0;
    for (const d of captured) records += parseAll(p, d, newTaskRecord(), newTaskRecord());
    assert.ok(records >= captured.length, `${records} records from ${captured.length} datagrams`);
  });

  // A fresh seed each run, printed; TEST_SEED=<n> replays one.
  const fuzzSeed = process.env.TEST_SEED !== undefined ? Number(process.env.TEST_SEED) : randomInt(2 ** 31);

  test(`random and mutated datagrams never throw and give records true to their payload (30,000 iterations, seed ${fuzzSeed})`, (t) => {
    t.diagnostic(`seed ${fuzzSeed}: replay with TEST_SEED=${fuzzSeed} node --test dist/plugins/taskstats/parser.test.js`);
    const p = new TaskstatsParser(familyId);
    const a = newTaskRecord();
    const g = newTaskRecord();
    let seed = fuzzSeed;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
    const seeds = captured.length > 0 ? captured : [datagram([{ aggr: 'pid', id: 5, stats: stats() }], familyId)];
    const synthetic = [
      datagram(
        [
          { aggr: 'pid', id: 5, stats: stats() },
          { aggr: 'tgid', id: 5, stats: stats() },
        ],
        familyId,
      ),
      datagram([{ aggr: 'pid', id: 5, stats: struct(1, { cpu_count: 5, cpu_run_virtual_total: 7 }) }], familyId),
      datagram([{ aggr: 'pid', id: 5, stats: struct(17, { ac_exitcode: 1 << 8, ac_comm: 'v17', irq_delay_min: 3 }) }], familyId),
    ];
    const pool = [...seeds, ...synthetic];
    let parsedRecords = 0;
    for (let i = 0; i < 30_000; i++) {
      let b: Buffer;
      const mode = i % 5;
      if (mode === 0) {
        b = Buffer.alloc(Math.floor(rnd() * 1500));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
        if (b.length >= 6 && rnd() < 0.5) {
          b.writeUInt32LE(Math.floor(rnd() * (b.length + 8)), 0);
          b.writeUInt16LE(rnd() < 0.5 ? familyId : 2, 4);
        }
      } else {
        b = Buffer.from(pool[Math.floor(rnd() * pool.length)]!);
        if (mode === 1) {
          const flips = 1 + Math.floor(rnd() * 8);
          for (let j = 0; j < flips; j++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        } else if (mode === 2) {
          b = b.subarray(0, Math.floor(rnd() * b.length));
        } else if (mode === 3) {
          // corrupt a length field: the nlmsg_len, a nest's, or STATS's
          const at = [0, 20, 32, 36][Math.floor(rnd() * 4)]!;
          if (at + 2 <= b.length) b.writeUInt16LE(Math.floor(rnd() * 65536), at);
        } else {
          b = Buffer.concat([b, pool[Math.floor(rnd() * pool.length)]!.subarray(0, Math.floor(rnd() * 700))]);
        }
      }
      parsedRecords += parseAll(p, b, a, g);
    }
    assert.ok(parsedRecords > 1000, `mutations still parse often (${parsedRecords})`);
  });

  test('fillRecord reads the same at aligned and unaligned offsets, and never past the buffer', () => {
    // Aligned payloads are read through a Uint32Array view, others through an aligned copy.
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const aligned = newTaskRecord();
    const unaligned = newTaskRecord();
    const backing = Buffer.alloc(2048);
    for (let i = 0; i < 3000; i++) {
      const len = 2 + Math.floor(rnd() * 760);
      const payload = Buffer.alloc(len);
      for (let j = 0; j < len; j++) payload[j] = Math.floor(rnd() * 256);
      payload.writeUInt16LE([1, 8, 12, 14, 15, 16, 17, 99][i % 8]!, 0);
      const at = 4 * Math.floor(rnd() * 64);
      payload.copy(backing, at);
      fillRecord(backing, at, len, aligned);
      const odd = at + 1 + Math.floor(rnd() * 3);
      payload.copy(backing, odd);
      fillRecord(backing, odd, len, unaligned);
      // a Buffer whose own byteOffset is odd (a view into a larger ArrayBuffer)
      const view = backing.subarray(odd - at);
      const viaView = newTaskRecord();
      fillRecord(view, at, len, viaView);
      assert.deepEqual(unaligned, aligned, `payload ${i}: ${len} bytes at ${odd} vs ${at}`);
      assert.deepEqual(viaView, aligned, `payload ${i}: Buffer at byteOffset ${view.byteOffset}`);
    }
    // A length beyond the buffer reads only what exists (the same as the exact length).
    const b = Buffer.alloc(100);
    b.writeUInt16LE(16, 0);
    for (let j = 16; j < 100; j++) b[j] = j;
    const exact = newTaskRecord();
    const beyond = newTaskRecord();
    fillRecord(b, 0, 100, exact);
    fillRecord(b, 0, 5000, beyond);
    assert.deepEqual(beyond, exact);
    fillRecord(b, 99, 10, beyond);
    assert.equal(beyond.version, 0, 'one byte left: no struct');
    fillRecord(b, -4, 10, beyond);
    assert.equal(beyond.version, 0);
  });

  test('fillRecord with any payload length up to 800 bytes of any version stays sane', () => {
    const r = newTaskRecord();
    const b = Buffer.alloc(800);
    for (let len = 2; len <= 800; len += 2) {
      for (const v of [1, 8, 14, 15, 16, 17, 200, 65535]) {
        b.writeUInt16LE(v, 0);
        for (let j = 2; j < len; j++) b[j] = (j * 7 + v) & 0xff;
        fillRecord(b, 0, len, r);
        assert.equal(r.version, v);
        for (const [k, val] of Object.entries(r)) if (typeof val === 'number') assert.ok(Number.isFinite(val) && val >= -1, k);
      }
    }
  });
});
