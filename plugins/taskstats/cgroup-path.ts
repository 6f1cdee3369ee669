/**
 * Which cgroup a process belongs to: parsing /proc/PID/cgroup and finding the cgroup mounts.
 *
 * /proc/PID/cgroup has one line per hierarchy, `ID:CONTROLLERS:PATH`:
 *   - cgroup v2 (the unified hierarchy): `0::/system.slice/foo.service`. The kernel prints it once
 *     a cgroup2 file system has been mounted (v2-only hosts and hybrid hosts such as this one).
 *   - cgroup v1: `4:memory:/docker/abc`, `2:cpu,cpuacct:/x`, `1:name=systemd:/user.slice`.
 * On a v1-only host there is no `0::` line, and which hierarchy describes a workload is a choice
 * (`cpuacct`, `memory`, `name=systemd`): the caller names it.
 *
 * The PATH may itself contain ':' (only the first two colons separate fields), and a v2 cgroup
 * that was removed while a (zombie) process still belongs to it is printed with a ` (deleted)`
 * suffix, which is stripped so that the process keeps its cgroup's identity. (The files
 * themselves are read by proc-reader.ts.)
 */
import { ProcReader } from './proc-reader.js';
import { listProcessIds } from './proc-listing.js';

/** What line of /proc/PID/cgroup names a process's cgroup. */
export type CgroupSelector =
  /** The unified hierarchy's `0::PATH` line. */
  | { readonly kind: 'v2' }
  /** A v1 hierarchy, by one of its controllers (`cpuacct`) or its name (`name=systemd`). */
  | { readonly kind: 'v1'; readonly hierarchy: string };

export interface CgroupMounts {
  /** Mount point of the cgroup2 file system (`/sys/fs/cgroup/unified` on hybrid hosts), if mounted. */
  readonly v2?: string;
  /**
   * v1 hierarchies: each controller (`cpu`, `cpuacct`) and `name=X` option maps to the mount
   * point of its hierarchy. A co-mounted `cpu,cpuacct` hierarchy appears under both names.
   */
  readonly v1: ReadonlyMap<string, string>;
}

