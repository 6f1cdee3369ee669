/**
 * Per-cgroup totals that equal the kernel's own cgroup accounting, and the cgroup's pressure.
 *
 * A process's exit record is taken in do_exit() before exit_mm, exit_files and exit_notify: the
 * CPU of that teardown (0.1-0.2 ms per small process, milliseconds for a big one) is in the
 * cgroup's cpu.stat and in no record, so the sum of process.cpu.time over a cgroup of short-lived
 * processes stays a few percent below cpu.stat. For every cgroup the receiver reports, this
 * module reads cgroup v2 `cpu.stat` at each collection and reports what no process sample holds
 * as one more series of that cgroup, `process.executable.name` = UNACCOUNTED_NAME:
 *
 *   unaccounted(C) = cpu.stat usage(C) - sum of process.cpu.time the receiver emitted for C
 *
 * emitted as growth (never negative: it only ever grows to the largest difference seen), split
 * into user and system so that each mode approaches cpu.stat's user_usec / system_usec while the
 * total follows usage_usec; process.linux.cpu.run_time gets the same total. cpu.stat is read at
 * the start of a collection, before the live sweep: the sweep then reads processes later than
 * cpu.stat was, so the difference can only lag (and catch up at the next collection), not run
 * ahead and count a process's CPU twice.
 *
 * Also the cgroup's PSI totals (cpu.pressure, memory.pressure, io.pressure: `some` and `full`,
 * microseconds stalled) as the counter linux.cgroup.pressure.time of that cgroup.
 *
 * Cost (docs/performance.md, "Workload view"): the unaccounted series has a schema of its own with
 * only the three CPU counters it can move, so that it exports 3 points per cgroup, not the ~30 of
 * a process series; the four files of each cgroup stay open and are re-read from offset 0 (a
 * kernfs seq_file regenerates its text then) and parsed as bytes: one pread per file and
 * collection instead of open/read/read/close and a string. A removed cgroup's open file reads
 * ENODEV: the fds are closed when the cgroup is forgotten, one collection later.
 *
 * Not reconciled (documented in docs/metrics.md): the root cgroup (its cpu.stat is the whole
 * host's), cgroups with reported descendants (their cpu.stat includes those), and everything in
 * exits-only mode (live processes' CPU reaches the samples only at their exit).
 *
 * A cgroup is removed once empty (a pod or container deleted), usually between two collections.
 * So that its last processes' teardown is not lost, each tracked cgroup's `cgroup.events` is
 * watched (inotify, through fs.watch): when it says `populated 0` no task can add CPU any more,
 * and cpu.stat is read at once; a cgroup found gone at the next collection reports up to that
 * final reading, then is forgotten and counted (cgroups_vanished).
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import {
  ATTR,
  type Attributes,
  type ComponentTelemetry,
  type Logger,
  type MetricDescriptor,
  type SampleBatch,
  type SampleSchema,
} from '../../src/api/index.js';
import { ProcReader } from './proc-reader.js';
import { PROCESS_SCHEMA, RAW } from './schema.js';

export interface CgroupReconcileConfig {
  /** Report the CPU of each reported cgroup that no process record holds (from cpu.stat). */
  reconcile: boolean;
  /** Report each reported cgroup's PSI totals. */
  pressure: boolean;
}

export function defaultCgroupReconcileConfig(): CgroupReconcileConfig {
  return { reconcile: true, pressure: true };
}

export const cgroupReconcileConfigSchema = {
  type: 'object',
  description: 'Per-cgroup figures read from cgroup v2 files of the cgroups the receiver reports.',
  properties: {
    reconcile: { type: 'boolean', description: 'A series per cgroup with the CPU cpu.stat counts and no process record holds (exit teardown).' },
    pressure: { type: 'boolean', description: "The cgroup's PSI totals (cpu/memory/io .pressure, some and full)." },
  },
} as const;

/** process.executable.name of the unaccounted series: longer than any comm (15), so no process has it. */
export const UNACCOUNTED_NAME = '[cgroup-unaccounted]';

export const PRESSURE_ATTR = { RESOURCE: 'linux.pressure.resource', STALL: 'linux.pressure.stall' } as const;
const PRESSURE_RESOURCES = ['cpu', 'memory', 'io'] as const;
/** The files read per cgroup, by index in CgroupState.fds: cpu.stat, then one per PSI resource. */
const FILES = ['cpu.stat', ...PRESSURE_RESOURCES.map((r) => `${r}.pressure`)] as const;
const CPU_STAT = 0;
/** CgroupState.fds: not opened yet (or closed after an error), or found absent (no PSI). */
const NOT_OPEN = -1;
const ABSENT = -2;
const KEY = {
  usage: Buffer.from('usage_usec '),
  user: Buffer.from('user_usec '),
  system: Buffer.from('system_usec '),
  total: Buffer.from('total='),
  full: Buffer.from('\nfull '),
};

