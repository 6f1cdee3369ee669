/**
 * Configuration of the `otlp` exporter: the schema the host validates, and the resolution of the
 * effective settings from the config and the OTEL_EXPORTER_OTLP_* environment variables.
 *
 * Keys that an environment variable can also set have no default in `defaultConfig()`: a value
 * present in the config is an explicit choice and wins; an absent one falls back to the variable,
 * then to the default documented in README.md.
 */
import { isIPv6 } from 'node:net';
import {
  AgentError,
  ErrorCode,
  EXPORTER_HELPER_DEFAULTS,
  exporterHelperConfigProperties,
  parseDuration,
  resolveExporterHelperSettings,
  type ConfigProblem,
  type ConfigSchema,
  type ExporterHelperSettings,
  type Signal,
} from '../../src/api/index.js';

export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc';
export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json', 'grpc'];

export interface OtlpRetryConfig {
  enabled?: boolean;
  /** Milliseconds (the host converts `5s`). */
  initial_interval?: number | string;
  max_interval?: number | string;
  max_elapsed_time?: number | string;
}

export interface OtlpQueueConfig {
  enabled?: boolean;
  queue_size?: number;
  queue_items?: number;
  /** Items (data points, log records) per request. */
  batch?: { max_size?: number };
}

export interface OtlpExporterConfig {
  endpoint?: string | null;
  metrics_endpoint?: string | null;
  logs_endpoint?: string | null;
  protocol?: OtlpProtocol;
  headers?: Record<string, string>;
  compression?: 'gzip' | 'none';
  /** Milliseconds (the host converts `10s`). */
  timeout?: number | string;
  retry_on_failure?: OtlpRetryConfig;
  sending_queue?: OtlpQueueConfig;
  temporality?: 'cumulative' | 'delta';
  tls?: OtlpTlsConfig;
}

export interface OtlpTlsConfig {
  /** PEM file of the CA(s) that signed the backend's certificate (else the system's CAs). */
  ca_file?: string;
  /** Client certificate (PEM) and its key, for mutual TLS. */
  cert_file?: string;
  key_file?: string;
  /** Accept any server certificate. For tests only. */
  insecure_skip_verify?: boolean;
}

export const DEFAULTS = {
  protocol: 'http/protobuf' as OtlpProtocol,
  compression: 'none' as const,
  timeoutMs: EXPORTER_HELPER_DEFAULTS.timeoutMs,
  retry: EXPORTER_HELPER_DEFAULTS.retry,
  queue: EXPORTER_HELPER_DEFAULTS.queue,
  temporality: 'cumulative' as const,
};

export function defaultOtlpConfig(): OtlpExporterConfig {
  return {};
}

const urlSchema = (description: string): ConfigSchema => ({ type: ['string', 'null'], description });

export const otlpConfigSchema: ConfigSchema = {
  type: 'object',
  properties: {
    endpoint: urlSchema('Base URL; /v1/metrics or /v1/logs is appended for the HTTP protocols. Empty: see README.'),
    metrics_endpoint: urlSchema('Full URL of the metrics endpoint; wins over endpoint.'),
    logs_endpoint: urlSchema('Full URL of the logs endpoint; wins over endpoint.'),
    protocol: { type: 'string', enum: [...OTLP_PROTOCOLS] },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    compression: { type: 'string', enum: ['gzip', 'none'] },
    ...exporterHelperConfigProperties,
    temporality: { type: 'string', enum: ['cumulative', 'delta'] },
    tls: {
      type: 'object',
      properties: {
        ca_file: { type: 'string', minLength: 1 },
        cert_file: { type: 'string', minLength: 1 },
        key_file: { type: 'string', minLength: 1 },
        insecure_skip_verify: { type: 'boolean' },
      },
    },
  },
};

/** A config or environment value that is not an http(s) URL, as a message naming what holds it. */
export function checkUrl(value: string, where: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${where}: "${value}" is not a URL (expected e.g. http://collector:4318)`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `${where}: "${value}" must use http:// or https://`;
  }
  return undefined;
}

/** gRPC endpoints may be written `host:port`, as in the Collector's otlp exporter. */
const HOST_PORT_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

function withGrpcScheme(value: string, protocol: string | undefined): string {
  return protocol === 'grpc' && HOST_PORT_RE.test(value) ? `http://${value}` : value;
}

const URL_WITH_BARE_HOST = /^(https?:\/\/)([0-9a-fA-F:.]+):(\d{1,5})(\/.*)?$/;

/**
 * `http://fd00::7:4318` -> `http://[fd00::7]:4318`. An IPv6 address in a URL needs brackets, but
 * `http://${env:K8S_NODE_IP}:4318` (the chart's node-local default) expands to a bare one on an
 * IPv6 node; the last `:port` is the port (a URL without brackets has no other reading).
 */
