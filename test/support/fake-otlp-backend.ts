/**
 * A fake OTLP/HTTP backend for fault tests: it answers each request with the status (and headers)
 * the test chooses, and keeps when each request arrived, what it answered and the bodies of the
 * requests it accepted (200).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface FakeOtlpBackend {
  /** http://127.0.0.1:PORT (append /v1/metrics or /v1/logs for a signal's endpoint). */
  url: string;
  /** Arrival times (ms, performance.now()) of every request, in order. */
  arrivals: number[];
  /** Status answered to each request. */
  answers: number[];
  /** Bodies of the requests answered 200, in arrival order. */
  accepted: Buffer[];
  close(): Promise<void>;
}

export type Answer = (i: number) => { status: number; headers?: Record<string, string> };

/**
 * `answer(i)` gives the answer to the i-th request (0-based). `encoding`: what an accepted
 * request's empty Export*ServiceResponse is written in (an empty protobuf body, or `{}`).
 */
export async function fakeOtlpBackend(answer: Answer, encoding: 'protobuf' | 'json', port = 0): Promise<FakeOtlpBackend> {
  const arrivals: number[] = [];
  const answers: number[] = [];
  const accepted: Buffer[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const i = arrivals.length;
    arrivals.push(performance.now());
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const a = answer(i);
      answers.push(a.status);
      if (a.status === 200) accepted.push(Buffer.concat(chunks));
      const type = encoding === 'json' ? 'application/json' : 'application/x-protobuf';
      res.writeHead(a.status, { 'content-type': type, ...a.headers });
      res.end(a.status === 200 && encoding === 'json' ? '{}' : '');
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${bound}`,
    arrivals,
    answers,
    accepted,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