function pressureDescriptor(resource: string, stall: string): MetricDescriptor {
  return {
    name: 'linux.cgroup.pressure.time',
    unit: 's',
    description:
      'Time tasks of the cgroup were stalled on a resource (cgroup v2 PSI: `some` = at least one task, `full` = all non-idle tasks), from the total= field of cpu.pressure, memory.pressure, io.pressure.',
    instrument: 'counter',
    valueType: 'double',
    pointAttributes: { [PRESSURE_ATTR.RESOURCE]: resource, [PRESSURE_ATTR.STALL]: stall },
  };
}

/**
 * The unaccounted series: the process schema's own descriptors of what it moves (process.cpu.time
 * user and system, process.linux.cpu.run_time), so its points merge with the processes' metrics.
 */
export const CGROUP_UNACCOUNTED_SCHEMA: SampleSchema = Object.freeze({
  id: 'taskstats.cgroup.unaccounted',
  metrics: Object.freeze([PROCESS_SCHEMA.metrics[RAW.USER]!, PROCESS_SCHEMA.metrics[RAW.SYSTEM]!, PROCESS_SCHEMA.metrics[RAW.RUN_TIME]!]),
});
/** Value indices of CGROUP_UNACCOUNTED_SCHEMA. */
export const UNACCOUNTED = { USER: 0, SYSTEM: 1, RUN_TIME: 2 } as const;

/** One sample per cgroup: cpu some/full, memory some/full, io some/full (seconds stalled). */
export const CGROUP_PRESSURE_SCHEMA: SampleSchema = Object.freeze({
  id: 'taskstats.cgroup.pressure',
  metrics: Object.freeze(PRESSURE_RESOURCES.flatMap((r) => [pressureDescriptor(r, 'some'), pressureDescriptor(r, 'full')])),
});

interface CgroupState {
  readonly path: string;
  readonly dir: string;
  /** process.cpu.time the receiver emitted for this cgroup, seconds, by mode. */
  recordsUser: number;
  recordsSystem: number;
  /** What the unaccounted series emitted so far, seconds, by mode. */
  emittedUser: number;
  emittedSystem: number;
  /** Open files (FILES order; NOT_OPEN, ABSENT): re-read at offset 0 each collection. */
  readonly fds: Int32Array;
  /** PSI totals (us) at the previous reading; -1 before the first. */
  readonly pressureUs: Float64Array;
  /** cpu.stat read by read(), seconds (usage < 0: none), handed out by emit(). */
  usage: number;
  user: number;
  system: number;
  /** PSI growth (s) found by read(), handed out by emit(). */
  readonly pressureGrowth: Float64Array;
  pressureGrew: boolean;
  /** cpu.stat read when cgroup.events said `populated 0` (usage < 0: none since the last read). */
  emptyUsage: number;
  emptyUser: number;
  emptySystem: number;
  /** Found removed by read(): emit() reports up to emptyUsage, then forgets it. */
  vanished: boolean;
  watcher: FSWatcher | null;
  /** Collection in which a sample of the cgroup was last seen. */
  lastSeen: number;
  /** A reported cgroup below this one existed: its cpu.stat counts that one too (sticky). */
  hasReportedDescendant: boolean;
  readonly unaccountedAttributes: Attributes;
  readonly pressureAttributes: Attributes;
}

export interface CgroupReconcilerOptions {
  /** Mount point of the cgroup v2 hierarchy (e.g. /sys/fs/cgroup/unified on hybrid hosts). */
  root: string;
  config: CgroupReconcileConfig;
  /** The schema of the receiver's process samples (whose CPU observe() counts per cgroup). */
  processSchema: SampleSchema;
  logger: Logger;
  telemetry: ComponentTelemetry;
  /** Most cgroups tracked at once; more are counted (cgroups_untracked) and not read. */
  maxCgroups?: number;
  /** Most cgroup.events watches (final readings of removed cgroups); default 2,000. */
  maxWatchers?: number;
  /** Most cgroup files kept open (4 per cgroup); beyond it files are opened for each reading. Default 4,096. */
  maxOpenFiles?: number;
}