/** Undo mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`). */
function unescapeMountField(s: string): string {
  return s.indexOf('\\') < 0 ? s : s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parse /proc/self/mountinfo text for cgroup mounts. The first mount of each hierarchy wins
 * (bind mounts of sub-trees come later and have a root other than `/`, which is skipped).
 */
export function parseCgroupMounts(mountinfo: string): CgroupMounts {
  let v2: string | undefined;
  const v1 = new Map<string, string>();
  for (const line of mountinfo.split('\n')) {
    if (line === '') continue;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const fsType = right[0];
    const root = left[3];
    const mountPoint = left[4];
    if (mountPoint === undefined || root !== '/') continue;
    if (fsType === 'cgroup2') {
      v2 ??= unescapeMountField(mountPoint);
    } else if (fsType === 'cgroup') {
      const superOptions = (right[2] ?? '').split(',');
      for (const opt of superOptions) {
        if (
          opt === 'rw' ||
          opt === 'ro' ||
          opt === '' ||
          opt.startsWith('release_agent=') ||
          opt === 'clone_children' ||
          opt === 'noprefix' ||
          opt === 'xattr' ||
          opt === 'cpuset_v2_mode' ||
          opt === 'favordynmods'
        )
          continue;
        if (!v1.has(opt)) v1.set(opt, unescapeMountField(mountPoint));
      }
    }
  }
  return v2 === undefined ? { v1 } : { v2, v1 };
}

/** The cgroup mounts of this process's mount namespace (reads /proc/self/mountinfo). */
export function detectCgroupMounts(procRoot = '/proc'): CgroupMounts {
  const text = new ProcReader(procRoot).readText(`${procRoot}/self/mountinfo`);
  if (text === undefined) throw new Error(`cannot read ${procRoot}/self/mountinfo: no cgroup mount can be found`);
  return parseCgroupMounts(text);
}

/**
 * Decide which line of /proc/PID/cgroup to use, from a sample of that file (the agent's own,
 * `/proc/self/cgroup`): what matters is the format the kernel prints, and it prints the `0::` line
 * as soon as a cgroup2 file system is mounted anywhere, whatever this mount namespace shows.
 * A configured v1 hierarchy wins (the user asked for it; it must exist); otherwise the unified
 * hierarchy. A v1-only host without a configured hierarchy is an error that says what to set.
 */
export function chooseCgroupSelector(sampleProcCgroup: string, cgroupV1Hierarchy?: string): CgroupSelector {
  const v1Names = listV1Hierarchies(sampleProcCgroup);
  if (cgroupV1Hierarchy !== undefined && cgroupV1Hierarchy !== '') {
    const selector: CgroupSelector = { kind: 'v1', hierarchy: cgroupV1Hierarchy };
    if (parseProcCgroup(sampleProcCgroup, selector) === undefined) {
      throw new Error(`cgroup v1 hierarchy "${cgroupV1Hierarchy}" does not exist on this host (v1 hierarchies: ${v1Names.join(', ') || 'none'})`);
    }
    return selector;
  }
  if (parseProcCgroup(sampleProcCgroup, { kind: 'v2' }) !== undefined) return { kind: 'v2' };
  if (v1Names.length === 0) throw new Error('no cgroup hierarchy found in /proc/self/cgroup (kernel without cgroups?)');
  const suggestion = v1Names.includes('name=systemd') ? 'name=systemd' : v1Names.includes('cpuacct') ? 'cpuacct' : v1Names[0];
  throw new Error(
    "this host has no cgroup v2 hierarchy: configure which cgroup v1 hierarchy names a process's cgroup " +
      `(cgroup_v1_hierarchy, e.g. "${suggestion}"; available: ${v1Names.join(', ')})`,
  );
}

/** Controller and `name=` entries of the v1 lines of a /proc/PID/cgroup text. */
export function listV1Hierarchies(procCgroup: string): string[] {
  const names: string[] = [];
  for (const line of procCgroup.split('\n')) {
    const c1 = line.indexOf(':');
    const c2 = c1 < 0 ? -1 : line.indexOf(':', c1 + 1);
    if (c2 > c1 + 1) names.push(...line.slice(c1 + 1, c2).split(','));
  }
  return names;
}

const DELETED_SUFFIX = ' (deleted)';

/**
 * The cgroup path in /proc/PID/cgroup text for the selector, or undefined when no line matches.
 * Tolerates a missing final newline and `\r`-free input only (the kernel's format).
 */
export function parseProcCgroup(text: string, selector: CgroupSelector): string | undefined {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const c1 = text.indexOf(':', start);
    if (c1 > start && c1 < end) {
      const c2 = text.indexOf(':', c1 + 1);
      if (c2 > 0 && c2 < end) {
        if (selector.kind === 'v2') {
          if (c2 === c1 + 1 && c1 === start + 1 && text.charCodeAt(start) === 48 /* '0' */) return cleanPath(text.slice(c2 + 1, end));
        } else if (c2 > c1 + 1 && hasListItem(text, c1 + 1, c2, selector.hierarchy)) {
          return cleanPath(text.slice(c2 + 1, end));
        }
      }
    }
    start = end + 1;
  }
  return undefined;
}

/**
 * Same as parseProcCgroup, on the raw bytes of the file (buf[0, len)): only the path is turned
 * into a string, not the whole file. This is the form used on the hot path (findCgroupPath, then
 * the path's bytes decoded).
 */
export function parseProcCgroupBytes(buf: Buffer, len: number, selector: CgroupSelector): string | undefined {
  if (!findCgroupPath(buf, len, selector, hierarchyBytes(selector), parseRange)) return undefined;
  return buf.toString('utf8', parseRange[0], parseRange[1]);
}

const parseRange = new Int32Array(2);
const hierarchyCache = new WeakMap<CgroupSelector, Uint8Array>();

