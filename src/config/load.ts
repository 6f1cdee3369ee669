/**
 * Loads and validates the agent's configuration file: top-level shape, plugins, every component's
 * config, the service (telemetry, pipelines). Every problem is reported at once. The service's
 * settings are checked by schemas, with the machinery of component configs (component-config.ts);
 * what a schema cannot say (references between sections, pipeline ids) is checked here.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { durationSchema, factorySignals, parseComponentId, SIGNALS } from '../api/index.js';
import type { ComponentFactory, ComponentKind, ConfigSchema, Signal } from '../api/index.js';
import { loadPlugin } from '../plugins.js';
import type { Registry } from '../registry.js';
import { describe, isPlainObject as isMapping, positionOf } from './component-config.js';
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

// The service's schemas. Each part is checked on its own, so that a wrong value in one does not
// hide the problems of another (references are checked in code once a pipeline's shape is right).
const SERVICE_SCHEMA: ConfigSchema = {
  type: 'object',
  unknownKeyHints: { extensions: 'extensions are not supported' },
  properties: { telemetry: {}, pipelines: {} },
};
const TELEMETRY_SCHEMA: ConfigSchema = {
  type: ['object', 'null'],
  properties: {
    logs: { type: ['object', 'null'], properties: { level: { enum: [...LOG_LEVELS] }, encoding: { enum: [...LOG_ENCODINGS] } } },
    // "" or null disables the endpoint.
    metrics: { type: ['object', 'null'], properties: { address: { type: ['string', 'null'], listenAddress: true, allowEmpty: true } } },
  },
};
const PIPELINES_SCHEMA: ConfigSchema = { type: 'object', typeMessage: 'must be a mapping of pipeline ids to pipelines', additionalProperties: true };

const refList = (kind: ComponentKind): ConfigSchema => ({
  type: ['array', 'null'],
  typeMessage: `must be a list of ${kind} ids`,
  items: { type: 'string', typeMessage: `must be a ${kind} id` },
});
/** Per signal: the pipeline's shape, and its own settings section (`aggregation` or `batch`). */
const PIPELINE_SCHEMAS: Record<Signal, { shape: ConfigSchema; section: 'aggregation' | 'batch'; settings: ConfigSchema }> = {
  metrics: {
    shape: pipelineShape('aggregation', 'batch', 'logs'),
    section: 'aggregation',
    settings: { type: ['object', 'null'], properties: { series_limit: { type: 'integer', minimum: 1 }, ended_series_ttl: durationSchema() } },
  },
  logs: {
    shape: pipelineShape('batch', 'aggregation', 'metrics'),
    section: 'batch',
    settings: {
      type: ['object', 'null'],
      properties: {
        send_batch_size: { type: 'integer', minimum: 1 },
        send_batch_max_size: { type: 'integer', minimum: 0 },
        timeout: durationSchema({ minMs: 1 }),
      },
    },
  },
};
function pipelineShape(own: string, other: string, otherSignal: Signal): ConfigSchema {
  return {
    type: 'object',
    typeMessage: 'must be a mapping with receivers, processors and exporters',
    unknownKeyHints: { [other]: `"${other}" belongs to ${otherSignal} pipelines` },
    properties: { receivers: refList('receiver'), processors: refList('processor'), exporters: refList('exporter'), [own]: {} },
  };
}

interface TelemetryValue {
  logs?: { level?: LogLevel; encoding?: LogEncoding } | null;
  metrics?: { address?: string | null } | null;
}
interface PipelineValue {
  receivers?: string[] | null;
  processors?: string[] | null;
  exporters?: string[] | null;
  aggregation?: unknown;
  batch?: unknown;
}
interface AggregationValue {
  series_limit?: number;
  ended_series_ttl?: number;
}
interface BatchValue {
  send_batch_size?: number;
  send_batch_max_size?: number;
  timeout?: number;
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

