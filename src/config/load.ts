/**
 * Loads and validates the agent's configuration file: top-level shape, plugins, every component's
 * config, the service (telemetry, pipelines). Every problem is reported at once.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { parseComponentId, parseDuration } from '../api/index.js';
import type { ComponentFactory, ComponentKind } from '../api/index.js';
import { loadPlugin } from '../plugins.js';
import type { Registry } from '../registry.js';
import { positionOf } from './component-config.js';
import { joinPath } from './issues.js';
import type { ConfigIssue } from './issues.js';
import { parseYamlConfig } from './yaml.js';
import type { YamlSource } from './yaml.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_ENCODINGS = ['json', 'console'] as const;
export type LogEncoding = (typeof LOG_ENCODINGS)[number];

export const DEFAULT_TELEMETRY_ADDRESS = '127.0.0.1:8888';
export const DEFAULT_SERIES_LIMIT = 10_000;
export const DEFAULT_ENDED_SERIES_TTL_MS = 5 * 60_000;

export interface ComponentEntry {
  /** As configured: `type[/name]`. */
  id: string;
  kind: ComponentKind;
  type: string;
  factory: ComponentFactory;
  /** Defaults merged, validated, durations and sizes converted. */
  config: unknown;
  /** Config path, e.g. `processors.filter/x`. */
  path: string;
}

export interface PipelineConfig {
  /** `metrics` or `metrics/<name>`. */
  id: string;
  receivers: string[];
  processors: string[];
  exporters: string[];
  seriesLimit: number;
  endedSeriesTtlMs: number;
}

export interface TelemetryConfig {
  logs: { level: LogLevel; encoding?: LogEncoding };
  /** `host:port`; null when the HTTP endpoint is disabled. */
  metrics: { address: string | null };
}

export interface AgentConfig {
  file: string;
  plugins: string[];
  receivers: Map<string, ComponentEntry>;
  processors: Map<string, ComponentEntry>;
  exporters: Map<string, ComponentEntry>;
  pipelines: PipelineConfig[];
  telemetry: TelemetryConfig;
}

export interface LoadResult {
  /** Present only when there are no errors. */
  config?: AgentConfig;
  /** Errors and warnings, in file order as far as known. */
  issues: ConfigIssue[];
}

const SECTIONS: ReadonlyArray<[string, ComponentKind]> = [
  ['receivers', 'receiver'],
  ['processors', 'processor'],
  ['exporters', 'exporter'],
];
const TOP_LEVEL_KEYS = ['plugins', 'receivers', 'processors', 'exporters', 'service'];
const ID_TYPE = /^[a-z][a-z0-9_]*$/;
const ID_NAME = /^[^\s]+$/;
const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/;

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}

/** Splits `host:port`; undefined when malformed. */
export function parseAddress(address: string): { host: string; port: number } | undefined {
  const m = ADDRESS.exec(address);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}

/** Reads a file and validates it. Plugins named in it are registered into `registry`. */
export async function loadConfigFile(file: string, registry: Registry, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    return { issues: [{ severity: 'error', path: '', message: `cannot read configuration file: ${why}`, file }] };
  }
  return loadConfigText(text, file, registry, env);
}

/** Validates configuration text as if read from `file` (relative plugin paths resolve from its directory). */
export async function loadConfigText(text: string, file: string, registry: Registry, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  const src = parseYamlConfig(text, file, env);
  const issues = src.issues;
  if (src.issues.some((i) => i.severity === 'error' && i.message.startsWith('YAML:'))) return { issues };
  const checker = new Checker(src, registry, issues);
  const config = await checker.run(resolvePath(file));
  return { config: issues.some((i) => i.severity === 'error') ? undefined : config, issues };
}

class Checker {
  constructor(
    private readonly src: YamlSource,
    private readonly registry: Registry,
    private readonly issues: ConfigIssue[],
  ) {}