export function bracketIpv6Host(value: string): string {
  const m = URL_WITH_BARE_HOST.exec(value);
  return m && isIPv6(m[2]!) ? `${m[1]!}[${m[2]!}]:${m[3]!}${m[4] ?? ''}` : value;
}

export function validateOtlpConfig(config: OtlpExporterConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const key of ['endpoint', 'metrics_endpoint', 'logs_endpoint'] as const) {
    const value = config[key];
    if (value == null || value === '') continue;
    const message = checkUrl(withGrpcScheme(bracketIpv6Host(value.trim()), config.protocol), key);
    if (message) problems.push({ path: key, message: message.slice(key.length + 2) });
  }
  const tls = config.tls;
  if (tls && (tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    problems.push({ path: tls.cert_file === undefined ? 'tls.cert_file' : 'tls.key_file', message: 'cert_file and key_file go together (mutual TLS)' });
  }
  const retry = config.retry_on_failure;
  if (retry) {
    const initial = toMs(retry.initial_interval);
    const max = toMs(retry.max_interval);
    if (initial !== undefined && max !== undefined && initial > max) {
      problems.push({ path: 'retry_on_failure.initial_interval', message: 'must not exceed max_interval' });
    }
  }
  return problems;
}

/** Durations arrive as milliseconds from the host; strings are accepted too (defensive). */
export function toMs(value: number | string | undefined | null): number | undefined {
  if (value == null) return undefined;
  if (typeof value === 'number') return value;
  return parseDuration(value);
}

export interface ResolvedOtlpSettings {
  signal: Signal;
  /** Undefined when no endpoint is configured anywhere: the exporter is idle. */
  url: string | undefined;
  /** Which key or variable the URL came from (for messages). */
  urlSource: string;
  protocol: OtlpProtocol;
  headers: Record<string, string>;
  compression: 'gzip' | 'none';
  timeoutMs: number;
  retry: { enabled: boolean; initialIntervalMs: number; maxIntervalMs: number; maxElapsedTimeMs: number };
  queue: ExporterHelperSettings['queue'];
  temporality: 'cumulative' | 'delta';
  /** Files for TLS, each with the key or variable it came from (for error messages). */
  tls: {
    ca?: { file: string; from: string };
    cert?: { file: string; from: string };
    key?: { file: string; from: string };
    insecureSkipVerify: boolean;
  };
}

/** A setting (config key or OTEL_* variable) that cannot be used; the message names it. */
function configError(message: string): AgentError {
  return new AgentError(ErrorCode.BAD_CONFIG, message);
}

type Env = Record<string, string | undefined>;

function envValue(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** `k1=v1,k2=v2` with percent-encoded values (the OTEL_EXPORTER_OTLP_HEADERS format). */
export function parseHeaderList(text: string | undefined, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw configError(`${where}: entry without "key=value" (value not shown)`);
    const key = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      /* keep the raw value: the spec allows it */
    }
    out[key] = value;
  }
  return out;
}

function appendSignalPath(base: string, signal: Signal): string {
  return base.endsWith('/') ? `${base}v1/${signal}` : `${base}/v1/${signal}`;
}

/**
 * The effective settings for one signal: explicit config first, then the signal's variable
 * (OTEL_EXPORTER_OTLP_METRICS_* or _LOGS_*), then the generic one, then the default. Throws
 * an AgentError (bad_config) naming the key or variable at fault.
 */
