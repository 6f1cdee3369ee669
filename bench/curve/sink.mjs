// An OTLP/HTTP metrics sink for bench/curve/export.mjs: reads each request body, answers 200 with
// an empty ExportMetricsServiceResponse, and counts requests and bytes. A separate process, so
// that its CPU is not the exporter's; no storage, so that a backend's indexing of 50,000 new
// series (minutes for VictoriaMetrics on a loaded 2-core VM) does not bound the benchmark.
// Prints "port N" when listening; on SIGTERM prints "requests N bytes N" and exits.
import { createServer } from 'node:http';

let requests = 0;
let bytes = 0;
const server = createServer((req, res) => {
  req.on('data', (d) => (bytes += d.length));
  req.on('end', () => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => console.log(`port ${server.address().port}`));
process.on('SIGTERM', () => {
  console.log(`requests ${requests} bytes ${bytes}`);
  process.exit(0);
});