  private error(path: string, message: string, preferKey = false): void {
    this.issues.push({ severity: 'error', path, message, file: this.src.file, pos: positionOf(this.src, path, preferKey) });
  }
  private warn(path: string, message: string): void {
    this.issues.push({ severity: 'warning', path, message, file: this.src.file, pos: positionOf(this.src, path, true) });
  }
  private unknownKeys(obj: Record<string, unknown>, path: string, known: readonly string[], hint?: Record<string, string>): void {
    for (const key of Object.keys(obj)) {
      if (known.includes(key)) continue;
      const extra = hint?.[key] ? `; ${hint[key]}` : '';
      this.error(joinPath(path, key), `unknown key "${key}" (known keys: ${known.join(', ')})${extra}`, true);
    }
  }

  async run(absFile: string): Promise<AgentConfig | undefined> {
    const root = this.src.value;
    if (root === null || root === undefined) {
      this.error('', 'the configuration is empty (expected receivers, exporters and service.pipelines)');
      return undefined;
    }
    if (!isMapping(root)) {
      this.error('', `the configuration must be a mapping (got ${describe(root)})`);
      return undefined;
    }
    this.unknownKeys(root, '', TOP_LEVEL_KEYS, {
      extensions: 'extensions are not supported',
      connectors: 'connectors are not supported',
      pipelines: 'pipelines belong under "service"',
    });

    const plugins = await this.loadPlugins(root.plugins, dirname(absFile));

    const sections = new Map<ComponentKind, Map<string, ComponentEntry>>();
    const configured = new Map<ComponentKind, Set<string>>();
    for (const [section, kind] of SECTIONS) {
      const { entries, ids } = this.checkSection(root[section], section, kind);
      sections.set(kind, entries);
      configured.set(kind, ids);
    }

    const service = root.service;
    let pipelines: PipelineConfig[] = [];
    let telemetry: TelemetryConfig = { logs: { level: 'info' }, metrics: { address: DEFAULT_TELEMETRY_ADDRESS } };
    if (service === undefined || service === null) {
      this.error('service', 'missing: the configuration needs service.pipelines with at least one metrics pipeline');
    } else if (!isMapping(service)) {
      this.error('service', `must be a mapping (got ${describe(service)})`);
    } else {
      this.unknownKeys(service, 'service', ['telemetry', 'pipelines'], { extensions: 'extensions are not supported' });
      telemetry = this.checkTelemetry(service.telemetry);
      pipelines = this.checkPipelines(service.pipelines, configured);
    }

    // Configured but unused components are valid (as in the Collector) but not created.
    const used = new Set<string>();
    for (const p of pipelines) {
      for (const r of p.receivers) used.add(`receiver:${r}`);
      for (const r of p.processors) used.add(`processor:${r}`);
      for (const r of p.exporters) used.add(`exporter:${r}`);
    }
    for (const [section, kind] of SECTIONS) {
      for (const id of configured.get(kind)!) {
        if (!used.has(`${kind}:${id}`)) this.warn(joinPath(section, id), `${kind} "${id}" is configured but not used in any pipeline`);
      }
    }

    return {
      file: absFile,
      plugins,
      receivers: sections.get('receiver')!,
      processors: sections.get('processor')!,
      exporters: sections.get('exporter')!,
      pipelines,
      telemetry,
    };
  }