export function resolveOtlpSettings(config: OtlpExporterConfig, env: Env = process.env, signal: Signal = 'metrics'): ResolvedOtlpSettings {
  const SIG = signal === 'metrics' ? 'METRICS' : 'LOGS';
  const protocolText = config.protocol ?? envValue(env, `OTEL_EXPORTER_OTLP_${SIG}_PROTOCOL`) ?? envValue(env, 'OTEL_EXPORTER_OTLP_PROTOCOL');
  let protocol = DEFAULTS.protocol;
  if (protocolText !== undefined) {
    if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocolText)) {
      const where = config.protocol
        ? 'protocol'
        : env[`OTEL_EXPORTER_OTLP_${SIG}_PROTOCOL`]
          ? `OTEL_EXPORTER_OTLP_${SIG}_PROTOCOL`
          : 'OTEL_EXPORTER_OTLP_PROTOCOL';
      throw configError(`${where}: "${protocolText}" is not one of ${OTLP_PROTOCOLS.join(', ')}`);
    }
    protocol = protocolText as OtlpProtocol;
  }
  const isHttp = protocol !== 'grpc';

  // Endpoint: a full URL is taken as is; a base URL gets /v1/metrics or /v1/logs for the HTTP
  // protocols (gRPC addresses the service by method name, not by path).
  let url: string | undefined;
  let urlSource = '';
  const candidates: Array<[string, string | undefined | null, boolean]> = [
    [`${signal}_endpoint`, signal === 'metrics' ? config.metrics_endpoint : config.logs_endpoint, true],
    ['endpoint', config.endpoint, false],
    [`OTEL_EXPORTER_OTLP_${SIG}_ENDPOINT`, envValue(env, `OTEL_EXPORTER_OTLP_${SIG}_ENDPOINT`), true],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', envValue(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'), false],
  ];
  for (const [where, value, full] of candidates) {
    if (value == null || value.trim() === '') continue;
    const v = withGrpcScheme(bracketIpv6Host(value.trim()), protocol);
    const problem = checkUrl(v, where);
    if (problem) throw configError(problem);
    url = full || !isHttp ? v : appendSignalPath(v, signal);
    urlSource = where;
    break;
  }

  const headers: Record<string, string> = {
    ...parseHeaderList(envValue(env, 'OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS'),
    ...parseHeaderList(envValue(env, `OTEL_EXPORTER_OTLP_${SIG}_HEADERS`), `OTEL_EXPORTER_OTLP_${SIG}_HEADERS`),
    ...(config.headers ?? {}),
  };

  const compressionVar =
    envValue(env, `OTEL_EXPORTER_OTLP_${SIG}_COMPRESSION`) !== undefined ? `OTEL_EXPORTER_OTLP_${SIG}_COMPRESSION` : 'OTEL_EXPORTER_OTLP_COMPRESSION';
  const compressionText = config.compression ?? envValue(env, compressionVar);
  if (compressionText !== undefined && compressionText !== 'gzip' && compressionText !== 'none') {
    throw configError(`${compressionVar}: "${compressionText}" is not gzip or none`);
  }
  const compression = compressionText ?? DEFAULTS.compression;

  let timeoutMs = toMs(config.timeout);
  if (timeoutMs === undefined) {
    for (const name of [`OTEL_EXPORTER_OTLP_${SIG}_TIMEOUT`, 'OTEL_EXPORTER_OTLP_TIMEOUT']) {
      const text = envValue(env, name);
      if (text === undefined) continue;
      const ms = Number(text);
      if (!Number.isFinite(ms) || ms <= 0) throw configError(`${name}: "${text}" is not a positive number of milliseconds`);
      timeoutMs = ms;
      break;
    }
  }

  // Metrics only; logs have no temporality (the value is then unused).
  const temporalityText = config.temporality ?? envValue(env, 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE')?.toLowerCase();
  let temporality: 'cumulative' | 'delta' = DEFAULTS.temporality;
  if (temporalityText !== undefined) {
    // `lowmemory` asks for delta counters (and cumulative up-down counters, which we do not have).
    if (temporalityText === 'delta' || temporalityText === 'lowmemory') temporality = 'delta';
    else if (temporalityText === 'cumulative') temporality = 'cumulative';
    else {
      throw configError(`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "${temporalityText}" is not cumulative, delta or lowmemory`);
    }
  }

  const tlsFile = (key: 'ca_file' | 'cert_file' | 'key_file', envSuffix: string) => {
    const fromConfig = config.tls?.[key];
    if (fromConfig) return { file: fromConfig, from: `tls.${key}` };
    for (const name of [`OTEL_EXPORTER_OTLP_${SIG}_${envSuffix}`, `OTEL_EXPORTER_OTLP_${envSuffix}`]) {
      const v = envValue(env, name);
      if (v) return { file: v, from: name };
    }
    return undefined;
  };
  const tls: ResolvedOtlpSettings['tls'] = { insecureSkipVerify: config.tls?.insecure_skip_verify ?? false };
  const ca = tlsFile('ca_file', 'CERTIFICATE');
  const cert = tlsFile('cert_file', 'CLIENT_CERTIFICATE');
  const key = tlsFile('key_file', 'CLIENT_KEY');
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;

  const r = config.retry_on_failure ?? {};
  const helper = resolveExporterHelperSettings({
    sending_queue: config.sending_queue,
    retry_on_failure: {
      enabled: r.enabled,
      initial_interval: toMs(r.initial_interval),
      max_interval: toMs(r.max_interval),
      max_elapsed_time: toMs(r.max_elapsed_time),
    },
  });
  return {
    signal,
    url,
    urlSource,
    protocol,
    headers,
    compression,
    timeoutMs: timeoutMs ?? DEFAULTS.timeoutMs,
    retry: helper.retry,
    queue: helper.queue,
    temporality,
    tls,
  };
}