/** A v1 selector's hierarchy as latin1 bytes (encoded once per selector), for findCgroupPath. */
function hierarchyBytes(selector: CgroupSelector): Uint8Array | undefined {
  if (selector.kind !== 'v1') return undefined;
  let b = hierarchyCache.get(selector);
  if (b === undefined) hierarchyCache.set(selector, (b = Buffer.from(selector.hierarchy, 'latin1')));
  return b;
}

const DELETED_SUFFIX_BYTES = Buffer.from(DELETED_SUFFIX);

/**
 * Where the cgroup path for `selector` is in /proc/PID/cgroup bytes b[0, len): sets
 * cgroupRange[0..1] to [start, end) and returns true, or false when no line matches. The rules of
 * parseProcCgroup (tested to agree), without making a string, for the exec watcher thread:
 * `0::PATH` for v2, a line whose controller list holds the hierarchy (`hierarchy`: its latin1
 * bytes) for v1; ` (deleted)` dropped.
 */
export function findCgroupPath(b: Uint8Array, len: number, selector: CgroupSelector, hierarchy: Uint8Array | undefined, cgroupRange: Int32Array): boolean {
  // One pass over the bytes in plain loops: Buffer.indexOf and compare are calls into C++ (~0.1 us
  // each, dozens per file).
  const v2 = selector.kind === 'v2';
  let start = 0;
  while (start < len) {
    let c1 = -1;
    let c2 = -1;
    let end = start;
    for (; end < len; end++) {
      const ch = b[end]!;
      if (ch === 10) break;
      if (ch === 58) {
        if (c1 < 0) c1 = end;
        else if (c2 < 0) c2 = end;
      }
    }
    if (c1 > start && c2 > 0) {
      let match = false;
      if (v2) {
        match = c2 === c1 + 1 && c1 === start + 1 && b[start] === 48;
      } else if (hierarchy !== undefined) {
        // The controller list between the colons, comma-separated: one item equal to the hierarchy.
        let i = c1 + 1;
        while (i < c2 && !match) {
          let comma = i;
          while (comma < c2 && b[comma] !== 44) comma++;
          if (comma - i === hierarchy.length) {
            match = true;
            for (let k = 0; k < hierarchy.length; k++)
              if (b[i + k] !== hierarchy[k]) {
                match = false;
                break;
              }
          }
          i = comma + 1;
        }
      }
      if (match) {
        let pathEnd = end;
        const d = DELETED_SUFFIX_BYTES.length;
        if (pathEnd - (c2 + 1) >= d) {
          let deleted = true;
          for (let k = 0; k < d; k++)
            if (b[pathEnd - d + k] !== DELETED_SUFFIX_BYTES[k]) {
              deleted = false;
              break;
            }
          if (deleted) pathEnd -= d;
        }
        cgroupRange[0] = c2 + 1;
        cgroupRange[1] = pathEnd;
        return true;
      }
    }
    start = end + 1;
  }
  return false;
}

function cleanPath(p: string): string {
  return p.endsWith(DELETED_SUFFIX) ? p.slice(0, -DELETED_SUFFIX.length) : p;
}

/** Whether the comma-separated list text[from, to) contains `item` as a whole element. */
function hasListItem(text: string, from: number, to: number, item: string): boolean {
  let i = from;
  while (i < to) {
    let comma = text.indexOf(',', i);
    if (comma < 0 || comma > to) comma = to;
    if (comma - i === item.length && text.startsWith(item, i)) return true;
    i = comma + 1;
  }
  return false;
}

/**
 * Interns cgroup path strings so that every process of a cgroup shares one string (the receiver
 * builds attribute objects per cgroup; equal strings by identity make those lookups cheap and
 * keep the cache small). Bounded: cleared when it grows past `max` distinct paths.
 */
export class StringInterner {
  private readonly table = new Map<string, string>();
  /**
   * `transform` (optional) maps a new string to what is kept for it, once per distinct string:
   * how the receiver makes cgroup paths absolute inside a cgroup namespace at no per-record cost.
   */
  constructor(
    private readonly max = 100_000,
    private readonly transform?: (s: string) => string,
  ) {}
  intern(s: string): string {
    const known = this.table.get(s);
    if (known !== undefined) return known;
    if (this.table.size >= this.max) this.table.clear();
    const kept = this.transform ? this.transform(s) : s;
    this.table.set(s, kept);
    return kept;
  }
}