export class CgroupReconciler {
  private readonly byPath = new Map<string, CgroupState>();
  /** Aggregate mode shares one attributes object per workload: skip the path lookup for it. */
  private byAttributes = new WeakMap<Attributes, CgroupState | null>();
  private readonly reader = new ProcReader();
  /** What the last readFile() read (cgroup files are a few hundred bytes). */
  private readonly buf = Buffer.allocUnsafe(4096);
  private readonly maxCgroups: number;
  private readonly maxOpenFiles: number;
  private openFiles = 0;
  private collection = 0;
  private readonly vanished: { add(v: number): void };
  private readonly untracked: { add(v: number): void };
  private readonly unreadable: { add(v: number): void };
  private untrackedLogged = false;
  private watchers = 0;
  private readonly maxWatchers: number;
  /** Number of cgroups read at the last collection (for the gauge). */
  private lastRead = 0;

  constructor(private readonly o: CgroupReconcilerOptions) {
    this.maxCgroups = o.maxCgroups ?? 10_000;
    // inotify watches are a per-user kernel budget (fs.inotify.max_user_watches) shared with others.
    this.maxWatchers = o.maxWatchers ?? 2_000;
    this.maxOpenFiles = o.maxOpenFiles ?? 4_096;
    const t = o.telemetry;
    this.vanished = t.counter(
      'cgroups_vanished',
      'Reported cgroups removed between two readings of their cpu.stat (what was read before stays reported)',
      '{cgroup}',
    );
    this.untracked = t.counter('cgroups_untracked', 'Cgroups not reconciled because the tracking limit was reached', '{cgroup}');
    this.unreadable = t.counter('cgroup_read_errors', 'cpu.stat or pressure files that exist but could not be parsed', '{file}');
    t.gauge('cgroups_reconciled', 'Cgroups whose cpu.stat was read at the last collection', () => this.lastRead, '{cgroup}');
  }

  /** Number of cgroups tracked. */
  get size(): number {
    return this.byPath.size;
  }

  /**
   * Note the CPU of the receiver's samples per cgroup. Call for every batch before it is handed
   * on (the samples belong to the pipeline afterwards).
   */
  observe(batch: SampleBatch): void {
    for (let i = 0; i < batch.length; i++) {
      const s = batch[i]!;
      if (s.schema !== this.o.processSchema) continue;
      let st = this.byAttributes.get(s.attributes);
      if (st === undefined) {
        const path = s.attributes[ATTR.CGROUP];
        st = typeof path === 'string' ? this.stateOf(path) : null;
        this.byAttributes.set(s.attributes, st);
      }
      if (st === null) continue;
      st.recordsUser += s.values[RAW.USER]!;
      st.recordsSystem += s.values[RAW.SYSTEM]!;
      st.lastSeen = this.collection;
    }
  }

  private stateOf(path: string): CgroupState | null {
    const known = this.byPath.get(path);
    if (known !== undefined) return known;
    // The root's cpu.stat is the whole host's; '' is an unknown cgroup.
    if (path === '' || path === '/' || !path.startsWith('/') || path.includes('/../')) return null;
    if (this.byPath.size >= this.maxCgroups) {
      this.untracked.add(1);
      if (!this.untrackedLogged) {
        this.untrackedLogged = true;
        this.o.logger.warn('cgroup reconciliation: tracking limit reached, further cgroups are not reconciled', {
          key: 'cgroups_untracked',
          limit: this.maxCgroups,
        });
      }
      return null;
    }
    const st: CgroupState = {
      path,
      dir: join(this.o.root, path),
      recordsUser: 0,
      recordsSystem: 0,
      emittedUser: 0,
      emittedSystem: 0,
      fds: new Int32Array(FILES.length).fill(NOT_OPEN),
      pressureUs: new Float64Array(6).fill(-1),
      usage: -1,
      user: 0,
      system: 0,
      pressureGrowth: new Float64Array(6),
      pressureGrew: false,
      emptyUsage: -1,
      emptyUser: 0,
      emptySystem: 0,
      vanished: false,
      watcher: null,
      lastSeen: this.collection,
      hasReportedDescendant: false,
      unaccountedAttributes: Object.freeze({ [ATTR.EXECUTABLE_NAME]: UNACCOUNTED_NAME, [ATTR.CGROUP]: path }),
      pressureAttributes: Object.freeze({ [ATTR.CGROUP]: path }),
    };
    for (const other of this.byPath.values()) {
      if (path.startsWith(other.path + '/')) other.hasReportedDescendant = true;
      else if (other.path.startsWith(path + '/')) st.hasReportedDescendant = true;
    }
    this.byPath.set(path, st);
    if (this.o.config.reconcile && this.watchers < this.maxWatchers) this.watchEmpty(st);
    return st;
  }

