/**
 * The `prometheus` pull exporter: serves the last collection it received as Prometheus text at
 * http://<endpoint>/metrics. Serialization is @opentelemetry/exporter-prometheus's
 * PrometheusSerializer (dots to underscores, `_total` on counters; attributes to labels; resource
 * attributes in `target_info`, or on every series with resource_to_telemetry_conversion). That
 * serializer adds no unit to names, so the names are first given the unit suffix of the
 * OpenTelemetry-to-Prometheus compatibility rules (prometheusMetricName, src/api): `process.cpu.time` in
 * `s` is served as `process_cpu_time_seconds_total`.
 *
 * Exponential histograms have no form in the Prometheus text format (native histograms exist only
 * in the protobuf exposition) and the serializer would drop them: they are served as classic
 * histograms instead, exactly (bucket i of scale s is `le` = base^(i+1), base = 2^(2^-s), plus
 * `le="0"` for the zero bucket). Their `le` set changes when the histogram's scale drops; explicit
 * buckets on the source give fixed ones.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import type { ExponentialHistogram, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import { AgentError, DataPointType, ErrorCode, parseListenAddress, prometheusMetricName, prometheusUnit } from '../../src/api/index.js';
import type { ComponentContext, Exporter, ResourceMetrics } from '../../src/api/index.js';
import type { PrometheusExporterConfig } from './config.js';

// Built-ins through getBuiltinModule and the OpenTelemetry package through require (its CommonJS
// build): an ES module import of node:http reads all its exports, and the lazy ones load undici,
// http2 and zlib (~15 MiB RSS on Node 26; docs/deploy.md "Memory").
const http = process.getBuiltinModule('node:http');
const { PrometheusSerializer } = createRequire(import.meta.url)('@opentelemetry/exporter-prometheus') as typeof import('@opentelemetry/exporter-prometheus');
type PrometheusSerializer = InstanceType<typeof PrometheusSerializer>;

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class PrometheusExporter implements Exporter {
  /** Prometheus counters are cumulative. */
  readonly temporality = 'cumulative' as const;
  private server: Server | undefined;
  private latest: ResourceMetrics | undefined;
  /** Text of `latest`, made on the first scrape after an export. */
  private text: string | undefined;
  private readonly serializer: PrometheusSerializer;
  private readonly scrapes;
  private convertedLogged = false;

  constructor(
    private readonly ctx: ComponentContext,
    private readonly config: PrometheusExporterConfig,
  ) {
    this.serializer = new PrometheusSerializer(config.namespace || undefined, false, config.resource_to_telemetry_conversion.enabled ? /.*/ : undefined);
    this.scrapes = ctx.telemetry.counter('scrapes', 'Requests served at /metrics', '{request}');
  }

  /** The address actually listened on (port 0 in the config picks a free one). */
  get address(): { host: string; port: number } | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? { host: a.address, port: a.port } : undefined;
  }

  async start(): Promise<void> {
    const listen = parseListenAddress(this.config.endpoint);
    if (!listen) throw new AgentError(ErrorCode.BAD_CONFIG, `prometheus exporter: endpoint "${this.config.endpoint}" is not host:port`);
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new AgentError(ErrorCode.CANNOT_LISTEN, `prometheus exporter: cannot listen on ${this.config.endpoint}: ${e.code ?? e.message}`)),
      );
      server.listen(listen.port, listen.host, () => resolve());
    });
    server.on('error', (e) => this.ctx.logger.warn('prometheus exporter server error', { key: 'server_error', error: String(e) }));
    this.server = server;
    const a = this.address!;
    this.ctx.logger.info('prometheus exporter serving /metrics', { address: `${a.host}:${a.port}` });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    this.scrapes.add(1);
    let body = '';
    if (this.latest) {
      try {
        this.text ??= this.serializer.serialize(this.latest);
        body = this.text;
      } catch (error) {
        this.ctx.logger.error('prometheus exporter could not serialize metrics', { key: 'serialize', error: String(error) });
        res.writeHead(500, { 'content-type': 'text/plain' }).end('serialization failed\n');
        return;
      }
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  export(metrics: ResourceMetrics): Promise<void> {
    this.latest = withPrometheusNames(
      classicHistograms(metrics, (names) => {
        if (this.convertedLogged) return;
        this.convertedLogged = true;
        this.ctx.logger.info('prometheus exporter: exponential histograms are served as classic histograms (the text format has no native histograms)', {
          metrics: names,
        });
      }),
    );
    this.text = undefined;
    return Promise.resolve();
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** An exponential histogram point as a classic one with the same buckets (exact). */
export function toClassicHistogram(h: ExponentialHistogram): Histogram {
  const base = 2 ** (2 ** -h.scale);
  const boundaries = [0];
  const counts = [h.zeroCount];
  h.positive.bucketCounts.forEach((n, k) => {
    boundaries.push(base ** (h.positive.offset + k + 1));
    counts.push(n);
  });
  counts.push(0); // (last boundary, +Inf]
  return { buckets: { boundaries, counts }, count: h.count, ...(h.sum !== undefined ? { sum: h.sum } : {}), min: h.min, max: h.max };
}

/** `metrics` with every exponential histogram converted by toClassicHistogram (others untouched). */
export function classicHistograms(metrics: ResourceMetrics, converted: (names: string[]) => void): ResourceMetrics {
  const names: string[] = [];
  const scopeMetrics = metrics.scopeMetrics.map((sm) => ({
    ...sm,
    metrics: sm.metrics.map((m): MetricData => {
      if (m.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) return m;
      names.push(m.descriptor.name);
      return {
        descriptor: m.descriptor,
        aggregationTemporality: m.aggregationTemporality,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: m.dataPoints.map((dp) => ({ ...dp, value: toClassicHistogram(dp.value) })),
      };
    }),
  }));
  if (names.length === 0) return metrics;
  converted(names);
  return { resource: metrics.resource, scopeMetrics };
}

/** `metrics` with Prometheus names (unit suffixes) and Prometheus units in the descriptors. */
export function withPrometheusNames(metrics: ResourceMetrics): ResourceMetrics {
  return {
    resource: metrics.resource,
    scopeMetrics: metrics.scopeMetrics.map((sm) => ({
      ...sm,
      metrics: sm.metrics.map((m): MetricData => {
        const gauge = m.dataPointType === DataPointType.GAUGE;
        const name = prometheusMetricName(m.descriptor.name, m.descriptor.unit, gauge);
        const unit = prometheusUnit(m.descriptor.unit, gauge);
        return name === m.descriptor.name && unit === m.descriptor.unit ? m : { ...m, descriptor: { ...m.descriptor, name, unit } };
      }),
    })),
  };
}
