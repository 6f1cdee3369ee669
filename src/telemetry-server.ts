/**
 * The agent's HTTP endpoint: /metrics (self-telemetry in Prometheus text), /healthz (200 while the
 * process runs), /readyz (200 once every component started, 503 before that and during shutdown).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentError, ErrorCode, parseListenAddress } from './api/index.js';
import type { SelfTelemetry } from './telemetry.js';

export interface TelemetryServer {
  /** The address actually bound, `host:port` (the port is real when 0 was configured). */
  readonly address: string;
  close(): Promise<void>;
}

// Not `import ... from 'node:http'`: an ES module import of a built-in reads all its exports, and
// node:http's lazy ones load undici, http2 and zlib (~15 MiB RSS on Node 26; docs/deploy.md "Memory").
const { createServer } = process.getBuiltinModule('node:http');

export async function startTelemetryServer(address: string, telemetry: SelfTelemetry, isReady: () => boolean): Promise<TelemetryServer> {
  const parsed = parseListenAddress(address);
  if (!parsed) throw new AgentError(ErrorCode.BAD_CONFIG, `service.telemetry.metrics.address: invalid address "${address}"`);
  const server: Server = createServer((req, res) => {
    // One request per connection. With keep-alive, a scrape sent on an idle connection while the
    // event loop was busy for seconds (a big node's cycle) met the server's keep-alive timer,
    // which runs first, and got a reset ("fetch failed"); a scrape every 15-60 s gains nothing
    // from reusing a connection.
    res.setHeader('connection', 'close');
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      let body: string;
      try {
        body = telemetry.toPrometheus();
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`error: ${(err as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new AgentError(
          ErrorCode.CANNOT_LISTEN,
          `telemetry endpoint cannot listen on ${address}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.message}`,
        ),
      );
    };
    server.once('error', onError);
    server.listen(parsed.port, parsed.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
