import { listenAddressSchema, type ConfigSchema } from '../../src/api/index.js';

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
    endpoint: listenAddressSchema({ description: 'host:port to serve /metrics on' }),
    namespace: { type: 'string', pattern: '^([a-zA-Z_][a-zA-Z0-9_]*)?$' },
    resource_to_telemetry_conversion: { type: 'object', properties: { enabled: { type: 'boolean' } } },
  },
};
