import type { ConfigProblem, ConfigSchema } from '../../src/api/index.js';

export interface PrometheusExporterConfig {
  /** host:port to listen on; /metrics is served there. */
  endpoint: string;
  /** Prefix added to every metric name (`namespace_`), empty for none. */
  namespace: string;
  /** Copy the resource attributes (service.name, host.name, k8s.node.name ...) onto every series as labels. */
  resource_to_telemetry_conversion: { enabled: boolean };
}

export function defaultPrometheusConfig(): PrometheusExporterConfig {
  return { endpoint: '127.0.0.1:9464', namespace: '', resource_to_telemetry_conversion: { enabled: false } };
}

export const prometheusConfigSchema: ConfigSchema = {
  type: 'object',
  properties: {
    endpoint: { type: 'string', description: 'host:port to serve /metrics on' },
    namespace: { type: 'string', pattern: '^([a-zA-Z_][a-zA-Z0-9_]*)?$' },
    resource_to_telemetry_conversion: { type: 'object', properties: { enabled: { type: 'boolean' } } },
  },
};

/** `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseListenAddress(endpoint: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(endpoint.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { host, port };
}

export function validatePrometheusConfig(config: PrometheusExporterConfig): ConfigProblem[] {
  if (parseListenAddress(config.endpoint)) return [];
  return [{ path: 'endpoint', message: `"${config.endpoint}" is not host:port (e.g. 127.0.0.1:9464 or 0.0.0.0:9464)` }];
}