  /** Read cpu.stat as soon as the cgroup has no task left (see the file comment). */
  private watchEmpty(st: CgroupState): void {
    const events = `${st.dir}/cgroup.events`;
    const onChange = () => {
      const text = this.reader.readText(events, 4096);
      if (text === undefined || !text.includes('populated 0')) return;
      const u = this.readCpuStat(st);
      if (u === 'vanished' || u === null) return;
      st.emptyUsage = u.usage;
      st.emptyUser = u.user;
      st.emptySystem = u.system;
    };
    try {
      const w = watch(events, { persistent: false }, onChange);
      w.on('error', () => {
        // The cgroup was removed (the watch ends with it): the last reading stays.
        w.close();
        if (st.watcher === w) {
          st.watcher = null;
          this.watchers--;
        }
      });
      st.watcher = w;
      this.watchers++;
    } catch {
      // Gone already, or no inotify watches left: the cgroup is reconciled without a final reading.
    }
  }

  /** Close the watches and files (the receiver's shutdown). */
  close(): void {
    for (const st of this.byPath.values()) {
      this.unwatch(st);
      this.closeFiles(st);
    }
  }

  private closeFiles(st: CgroupState): void {
    for (let k = 0; k < st.fds.length; k++) this.closeFile(st, k);
  }

  private closeFile(st: CgroupState, k: number): void {
    const fd = st.fds[k]!;
    st.fds[k] = NOT_OPEN;
    if (fd < 0) return;
    this.openFiles--;
    this.reader.closeKept(fd);
  }

  /**
   * Reads file `k` (FILES) of the cgroup into this.buf: its length, or -1 when it cannot be read
   * (absent, or the cgroup is gone: ENOENT at open, ENODEV from an open file).
   */
  private readFile(st: CgroupState, k: number): number {
    let fd = st.fds[k]!;
    if (fd === ABSENT) return -1;
    const keep = fd >= 0 || this.openFiles < this.maxOpenFiles;
    if (fd < 0) {
      fd = this.reader.openKept(`${st.dir}/${FILES[k]}`);
      if (fd < 0) {
        // No such file: no PSI here (CONFIG_PSI off, psi=0), or the cgroup is gone (then it is
        // forgotten anyway). cpu.stat is always there while the cgroup is.
        if (k !== CPU_STAT) st.fds[k] = ABSENT;
        return -1;
      }
      if (keep) {
        st.fds[k] = fd;
        this.openFiles++;
      }
    }
    const n = this.reader.readKept(fd, this.buf);
    if (!keep) this.reader.closeKept(fd);
    else if (n < 0) this.closeFile(st, k);
    return n;
  }

  private unwatch(st: CgroupState): void {
    if (st.watcher === null) return;
    st.watcher.close();
    st.watcher = null;
    this.watchers--;
  }

  /**
   * Read every tracked cgroup's files. Call at the start of a collection, before the live sweep,
   * then emit() once the sweep's samples have been observed (see the file comment).
   */
  read(): void {
    this.collection++;
    let read = 0;
    for (const st of this.byPath.values()) {
      st.usage = -1;
      if (this.o.config.reconcile && !st.hasReportedDescendant) {
        const usage = this.readCpuStat(st);
        if (usage === 'vanished') {
          this.vanished.add(1);
          st.vanished = true;
          // Report up to the reading taken when it became empty (if the watch caught it).
          if (st.emptyUsage >= 0) {
            st.usage = st.emptyUsage;
            st.user = st.emptyUser;
            st.system = st.emptySystem;
          }
          continue;
        }
        st.emptyUsage = -1;
        if (usage !== null) {
          st.usage = usage.usage;
          st.user = usage.user;
          st.system = usage.system;
        }
      }
      if (this.o.config.pressure && this.readPressure(st) === 0 && !existsSync(st.dir)) {
        // Pressure only (no cpu.stat read to tell): gone.
        this.vanished.add(1);
        st.vanished = true;
        continue;
      }
      read++;
    }
    this.lastRead = read;
  }