// ---- absolute paths inside a cgroup namespace ----

/**
 * Turns the cgroup paths /proc/PID/cgroup prints into absolute ones when the agent runs in a
 * cgroup namespace of its own (a pod on a cgroup v2 node: the runtime gives every container one).
 * The kernel prints a path relative to the reader's namespace root R, so a process of another pod
 * reads `/../../kubepods-besteffort.slice/...`: k leading `..` climb from R to its ancestor at
 * depth D-k (D = R's depth), then the path goes down. What is known:
 *  - D: pid 1 (hostPID) sits at or right below the root (`/init.scope`), so it is printed with D
 *    leading `..`;
 *  - the kubelet's names: the pod's cgroup is `kubepods[-<qos>]-pod<uid_>.slice` under the systemd
 *    driver (each slice name spells its parents: `a-b.slice` lives in `a.slice`), or
 *    `/kubepods[/<qos>]/pod<uid>` under cgroupfs; the pod uid appears in the kubelet's bind mounts
 *    (`.../pods/<uid>/etc-hosts`, `.../volumes/...`) of /proc/self/mountinfo;
 *  - every other process's path: its first name below the common ancestor is a child of that
 *    ancestor that is not on R's own chain, which rules out layouts.
 * Each ancestor of R that every layout still possible agrees on is known. R itself (the agent's own
 * container, named after a container id nothing here tells) is not: paths inside it stay as
 * printed, and so does a path whose ancestor is not known; the caller says so.
 */
export interface CgroupNamespaceView {
  /** Whether the agent reads paths relative to a cgroup namespace other than the root's. */
  readonly nested: boolean;
  /** Depth of the agent's namespace root R (0 when not nested). */
  readonly depth: number;
  /** Absolute paths of R's ancestors by depth (index 0 is the root, ''); undefined where unknown. */
  readonly ancestors: readonly (string | undefined)[];
  /** The pod uid found in /proc/self/mountinfo, if any. */
  readonly podUid: string | undefined;
  /** The absolute form of a path as printed, or undefined when it cannot be told. */
  absolute(printed: string): string | undefined;
}

const POD_UID_IN_MOUNT = /\/pods\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\//;

/** Number of leading `/..` segments of a printed path, and the segments after them. */
function splitUps(printed: string): { ups: number; rest: string[] } {
  const segs = printed.split('/').filter((x) => x !== '');
  let ups = 0;
  while (ups < segs.length && segs[ups] === '..') ups++;
  return { ups, rest: segs.slice(ups) };
}

/** `/a.slice/a-b.slice/a-b-c.slice` for `a-b-c.slice`: where systemd puts a slice. */
function sliceChain(name: string): string[] {
  const parts = name.slice(0, -'.slice'.length).split('-');
  return parts.map((_p, i) => `${parts.slice(0, i + 1).join('-')}.slice`);
}

const isUnit = (name: string) => name.endsWith('.slice') || name.endsWith('.scope');

