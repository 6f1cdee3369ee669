/**
 * The `prometheus` pull exporter: serves the last collection it received as Prometheus text at
 * http://<endpoint>/metrics. Serialization is @opentelemetry/exporter-prometheus's
 * PrometheusSerializer (names: dots to underscores, `_total` on counters; attributes to labels;
 * resource attributes in `target_info`, or on every series with resource_to_telemetry_conversion).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { ComponentContext, Exporter, ResourceMetrics } from '../../src/api/index.js';
import { parseListenAddress, type PrometheusExporterConfig } from './config.js';

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
    if (!listen) throw new Error(`prometheus exporter: endpoint "${this.config.endpoint}" is not host:port`);
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`prometheus exporter: cannot listen on ${this.config.endpoint}: ${e.code ?? e.message}`)),
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
    this.latest = metrics;
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
