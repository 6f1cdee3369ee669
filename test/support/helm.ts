/**
 * Helpers of the chart tests: the real helm binary (fetched by scripts/fetch-helm.sh into
 * .cache/helm/), rendering the chart, and validating rendered objects against the Kubernetes
 * schemas offline:
 * - kubernetes-models (generated from the Kubernetes OpenAPI schema) checks types, enums,
 *   formats and required fields; @kubernetes-models/prometheus-operator (generated from the
 *   operator's CRDs) does the same for PodMonitor and ServiceMonitor;
 * - the attribute maps of @kubernetes/client-node's models catch unknown fields (a typo such as
 *   `hostPid`), which kubernetes-models lets through but the API server rejects under strict field
 *   validation (kubectl's default).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root: the nearest folder up from here whose package.json is this project's. */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'taskstats-agent') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('test/support/helm: repository root (package.json of taskstats-agent) not found');
    dir = up;
  }
})();

export const chartDir = join(repoRoot, 'charts', 'taskstats-agent');

export type HelmMajor = 3 | 4;
const helmPaths = new Map<HelmMajor, string>();

/**
 * Path of the helm binary of that major version: $HELM_BIN / $HELM3_BIN, else .cache/helm/helm
 * (Helm 4) or .cache/helm3/helm (Helm 3), fetched by scripts/fetch-helm.sh on first use if missing.
 */
export function helmBinary(major: HelmMajor = 4): string {
  const known = helmPaths.get(major);
  if (known) return known;
  const fromEnv = major === 4 ? process.env.HELM_BIN : process.env.HELM3_BIN;
  if (fromEnv) {
    helmPaths.set(major, fromEnv);
    return fromEnv;
  }
  const cached = join(repoRoot, '.cache', major === 4 ? 'helm' : 'helm3', 'helm');
  if (!existsSync(cached)) {
    const r = spawnSync('bash', [join(repoRoot, 'scripts', 'fetch-helm.sh')], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`scripts/fetch-helm.sh failed (status ${r.status}): ${r.stderr}`);
  }
  helmPaths.set(major, cached);
  return cached;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm with a timeout; its state goes to a scratch dir so the machine's helm config is never touched. */
export function helm(args: string[], major: HelmMajor = 4, timeoutMs = 60_000): HelmResult {
  const scratch = join(repoRoot, '.cache', `helm${major}-home`);
  const r = spawnSync(helmBinary(major), args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    cwd: repoRoot,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(scratch, 'cache'),
      HELM_CONFIG_HOME: join(scratch, 'config'),
      HELM_DATA_HOME: join(scratch, 'data'),
    },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface TemplateOptions {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
  set?: Record<string, string>;
  helm?: HelmMajor;
}

/** `helm template` of the chart; throws with helm's stderr when rendering fails. */
export function renderChart(opts: TemplateOptions = {}): K8sObject[] {
  const args = ['template', opts.release ?? 'tsa', chartDir, '--namespace', opts.namespace ?? 'monitoring'];
  for (const f of opts.valuesFiles ?? []) args.push('--values', f);
  for (const [k, v] of Object.entries(opts.set ?? {})) args.push('--set', `${k}=${v}`);
  const r = helm(args, opts.helm ?? 4);
  if (r.status !== 0) throw new Error(`helm ${opts.helm ?? 4} ${args.join(' ')} failed (status ${r.status}):\n${r.stderr}`);
  return parseManifests(r.stdout);
}

/** Parses a multi-document manifest stream; empty documents are skipped. */
export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value) out.push(value);
  }
  return out;
}