  /** Append the unaccounted CPU and the pressure growth found by read() to `out`. */
  emit(nowMs: number, out: SampleBatch): void {
    for (const st of this.byPath.values()) {
      if (st.usage >= 0) this.reconcile(st, nowMs, out);
      st.usage = -1;
      if (st.vanished) {
        this.forget(st);
        continue;
      }
      // A sample every collection keeps the series fresh in the metrics stage, as live processes do.
      if (st.pressureGrew || (this.o.config.pressure && st.lastSeen >= this.collection - 1)) {
        out.push({ schema: CGROUP_PRESSURE_SCHEMA, attributes: st.pressureAttributes, values: st.pressureGrowth.slice(), final: false, timeMs: nowMs });
      }
      st.pressureGrowth.fill(0);
      st.pressureGrew = false;
    }
  }

  /**
   * Only a cgroup that vanished is forgotten: one that still exists keeps its sums, however long it
   * stays quiet (forgetting them would count its whole cpu.stat again when it comes back). A new
   * cgroup under the same path (a restarted systemd unit) starts from its own zero.
   */
  private forget(st: CgroupState): void {
    // An ancestor stays unreconciled: its cpu.stat keeps the removed descendant's usage.
    this.unwatch(st);
    this.closeFiles(st);
    this.byPath.delete(st.path);
    // WeakMap has no clear(): attribute objects that pointed at the old state look it up again.
    this.byAttributes = new WeakMap();
  }

  /** usage/user/system in seconds, 'vanished' when the cgroup is gone, null when unreadable. */
  private readCpuStat(st: CgroupState): { usage: number; user: number; system: number } | 'vanished' | null {
    const n = this.readFile(st, CPU_STAT);
    if (n < 0) return 'vanished';
    const b = this.buf;
    const usage = fieldIn(b, n, KEY.usage, 0);
    const user = fieldIn(b, n, KEY.user, 0);
    const system = fieldIn(b, n, KEY.system, 0);
    if (usage < 0 || user < 0 || system < 0) {
      this.unreadable.add(1);
      return null;
    }
    return { usage: usage * 1e-6, user: user * 1e-6, system: system * 1e-6 };
  }

  private reconcile(st: CgroupState, nowMs: number, out: SampleBatch): void {
    const emitted = st.emittedUser + st.emittedSystem;
    const growth = st.usage - (st.recordsUser + st.recordsSystem) - emitted;
    if (!(growth > 0)) return;
    // Split toward cpu.stat's modes: user takes what it lacks (within the growth), system the rest.
    const userLack = st.user - st.recordsUser - st.emittedUser;
    const user = userLack <= 0 ? 0 : userLack >= growth ? growth : userLack;
    const system = growth - user;
    st.emittedUser += user;
    st.emittedSystem += system;
    const values = new Float64Array(3);
    values[UNACCOUNTED.USER] = user;
    values[UNACCOUNTED.SYSTEM] = system;
    values[UNACCOUNTED.RUN_TIME] = growth;
    out.push({ schema: CGROUP_UNACCOUNTED_SCHEMA, attributes: st.unaccountedAttributes, values, final: false, timeMs: nowMs });
  }

  /** Returns the number of pressure files read. */
  private readPressure(st: CgroupState): number {
    let files = 0;
    for (let r = 0; r < PRESSURE_RESOURCES.length; r++) {
      const n = this.readFile(st, 1 + r);
      if (n < 0) continue; // no PSI (CONFIG_PSI off, psi=0) or the cgroup just went
      files++;
      const b = this.buf;
      const full = b.indexOf(KEY.full);
      this.addPressure(st, 2 * r, fieldIn(b, n, KEY.total, 0));
      this.addPressure(st, 2 * r + 1, full < 0 || full >= n ? -1 : fieldIn(b, n, KEY.total, full));
    }
    return files;
  }

  private addPressure(st: CgroupState, k: number, totalUs: number): void {
    if (totalUs < 0) return;
    const before = st.pressureUs[k]!;
    st.pressureUs[k] = totalUs;
    // The first reading is the cgroup's whole history (as cpu.stat's usage is for CPU).
    const grew = totalUs - (before < 0 ? 0 : before);
    if (grew > 0) {
      st.pressureGrowth[k]! += grew * 1e-6;
      st.pressureGrew = true;
    }
  }
}

/**
 * The non-negative integer after the first `key` at or after `from` in b[0, n), or -1. The
 * buffer is reused: bytes from n on are an earlier file's, and a key found there is not this one's.
 */
function fieldIn(b: Buffer, n: number, key: Buffer, from: number): number {
  const at = b.indexOf(key, from);
  if (at < 0) return -1;
  let i = at + key.length;
  const start = i;
  let v = 0;
  for (; i < n; i++) {
    const c = b[i]! - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
  }
  return i === start ? -1 : v;
}