    let pipelines: PipelineConfig[] = [];
    let telemetry: TelemetryConfig = { logs: { level: 'info' }, metrics: { address: DEFAULT_TELEMETRY_ADDRESS } };
    if (root.service === undefined || root.service === null) {
      this.error('service', 'missing: the configuration needs service.pipelines with at least one pipeline (metrics or logs)');
    } else {
      const check = (schema: ConfigSchema, value: unknown, path: string) => this.registry.validator.check(schema, {}, value, path, this.src, this.issues);
      const service = check(SERVICE_SCHEMA, root.service, 'service') as { telemetry?: unknown; pipelines?: unknown } | undefined;
      if (service) {
        const t = check(TELEMETRY_SCHEMA, lowercaseLogLevel(service.telemetry), 'service.telemetry') as TelemetryValue | null | undefined;
        telemetry = {
          logs: { level: t?.logs?.level ?? 'info', ...(t?.logs?.encoding ? { encoding: t.logs.encoding } : {}) },
          metrics: { address: telemetryAddress(t?.metrics?.address) },
        };
        pipelines = this.checkPipelines(service.pipelines, configured, sections);
      }
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
    if (this.registry.validator.check(PIPELINES_SCHEMA, {}, value, path, this.src, this.issues) === undefined || !isMapping(value)) return [];
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
      // A pipeline written as `metrics:` with nothing after it is a mapping without keys.
      const schemas = PIPELINE_SCHEMAS[signal];
      const check = (schema: ConfigSchema, v: unknown, at: string) => this.registry.validator.check(schema, {}, v, at, this.src, this.issues);
      const pipeline = check(schemas.shape, p, ppath) as PipelineValue | undefined;
      if (!pipeline) continue;
      const settings = check(schemas.settings, pipeline[schemas.section], joinPath(ppath, schemas.section));
      if (signal === 'logs') this.checkBatchSizes(pipeline.batch, joinPath(ppath, 'batch'));
      const refs = (key: 'receivers' | 'processors' | 'exporters', kind: ComponentKind, required: boolean) =>
        this.checkRefs(pipeline[key], ppath, key, kind, configured, required, signal, entries.get(kind)!);
      const receivers = refs('receivers', 'receiver', true);
      const processors = refs('processors', 'processor', false);
      const exporters = refs('exporters', 'exporter', true);
      if (signal === 'metrics') {
        const a = settings as AggregationValue | null | undefined;
        out.push({
          signal,
          id,
          receivers,
          processors,
          exporters,
          seriesLimit: a?.series_limit ?? DEFAULT_SERIES_LIMIT,
          endedSeriesTtlMs: a?.ended_series_ttl ?? DEFAULT_ENDED_SERIES_TTL_MS,
        });
      } else {
        const b = settings as BatchValue | null | undefined;
        out.push({
          signal,
          id,
          receivers,
          processors,
          exporters,
          sendBatchSize: b?.send_batch_size ?? DEFAULT_SEND_BATCH_SIZE,
          sendBatchMaxSize: b?.send_batch_max_size ?? 0,
          batchTimeoutMs: b?.timeout ?? DEFAULT_BATCH_TIMEOUT_MS,
        });
      }
    }
    return out;
  }

  /** What the schema cannot say: a batch limit below the batch size (checked even when other settings are wrong). */
  private checkBatchSizes(batch: unknown, path: string): void {
    if (!isMapping(batch)) return;
    const size = Number.isInteger(batch.send_batch_size) ? (batch.send_batch_size as number) : DEFAULT_SEND_BATCH_SIZE;
    const max = batch.send_batch_max_size;
    if (typeof max === 'number' && Number.isInteger(max) && max > 0 && max < size) {
      this.error(joinPath(path, 'send_batch_max_size'), `must be 0 (no limit) or at least send_batch_size (${size})`);
    }
  }

  private checkRefs(
    value: string[] | null | undefined,
    ppath: string,
    key: string,
    kind: ComponentKind,
    configured: Map<ComponentKind, Set<string>>,
    required: boolean,
    signal: Signal,
    entries: Map<string, ComponentEntry>,
  ): string[] {
    const path = joinPath(ppath, key);
    if (value === undefined || value === null || value.length === 0) {
      if (required) this.error(path, `a pipeline needs at least one ${kind}`, true);
      return [];
    }
    const out: string[] = [];
    value.forEach((ref, i) => {
      const rpath = joinPath(path, i);
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
}

/** Log levels are case-insensitive (`INFO` as in the Collector's docs): lowered before the schema sees them. */
function lowercaseLogLevel(service: unknown): unknown {
  if (!isMapping(service) || !isMapping(service.telemetry) || !isMapping(service.telemetry.logs)) return service;
  const level = service.telemetry.logs.level;
  if (typeof level !== 'string') return service;
  return { ...service, telemetry: { ...service.telemetry, logs: { ...service.telemetry.logs, level: level.toLowerCase() } } };
}

/** The telemetry endpoint's address: the default when absent, null (disabled) for "" or null. */
function telemetryAddress(address: string | null | undefined): string | null {
  if (address === undefined) return DEFAULT_TELEMETRY_ADDRESS;
  return address === null || address.trim() === '' ? null : address;
}
