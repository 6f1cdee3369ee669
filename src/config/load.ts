/**
 * Loads and validates the agent's configuration file: top-level shape, plugins, every component's
 * config, the service (telemetry, pipelines). Every problem is reported at once.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { factorySignals, parseComponentId, parseDuration, SIGNALS } from '../api/index.js';
import type { ComponentFactory, ComponentKind, Signal } from '../api/index.js';
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
/** Logs batching defaults, as the Collector's batch processor. */
export const DEFAULT_SEND_BATCH_SIZE = 8192;
export const DEFAULT_BATCH_TIMEOUT_MS = 200;

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

interface PipelineBase {
  /** `metrics[/<name>]` or `logs[/<name>]`. */
  id: string;
  receivers: string[];
  processors: string[];
  exporters: string[];
}

export interface MetricsPipelineConfig extends PipelineBase {
  signal: 'metrics';
  seriesLimit: number;
  endedSeriesTtlMs: number;
}

export interface LogsPipelineConfig extends PipelineBase {
  signal: 'logs';
  /** A batch goes to the exporters once it holds this many records ... */
  sendBatchSize: number;
  /** ... or this long after its first record arrived. */
  batchTimeoutMs: number;
  /** Largest batch handed to an exporter (larger ones are split); 0 = no limit. */
  sendBatchMaxSize: number;
}

export type PipelineConfig = MetricsPipelineConfig | LogsPipelineConfig;

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
      this.error('service', 'missing: the configuration needs service.pipelines with at least one pipeline (metrics or logs)');
    } else if (!isMapping(service)) {
      this.error('service', `must be a mapping (got ${describe(service)})`);
    } else {
      this.unknownKeys(service, 'service', ['telemetry', 'pipelines'], { extensions: 'extensions are not supported' });
      telemetry = this.checkTelemetry(service.telemetry);
      pipelines = this.checkPipelines(service.pipelines, configured, sections);
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
      const spec = value[i];
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

  private checkPipelines(
    value: unknown,
    configured: Map<ComponentKind, Set<string>>,
    entries: Map<ComponentKind, Map<string, ComponentEntry>>,
  ): PipelineConfig[] {
    const path = 'service.pipelines';
    const wanted = 'at least one pipeline ("metrics[/<name>]" or "logs[/<name>]") is required';
    if (value === undefined || value === null) {
      this.error(path, `missing: ${wanted}`);
      return [];
    }
    if (!isMapping(value)) {
      this.error(path, `must be a mapping of pipeline ids to pipelines (got ${describe(value)})`);
      return [];
    }
    if (Object.keys(value).length === 0) this.error(path, wanted);
    const out: PipelineConfig[] = [];
    for (const [id, p] of Object.entries(value)) {
      const ppath = joinPath(path, id);
      const { type, name } = parseComponentId(id);
      if (!(SIGNALS as readonly string[]).includes(type) || (name !== undefined && !ID_NAME.test(name))) {
        const why = ['traces', 'profiles'].includes(type) ? `; ${type} pipelines are not supported` : '';
        this.error(ppath, `invalid pipeline id "${id}" (expected "metrics", "metrics/<name>", "logs" or "logs/<name>")${why}`, true);
        continue;
      }
      const signal = type as Signal;
      if (!isMapping(p)) {
        this.error(ppath, `must be a mapping with receivers, processors and exporters (got ${describe(p)})`);
        continue;
      }
      const own = signal === 'metrics' ? 'aggregation' : 'batch';
      const other = signal === 'metrics' ? 'batch' : 'aggregation';
      this.unknownKeys(p, ppath, ['receivers', 'processors', 'exporters', own], {
        [other]: `"${other}" belongs to ${other === 'batch' ? 'logs' : 'metrics'} pipelines`,
      });
      const refs = (key: 'receivers' | 'processors' | 'exporters', kind: ComponentKind, required: boolean) =>
        this.checkRefs(p[key], ppath, key, kind, configured, required, signal, entries.get(kind)!);
      const receivers = refs('receivers', 'receiver', true);
      const processors = refs('processors', 'processor', false);
      const exporters = refs('exporters', 'exporter', true);
      if (signal === 'metrics') {
        out.push({ signal, id, receivers, processors, exporters, ...this.checkAggregation(p.aggregation, joinPath(ppath, 'aggregation')) });
      } else {
        out.push({ signal, id, receivers, processors, exporters, ...this.checkBatch(p.batch, joinPath(ppath, 'batch')) });
      }
    }
    return out;
  }

  private checkRefs(
    value: unknown,
    ppath: string,
    key: string,
    kind: ComponentKind,
    configured: Map<ComponentKind, Set<string>>,
    required: boolean,
    signal: Signal,
    entries: Map<string, ComponentEntry>,
  ): string[] {
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
      // A component whose own config failed has no entry; its errors are already reported.
      const entry = entries.get(ref);
      if (entry) {
        const supported = factorySignals(entry.factory);
        if (!supported.includes(signal)) {
          this.error(rpath, `${kind} "${ref}" does not support ${signal} (it supports ${supported.join(' and ')})`);
          return;
        }
      }
      out.push(ref);
    });
    return out;
  }

  private checkBatch(value: unknown, path: string): { sendBatchSize: number; batchTimeoutMs: number; sendBatchMaxSize: number } {
    const out = { sendBatchSize: DEFAULT_SEND_BATCH_SIZE, batchTimeoutMs: DEFAULT_BATCH_TIMEOUT_MS, sendBatchMaxSize: 0 };
    if (value === undefined || value === null) return out;
    if (!isMapping(value)) {
      this.error(path, `must be a mapping (got ${describe(value)})`);
      return out;
    }
    this.unknownKeys(value, path, ['send_batch_size', 'send_batch_max_size', 'timeout']);
    const int = (key: string, min: number): number | undefined => {
      const v = value[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v === 'number' && Number.isInteger(v) && v >= min) return v;
      this.error(joinPath(path, key), `must be an integer >= ${min} (got ${describe(v)})`);
      return undefined;
    };
    out.sendBatchSize = int('send_batch_size', 1) ?? out.sendBatchSize;
    out.sendBatchMaxSize = int('send_batch_max_size', 0) ?? out.sendBatchMaxSize;
    if (out.sendBatchMaxSize !== 0 && out.sendBatchMaxSize < out.sendBatchSize) {
      this.error(joinPath(path, 'send_batch_max_size'), `must be 0 (no limit) or at least send_batch_size (${out.sendBatchSize})`);
    }
    const ms = this.checkDuration(value.timeout, joinPath(path, 'timeout'), '200ms');
    if (ms !== undefined) {
      if (ms <= 0) this.error(joinPath(path, 'timeout'), 'must be more than 0');
      else out.batchTimeoutMs = ms;
    }
    return out;
  }

  /** A duration value in milliseconds; undefined when absent or wrong (reported). */
  private checkDuration(value: unknown, path: string, example: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') {
      this.error(path, `must be a duration such as "${example}" (got ${describe(value)})`);
      return undefined;
    }
    if (/^\s*-/.test(value)) {
      this.error(path, `must not be negative (got "${value}")`);
      return undefined;
    }
    const ms = parseDuration(value);
    if (ms === undefined) this.error(path, `invalid duration "${value}" (expected e.g. 200ms, 30s, 5m, 1h)`);
    return ms;
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
    const ttl = this.checkDuration(value.ended_series_ttl, joinPath(path, 'ended_series_ttl'), '5m');
    if (ttl !== undefined) out.endedSeriesTtlMs = ttl;
    return out;
  }
}