  private async loadPlugins(value: unknown, configDir: string): Promise<string[]> {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.error('plugins', `must be a list of file paths or package names (got ${describe(value)})`);
      return [];
    }
    const out: string[] = [];
    for (let i = 0; i < value.length; i++) {
      const spec: unknown = value[i];
      const path = joinPath('plugins', i);
      if (typeof spec !== 'string' || spec.trim() === '') {
        this.error(path, `must be a file path or a package name (got ${describe(spec)})`);
        continue;
      }
      try {
        await loadPlugin(this.registry, spec, configDir);
        out.push(spec);
      } catch (err) {
        this.error(path, (err as Error).message);
      }
    }
    return out;
  }

  private checkSection(value: unknown, section: string, kind: ComponentKind): { entries: Map<string, ComponentEntry>; ids: Set<string> } {
    const entries = new Map<string, ComponentEntry>();
    const ids = new Set<string>();
    if (value === undefined || value === null) return { entries, ids };
    if (!isMapping(value)) {
      this.error(section, `must be a mapping of ${kind} ids to their settings (got ${describe(value)})`);
      return { entries, ids };
    }
    for (const [id, userConfig] of Object.entries(value)) {
      const path = joinPath(section, id);
      ids.add(id);
      const { type, name } = parseComponentId(id);
      if (!ID_TYPE.test(type) || (name !== undefined && !ID_NAME.test(name))) {
        this.error(path, `invalid ${kind} id "${id}" (expected type[/name], type matching [a-z][a-z0-9_]*, e.g. "filter/shells")`, true);
        continue;
      }
      const registered = this.registry.get(kind, type);
      if (!registered) {
        const known = this.registry.list(kind).map((r) => r.factory.type);
        const elsewhere = (['receiver', 'processor', 'exporter'] as const).filter((k) => k !== kind && this.registry.get(k, type));
        const hint = elsewhere.length ? `; "${type}" is a ${elsewhere.join(' and ')} type` : '';
        this.error(path, `unknown ${kind} type "${type}" (known ${kind} types: ${known.length ? known.join(', ') : 'none'})${hint}`, true);
        continue;
      }
      const config = this.registry.validator.resolve(registered.factory, userConfig, path, this.src, this.issues);
      if (config !== undefined) entries.set(id, { id, kind, type, factory: registered.factory, config, path });
    }
    return { entries, ids };
  }

  private checkTelemetry(value: unknown): TelemetryConfig {
    const out: TelemetryConfig = { logs: { level: 'info' }, metrics: { address: DEFAULT_TELEMETRY_ADDRESS } };
    if (value === undefined || value === null) return out;
    if (!isMapping(value)) {
      this.error('service.telemetry', `must be a mapping (got ${describe(value)})`);
      return out;
    }
    this.unknownKeys(value, 'service.telemetry', ['logs', 'metrics']);
    const logs = value.logs;
    if (logs !== undefined && logs !== null) {
      if (!isMapping(logs)) this.error('service.telemetry.logs', `must be a mapping (got ${describe(logs)})`);
      else {
        this.unknownKeys(logs, 'service.telemetry.logs', ['level', 'encoding']);
        if (logs.level !== undefined && logs.level !== null) {
          if (typeof logs.level === 'string' && (LOG_LEVELS as readonly string[]).includes(logs.level.toLowerCase()))
            out.logs.level = logs.level.toLowerCase() as LogLevel;
          else this.error('service.telemetry.logs.level', `must be one of ${LOG_LEVELS.join(', ')} (got ${describe(logs.level)})`);
        }
        if (logs.encoding !== undefined && logs.encoding !== null) {
          if (typeof logs.encoding === 'string' && (LOG_ENCODINGS as readonly string[]).includes(logs.encoding))
            out.logs.encoding = logs.encoding as LogEncoding;
          else this.error('service.telemetry.logs.encoding', `must be one of ${LOG_ENCODINGS.join(', ')} (got ${describe(logs.encoding)})`);
        }
      }
    }
    const metrics = value.metrics;
    if (metrics !== undefined && metrics !== null) {
      if (!isMapping(metrics)) this.error('service.telemetry.metrics', `must be a mapping (got ${describe(metrics)})`);
      else {
        this.unknownKeys(metrics, 'service.telemetry.metrics', ['address']);
        const address = metrics.address;
        if (address === null || address === '') out.metrics.address = null;
        else if (address !== undefined) {
          if (typeof address === 'string' && parseAddress(address)) out.metrics.address = address;
          else this.error('service.telemetry.metrics.address', `must be host:port such as "127.0.0.1:8888", or "" to disable (got ${describe(address)})`);
        }
      }
    }
    return out;
  }

  private checkPipelines(value: unknown, configured: Map<ComponentKind, Set<string>>): PipelineConfig[] {
    const path = 'service.pipelines';
    if (value === undefined || value === null) {
      this.error(path, 'missing: at least one pipeline ("metrics" or "metrics/<name>") is required');
      return [];
    }
    if (!isMapping(value)) {
      this.error(path, `must be a mapping of pipeline ids to pipelines (got ${describe(value)})`);
      return [];
    }
    if (Object.keys(value).length === 0) this.error(path, 'at least one pipeline ("metrics" or "metrics/<name>") is required');
    const out: PipelineConfig[] = [];
    for (const [id, p] of Object.entries(value)) {
      const ppath = joinPath(path, id);
      const { type, name } = parseComponentId(id);
      if (type !== 'metrics' || (name !== undefined && !ID_NAME.test(name))) {
        const why = ['traces', 'logs', 'profiles'].includes(type) ? `; only metrics pipelines are supported` : '';
        this.error(ppath, `invalid pipeline id "${id}" (expected "metrics" or "metrics/<name>")${why}`, true);
        continue;
      }
      if (!isMapping(p)) {
        this.error(ppath, `must be a mapping with receivers, processors and exporters (got ${describe(p)})`);
        continue;
      }
      this.unknownKeys(p, ppath, ['receivers', 'processors', 'exporters', 'aggregation']);
      const receivers = this.checkRefs(p.receivers, ppath, 'receivers', 'receiver', configured, true);
      const processors = this.checkRefs(p.processors, ppath, 'processors', 'processor', configured, false);
      const exporters = this.checkRefs(p.exporters, ppath, 'exporters', 'exporter', configured, true);
      const agg = this.checkAggregation(p.aggregation, joinPath(ppath, 'aggregation'));
      out.push({ id, receivers, processors, exporters, ...agg });
    }
    return out;
  }

  private checkRefs(value: unknown, ppath: string, key: string, kind: ComponentKind, configured: Map<ComponentKind, Set<string>>, required: boolean): string[] {
    const path = joinPath(ppath, key);
    if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
      if (required) this.error(path, `a pipeline needs at least one ${kind}`, true);
      return [];
    }
    if (!Array.isArray(value)) {
      this.error(path, `must be a list of ${kind} ids (got ${describe(value)})`);
      return [];
    }
    const out: string[] = [];
    value.forEach((ref, i) => {
      const rpath = joinPath(path, i);
      if (typeof ref !== 'string') {
        this.error(rpath, `must be a ${kind} id (got ${describe(ref)})`);
        return;
      }
      if (!configured.get(kind)!.has(ref)) {
        this.error(rpath, `${kind} "${ref}" is not configured (add it under "${key}:")`);
        return;
      }
      if (out.includes(ref)) {
        this.error(rpath, `${kind} "${ref}" is listed twice in this pipeline`);
        return;
      }
      out.push(ref);
    });
    return out;
  }

  private checkAggregation(value: unknown, path: string): { seriesLimit: number; endedSeriesTtlMs: number } {
    const out = { seriesLimit: DEFAULT_SERIES_LIMIT, endedSeriesTtlMs: DEFAULT_ENDED_SERIES_TTL_MS };
    if (value === undefined || value === null) return out;
    if (!isMapping(value)) {
      this.error(path, `must be a mapping (got ${describe(value)})`);
      return out;
    }
    this.unknownKeys(value, path, ['series_limit', 'ended_series_ttl']);
    const limit = value.series_limit;
    if (limit !== undefined && limit !== null) {
      if (typeof limit === 'number' && Number.isInteger(limit) && limit >= 1) out.seriesLimit = limit;
      else this.error(joinPath(path, 'series_limit'), `must be an integer >= 1 (got ${describe(limit)})`);
    }
    const ttl = value.ended_series_ttl;
    if (ttl !== undefined && ttl !== null) {
      const tpath = joinPath(path, 'ended_series_ttl');
      if (typeof ttl !== 'string') this.error(tpath, `must be a duration such as "5m" (got ${describe(ttl)})`);
      else if (/^\s*-/.test(ttl)) this.error(tpath, `must not be negative (got "${ttl}")`);
      else {
        const ms = parseDuration(ttl);
        if (ms === undefined) this.error(tpath, `invalid duration "${ttl}" (expected e.g. 30s, 5m, 1h)`);
        else out.endedSeriesTtlMs = ms;
      }
    }
    return out;
  }
}