/** The pod uid named by the kubelet's bind mounts in mountinfo text (the ROOT field of a mount). */
export function podUidFromMountinfo(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const root = line.split(' ')[3];
    const m = root === undefined ? null : POD_UID_IN_MOUNT.exec(`${root}/`);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * The view from printed paths: pid 1's, those of the other processes (any order), and the pod uid.
 * Pure: resolveCgroupNamespace feeds it from /proc.
 */
export function cgroupNamespaceView(pid1: string, others: Iterable<string>, podUid: string | undefined): CgroupNamespaceView {
  const D = splitUps(pid1).ups;
  if (D === 0) return { nested: false, depth: 0, ancestors: [''], podUid, absolute: (p) => p };
  // Observations: (k, first name below the ancestor at depth D-k), for paths outside R's subtree.
  const seen = new Map<string, { k: number; name: string | undefined }>();
  const kubepodsSlices = new Set<string>(['kubepods.slice']);
  for (const p of others) {
    const { ups, rest } = splitUps(p);
    if (ups === 0 || ups > D) continue;
    const name = rest[0];
    seen.set(`${ups}/${name ?? ''}`, { k: ups, name });
    if (name?.endsWith('.slice')) for (const s of sliceChain(name)) if (/(^|-)kubepods\.slice$/.test(s)) kubepodsSlices.add(s);
  }
  // Layouts the kubelet could have made: the absolute path of R's parent (the pod's cgroup).
  const layouts: { systemd: boolean; chain: (string | undefined)[] }[] = [];
  const qosLevels = [undefined, 'burstable', 'besteffort'];
  for (const k of kubepodsSlices) {
    for (const q of qosLevels) {
      const parent = q ? [...sliceChain(k), `${k.slice(0, -'.slice'.length)}-${q}.slice`] : sliceChain(k);
      const stem = parent[parent.length - 1]!.slice(0, -'.slice'.length);
      layouts.push({ systemd: true, chain: [...parent, podUid ? `${stem}-pod${podUid.replace(/-/g, '_')}.slice` : undefined] });
    }
  }
  for (const q of qosLevels) layouts.push({ systemd: false, chain: ['kubepods', ...(q ? [q] : []), podUid ? `pod${podUid}` : undefined] });
  const alive = layouts.filter((l) => {
    if (l.chain.length !== D - 1) return false; // R is the chain's child: depth D
    for (const { k, name } of seen.values()) {
      const j = D - k; // the common ancestor's depth
      if (name === undefined) continue;
      const next = l.chain[j]; // R's ancestor at depth j+1 (chain index j)
      if (next === name) return false; // then the kernel would have printed fewer `..`
      if (j >= 1) {
        if (l.systemd !== isUnit(name)) return false;
        if (l.systemd && name.endsWith('.slice')) {
          const parents = sliceChain(name).slice(0, -1);
          if (parents.length !== j || parents.some((s, i) => s !== l.chain[i])) return false;
        }
      }
    }
    return true;
  });
  const ancestors: (string | undefined)[] = [''];
  for (let j = 1; j < D; j++) {
    const paths = new Set(alive.map((l) => (l.chain.slice(0, j).includes(undefined) ? undefined : `/${l.chain.slice(0, j).join('/')}`)));
    ancestors.push(paths.size === 1 ? [...paths][0] : undefined);
  }
  return {
    nested: true,
    depth: D,
    ancestors,
    podUid,
    absolute(printed: string): string | undefined {
      const { ups, rest } = splitUps(printed);
      if (ups === 0 || ups > D) return undefined;
      const base = ancestors[D - ups];
      if (base === undefined) return undefined;
      const tail = rest.length > 0 ? `/${rest.join('/')}` : '';
      return base + tail || '/';
    },
  };
}

/**
 * The cgroup namespace view of this process: pid 1 and every process of `procRoot` read once
 * (at receiver start), the pod uid from /proc/self/mountinfo. Not nested: an identity view, and
 * nothing else is read.
 */
export function resolveCgroupNamespace(procRoot: string, selector: CgroupSelector): CgroupNamespaceView {
  const reader = new ProcReader(procRoot);
  const read = (pid: number) => {
    const text = reader.readText(`${procRoot}/${pid}/cgroup`);
    return text === undefined ? undefined : parseProcCgroup(text, selector); // undefined: gone
  };
  const pid1 = read(1);
  if (pid1 === undefined || !pid1.startsWith('/..')) return cgroupNamespaceView('/', [], undefined);
  const others: string[] = [];
  const { ids, count } = listProcessIds(procRoot, new Int32Array(8192), Buffer.allocUnsafe(1 << 16));
  for (let i = 0; i < count; i++) {
    const p = read(ids[i]!);
    if (p !== undefined) others.push(p);
  }
  // No mountinfo: no uid then, the pod level stays unknown.
  const mountinfo = reader.readText(`${procRoot}/self/mountinfo`) ?? '';
  return cgroupNamespaceView(pid1, others, podUidFromMountinfo(mountinfo));
}
