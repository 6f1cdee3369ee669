/**
 * The `prometheus` pull exporter: serves the last collection it received as Prometheus text at
 * http://<endpoint>/metrics. Serialization is @opentelemetry/exporter-prometheus's
 * PrometheusSerializer (dots to underscores, `_total` on counters; attributes to labels; resource
 * attributes in `target_info`, or on every series with resource_to_telemetry_conversion). That
 * serializer adds no unit to names, so the names are first given the unit suffix of the
 * OpenTelemetry-to-Prometheus compatibility rules (prometheusMetricName): `process.cpu.time` in
 * `s` is served as `process_cpu_time_seconds_total`.
 *
 * Exponential histograms have no form in the Prometheus text format (native histograms exist only
 * in the protobuf exposition) and the serializer would drop them: they are served as classic
 * histograms instead, exactly (bucket i of scale s is `le` = base^(i+1), base = 2^(2^-s), plus
 * `le="0"` for the zero bucket). Their `le` set changes when the histogram's scale drops; explicit
 * buckets on the source give fixed ones.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { ExponentialHistogram, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import { AgentError, DataPointType, ErrorCode, parseListenAddress } from '../../src/api/index.js';
import type { ComponentContext, Exporter, ResourceMetrics } from '../../src/api/index.js';
import type { PrometheusExporterConfig } from './config.js';

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class PrometheusExporter implements Exporter {
  /** Prometheus counters are cumulative. */
  readonly temporality = 'cumulative' as const;
  private server: http.Server | undefined;
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

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
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

/** UCUM units and their Prometheus words (OpenTelemetry-to-Prometheus compatibility, "Metric metadata"). */
const UNIT_WORDS: Record<string, string> = {
  d: 'days',
  h: 'hours',
  min: 'minutes',
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  ns: 'nanoseconds',
  By: 'bytes',
  KiBy: 'kibibytes',
  MiBy: 'mebibytes',
  GiBy: 'gibibytes',
  TiBy: 'tebibytes',
  KBy: 'kilobytes',
  MBy: 'megabytes',
  GBy: 'gigabytes',
  TBy: 'terabytes',
  m: 'meters',
  V: 'volts',
  A: 'amperes',
  J: 'joules',
  W: 'watts',
  g: 'grams',
  Cel: 'celsius',
  Hz: 'hertz',
  '%': 'percent',
};
const PER_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

/**
 * The unit part of a Prometheus name: `s` -> `seconds`, `By/s` -> `bytes_per_second`; annotations
 * (`{process}`) and units outside the table (products such as `MiBy.s`) give none; a gauge in `1`
 * gives `ratio`.
 */
export function prometheusUnit(unit: string, gauge: boolean): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (u === '1') return gauge ? 'ratio' : '';
  const [main = '', per, ...rest] = u.split('/');
  if (rest.length > 0) return '';
  const mainWord = main === '' || main === '1' ? '' : UNIT_WORDS[main];
  if (mainWord === undefined) return '';
  if (per === undefined) return mainWord;
  const perWord = PER_WORDS[per] ?? UNIT_WORDS[per];
  if (perWord === undefined) return '';
  return mainWord === '' ? `per_${perWord}` : `${mainWord}_per_${perWord}`;
}

/**
 * The metric name with its unit suffix unless it already ends with it (the serializer then turns
 * dots into underscores and adds `_total` to monotonic sums).
 */
export function prometheusMetricName(name: string, unit: string, gauge: boolean): string {
  const suffix = prometheusUnit(unit, gauge);
  if (suffix === '') return name;
  const flat = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return flat.endsWith(`_${suffix}`) || flat.endsWith(`_${suffix}_total`) ? name : `${name}_${suffix}`;
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