export function findObject(objects: K8sObject[], kind: string, name?: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

// ---- schema validation ----

/** The models module of an object: `kubernetes-models/apps/v1/DaemonSet`, the operator's CRDs ... */
function modelPath(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion.includes('/') ? apiVersion : `v1`}/${kind}`;
}

/** Validates one object against the Kubernetes schema; returns problems (empty when valid). */
export async function validateObject(obj: K8sObject): Promise<string[]> {
  const where = `${obj.kind}/${obj.metadata.name}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(modelPath(obj.apiVersion, obj.kind))) as Record<string, unknown>;
  } catch (e) {
    return [`${where}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind} (${(e as Error).message})`];
  }
  const Model = mod[obj.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (!Model) return [`${where}: kubernetes-models has no ${obj.kind}`];
  const problems: string[] = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where}: ${(e as Error).message}`);
  }
  const version = obj.apiVersion.split('/').pop()!;
  const typeName = `${version[0]!.toUpperCase()}${version.slice(1)}${obj.kind}`;
  problems.push(...(await unknownFields(obj, typeName, where)));
  return problems;
}

interface AttributeType {
  baseName: string;
  type: string;
}
const attributeMaps = new Map<string, AttributeType[] | null>();

async function attributeMap(typeName: string): Promise<AttributeType[] | null> {
  if (attributeMaps.has(typeName)) return attributeMaps.get(typeName)!;
  let map: AttributeType[] | null = null;
  const file = join(repoRoot, 'node_modules', '@kubernetes', 'client-node', 'dist', 'gen', 'models', `${typeName}.js`);
  if (existsSync(file)) {
    const mod = (await import(file)) as Record<string, { getAttributeTypeMap?: () => AttributeType[] }>;
    map = mod[typeName]?.getAttributeTypeMap?.() ?? null;
  }
  attributeMaps.set(typeName, map);
  return map;
}

/** Fields of `value` that the Kubernetes type `typeName` does not define, as JSON paths. */
export async function unknownFields(value: unknown, typeName: string, path: string): Promise<string[]> {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(typeName);
  if (array) {
    if (!Array.isArray(value)) return [`${path}: expected a list`];
    const out: string[] = [];
    for (let i = 0; i < value.length; i++) out.push(...(await unknownFields(value[i], array[1]!, `${path}[${i}]`)));
    return out;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(typeName);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected a map`];
    const out: string[] = [];
    for (const [k, v] of Object.entries(value)) out.push(...(await unknownFields(v, map[1]!, `${path}.${k}`)));
    return out;
  }
  if (!/^[A-Z]/.test(typeName) || typeName === 'IntOrString' || typeName === 'Date') return [];
  const attrs = await attributeMap(typeName);
  if (!attrs) return [];
  if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object (${typeName})`];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const attr = attrs.find((a) => a.baseName === k);
    if (!attr) out.push(`${path}.${k}: unknown field of ${typeName}`);
    else out.push(...(await unknownFields(v, attr.type, `${path}.${k}`)));
  }
  return out;
}

// ---- file capabilities (what the image's `setcap cap_net_admin+ep` does), without libcap2-bin ----

export const CAP_NET_ADMIN = 12;
export const CAP_SYS_PTRACE = 19;

/**
 * Gives `path` the file capabilities `caps` in the permitted set with the effective bit ("+ep"),
 * by writing the security.capability extended attribute (struct vfs_cap_data, revision 2)
 * through libc's setxattr, as setcap does. Needs CAP_SETFCAP (root).
 */
export async function setFileCapabilities(path: string, caps: number[]): Promise<void> {
  const { default: koffi } = await import('koffi');
  const setxattr = koffi.load('libc.so.6').func('int setxattr(const char *path, const char *name, void *value, size_t size, int flags)');
  const VFS_CAP_REVISION_2 = 0x02000000;
  const VFS_CAP_FLAGS_EFFECTIVE = 0x000001;
  const value = Buffer.alloc(20); // magic_etc, then {permitted, inheritable} for capability words 0 and 1
  value.writeUInt32LE(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, 0);
  for (const cap of caps) {
    const offset = 4 + (cap >= 32 ? 8 : 0);
    value.writeUInt32LE((value.readUInt32LE(offset) | (1 << (cap % 32))) >>> 0, offset);
  }
  if (setxattr(path, 'security.capability', value, value.length, 0) !== 0) {
    throw new Error(`setxattr(${path}, security.capability) failed: errno ${koffi.errno()}`);
  }
}

/**
 * Whether a non-root uid can read the repository (its compiled files and node_modules): tests
 * that run the agent or a probe as another user need that; a checkout below a private home
 * directory (mode 0700) does not allow it.
 */
export function readableByUid(uid: number): boolean {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'test', '-r', join(repoRoot, 'node_modules', 'koffi', 'package.json')]);
  return r.status === 0;
}
