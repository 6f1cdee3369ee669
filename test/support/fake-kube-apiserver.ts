/**
 * A local HTTP server that answers the pod list and watch requests of the Kubernetes API the way
 * a real API server does, for tests (no cluster exists here). What it mimics:
 *
 * - `GET /api/v1/pods[?fieldSelector=spec.nodeName%3D<node>]`: a `PodList` (`kind`, `apiVersion`,
 *   `metadata.resourceVersion`, `items` without their own kind/apiVersion, as the server sends).
 * - `GET /api/v1/pods?watch=true&resourceVersion=<rv>`: a chunked stream of newline-delimited
 *   JSON events `{"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}` with
 *   every change after `<rv>`, then live changes. Objects in events carry kind/apiVersion. An `rv`
 *   older than the retained history gets `200` + an `ERROR` event holding a `Status` with code
 *   410, reason `Expired`, then the stream ends (what the API server does for a compacted rv).
 *   `allowWatchBookmarks=true` enables BOOKMARK events (sent by `sendBookmark()`, or every
 *   `bookmarkEveryMs` as the API server's watch cache does about once a minute), and
 *   `timeoutSeconds` ends the stream cleanly after that long. With `expireWithHttpStatus` an
 *   expired rv is answered with HTTP 410 and a `Status` body instead (what a watch served from
 *   etcd rather than the watch cache answers). With `rechunk` the stream's chunks do not follow
 *   event boundaries: events are cut at random bytes and sometimes several go in one chunk (as
 *   through a proxy that re-buffers).
 * - Lists are never paginated: the server only splits a list when the client sends `limit`, which
 *   the pod watcher does not (a test asserts it).
 * - Bearer-token authentication (401 `Status` otherwise), field selectors on `spec.nodeName`,
 *   `metadata.name`, `metadata.namespace` (400 for other fields, as the server does for pods).
 *
 * Test controls: add/modify/delete pods, break every open watch mid-stream (half an event
 * written, then the socket destroyed), compact the history (forcing a 410 on resume), delay or
 * fail lists, and a request log to assert what the client asked for.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';

/** A pod as the API serves it (JSON): the fields the server and the tests read or change; the rest passes through. */
export interface PodJson {
  kind?: string;
  apiVersion?: string;
  metadata: { name: string; namespace: string; uid: string; resourceVersion?: string; labels: Record<string, string>; [field: string]: unknown };
  spec: { nodeName?: string; [field: string]: unknown };
  status: { containerStatuses: Array<{ containerID: string; [field: string]: unknown }>; [field: string]: unknown };
  [field: string]: unknown;
}

/** A Status object (what the API answers instead of a resource when a request fails). */
type StatusJson = Record<string, unknown>;

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization?: string;
}

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: PodJson;
}

interface OpenWatch {
  res: ServerResponse;
  silent: boolean;
  socket: Socket;
  matches: (pod: PodJson) => boolean;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
  bookmarkTimer?: NodeJS.Timeout;
  /** rechunk: text not yet written. */
  pending: string;
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function status(code: number, reason: string, message: string): StatusJson {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeKubeApiServer {
  private server?: Server;
  private readonly pods = new Map<string, PodJson>(); // key: namespace/name
  private readonly history: WatchEvent[] = [];
  private resourceVersion = 51000;
  /** Events at or below this rv are gone: a watch from an older rv gets 410 Expired. */
  private compactedRv = 0;
  private readonly watches = new Set<OpenWatch>();
  private readonly sockets = new Set<Socket>();
  readonly requests: RecordedRequest[] = [];
  /** Delay before answering a list, ms (a slow API). */
  listDelayMs = 0;
  /** When set, lists answer with this HTTP status (e.g. 503) instead. */
  listFailStatus?: number;
  /**
   * When set, watches opened from now on accept the connection and then stay silent: no events,
   * no bookmarks, no end at timeoutSeconds (a connection that died without a reset).
   */
  hangWatches = false;
  /** Required bearer token; undefined accepts any request. */
  token?: string;
  /** When set, every watch that asked for bookmarks gets one this often (ms), from its start. */
  bookmarkEveryMs?: number;
  /** Answer a watch from an expired resourceVersion with HTTP 410 instead of 200 + an ERROR event. */
  expireWithHttpStatus = false;
  /** Cut the watch stream into chunks that do not follow event boundaries (see the file comment). */
  rechunk = false;
  private seed = 12345;

  private readonly tls?: { key: string; cert: string };

  /** `tls`: serve https with this key and certificate (PEM), as an in-cluster API server does. */
  constructor(opts: { token?: string; tls?: { key: string; cert: string } } = {}) {
    this.token = opts.token;
    this.tls = opts.tls;
  }

  async start(): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = this.tls ? createTlsServer({ key: this.tls.key, cert: this.tls.cert }, handler) : createServer(handler);
    this.server.on(this.tls ? 'secureConnection' : 'connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    const a = this.server!.address() as AddressInfo;
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${a.port}`;
  }

  /** Writes a kubeconfig pointing at this server (http, bearer token when set). */
  writeKubeconfig(path: string, context = 'fake-cluster'): void {
    const user = this.token ? `    token: ${this.token}` : '    {}';
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${this.url}`,
        // @kubernetes/client-node refuses plain http unless TLS verification is off for the cluster
        '    insecure-skip-tls-verify: true',
        'contexts:',
        `- name: ${context}`,
        '  context:',
        '    cluster: fake',
        '    user: tester',
        `current-context: ${context}`,
        'users:',
        '- name: tester',
        '  user:',
        user,
        '',
      ].join('\n'),
    );
  }

  get currentResourceVersion(): string {
    return String(this.resourceVersion);
  }

  get openWatches(): number {
    return this.watches.size;
  }

  listRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path === '/api/v1/pods' && r.query.watch !== 'true');
  }

  watchRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path === '/api/v1/pods' && r.query.watch === 'true');
  }

  // ---- changes -------------------------------------------------------------------------------

  addPod(pod: PodJson): PodJson {
    const p = clone(pod);
    delete p.kind;
    delete p.apiVersion;
    const key = `${p.metadata.namespace}/${p.metadata.name}`;
    if (this.pods.has(key)) throw new Error(`pod ${key} exists`);
    return this.record('ADDED', key, p);
  }

  modifyPod(namespace: string, name: string, change: (pod: PodJson) => void): PodJson {
    const key = `${namespace}/${name}`;
    const current = this.pods.get(key);
    if (!current) throw new Error(`no pod ${key}`);
    const p = clone(current);
    change(p);
    return this.record('MODIFIED', key, p);
  }

  deletePod(namespace: string, name: string): PodJson {
    const key = `${namespace}/${name}`;
    const current = this.pods.get(key);
    if (!current) throw new Error(`no pod ${key}`);
    return this.record('DELETED', key, clone(current));
  }

  private record(type: WatchEvent['type'], key: string, pod: PodJson): PodJson {
    this.resourceVersion++;
    pod.metadata.resourceVersion = String(this.resourceVersion);
    if (type === 'DELETED') this.pods.delete(key);
    else this.pods.set(key, pod);
    const event: WatchEvent = { rv: this.resourceVersion, type, object: pod };
    this.history.push(event);
    for (const w of this.watches) if (w.matches(pod)) this.send(w, type, pod);
    return clone(pod);
  }

  /** Forget the history so far: a watch resuming from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedRv = this.resourceVersion;
    this.history.length = 0;
  }

  /** A BOOKMARK with the current resourceVersion to every watch that asked for bookmarks. */
  sendBookmark(): void {
    for (const w of this.watches) {
      if (w.bookmarks) this.send(w, 'BOOKMARK', { metadata: { resourceVersion: this.currentResourceVersion } });
    }
  }

  /** Break every open watch mid-stream: half an event on the wire, then the connection reset. */
  breakWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      w.res.write('{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"trunc');
      this.watches.delete(w);
      if (w.timer) clearTimeout(w.timer);
      if (w.bookmarkTimer) clearInterval(w.bookmarkTimer);
      w.socket.destroy();
    }
    return n;
  }

  /** End every open watch cleanly (as the server does at timeoutSeconds). */
  endWatches(): void {
    for (const w of [...this.watches]) this.finish(w);
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) this.finish(w);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method ?? '', path: url.pathname, query, authorization: req.headers.authorization });
    res.setHeader('Cache-Control', 'no-cache, private');
    res.setHeader('Audit-Id', `fake-${this.requests.length}`);
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
      this.json(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (req.method !== 'GET' || url.pathname !== '/api/v1/pods') {
      this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    let matches: (pod: PodJson) => boolean;
    try {
      matches = parseFieldSelector(query.fieldSelector ?? '');
    } catch (err) {
      this.json(res, 400, status(400, 'BadRequest', (err as Error).message));
      return;
    }
    if (query.watch === 'true' || query.watch === '1') this.watch(req, res, query, matches);
    else this.list(res, matches);
  }

  private list(res: ServerResponse, matches: (pod: PodJson) => boolean): void {
    const answer = () => {
      if (res.destroyed) return;
      if (this.listFailStatus !== undefined) {
        this.json(res, this.listFailStatus, status(this.listFailStatus, 'ServiceUnavailable', 'the server is currently unable to handle the request'));
        return;
      }
      const items = [...this.pods.values()].filter(matches).map(clone);
      this.json(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: this.currentResourceVersion }, items });
    };
    if (this.listDelayMs > 0) setTimeout(answer, this.listDelayMs).unref();
    else answer();
  }

  private watch(req: IncomingMessage, res: ServerResponse, query: Record<string, string>, matches: (pod: PodJson) => boolean): void {
    const rvText = query.resourceVersion ?? '';
    if (this.expireWithHttpStatus && rvText !== '' && rvText !== '0' && !(Number(rvText) >= this.compactedRv)) {
      this.json(res, 410, status(410, 'Expired', `too old resource version: ${rvText} (${this.compactedRv + 1})`));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders(); // the API server answers a watch at once, before any event
    const w: OpenWatch = { res, socket: req.socket, matches, bookmarks: query.allowWatchBookmarks === 'true', silent: this.hangWatches, pending: '' };
    this.watches.add(w);
    // the response's 'close' is the connection going away (client abort) or the stream ending
    res.on('close', () => {
      this.watches.delete(w);
      if (w.timer) clearTimeout(w.timer);
      if (w.bookmarkTimer) clearInterval(w.bookmarkTimer);
    });
    if (w.bookmarks && this.bookmarkEveryMs !== undefined) {
      w.bookmarkTimer = setInterval(() => this.send(w, 'BOOKMARK', { metadata: { resourceVersion: this.currentResourceVersion } }), this.bookmarkEveryMs);
      w.bookmarkTimer.unref();
    }
    if (rvText === '' || rvText === '0') {
      // "any" resourceVersion: synthetic ADDED events for the current state, then live changes
      for (const pod of this.pods.values()) if (matches(pod)) this.send(w, 'ADDED', pod);
    } else {
      const rv = Number(rvText);
      if (!Number.isInteger(rv) || rv < this.compactedRv) {
        this.send(w, 'ERROR', status(410, 'Expired', `too old resource version: ${rvText} (${this.compactedRv + 1})`));
        this.finish(w);
        return;
      }
      for (const e of this.history) if (e.rv > rv && matches(e.object)) this.send(w, e.type, e.object);
    }
    const timeoutSeconds = Number(query.timeoutSeconds ?? 0);
    if (timeoutSeconds > 0 && !w.silent) {
      w.timer = setTimeout(() => this.finish(w), timeoutSeconds * 1000);
      w.timer.unref();
    }
  }

  /** One watch event; `object` is a pod, a Status (ERROR) or a bookmark's bare metadata. */
  private send(w: OpenWatch, type: string, object: Record<string, unknown>): void {
    if (w.silent) return;
    const obj = type === 'ERROR' ? object : { kind: 'Pod', apiVersion: 'v1', ...object };
    const line = JSON.stringify({ type, object: obj }) + '\n';
    if (!this.rechunk) {
      w.res.write(line);
      return;
    }
    // Each write is one HTTP chunk: cut the text at random bytes, and now and then keep an event
    // back to go out with the next one.
    w.pending += line;
    if (this.random() < 0.3) setTimeout(() => this.flush(w), 5).unref();
    else this.flush(w);
  }

  private flush(w: OpenWatch): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    let text = w.pending;
    w.pending = '';
    while (text.length > 0) {
      const n = 1 + Math.floor(this.random() * Math.min(text.length, 200));
      w.res.write(text.slice(0, n));
      text = text.slice(n);
    }
  }

  private random(): number {
    this.seed = (this.seed * 1103515245 + 12345) & 0x7fffffff;
    return this.seed / 0x7fffffff;
  }

  private finish(w: OpenWatch): void {
    this.watches.delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (w.bookmarkTimer) clearInterval(w.bookmarkTimer);
    if (w.pending !== '') this.flush(w);
    w.res.end();
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }
}

/** `spec.nodeName=a,metadata.namespace!=b`: the subset of field selectors the API supports for pods used here. */
function parseFieldSelector(selector: string): (pod: PodJson) => boolean {
  if (selector === '') return () => true;
  const terms = selector.split(',').map((term) => {
    const m = /^([a-zA-Z.]+)(==|!=|=)(.*)$/.exec(term);
    if (!m) throw new Error(`invalid field selector: "${term}"`);
    const [, field, op, value] = m;
    const get: Record<string, (p: PodJson) => unknown> = {
      'spec.nodeName': (p) => p.spec.nodeName ?? '',
      'metadata.name': (p) => p.metadata.name,
      'metadata.namespace': (p) => p.metadata.namespace,
    };
    const read = get[field!];
    if (!read) throw new Error(`field label not supported: ${field}`);
    return (p: PodJson) => (op === '!=' ? read(p) !== value : read(p) === value);
  });
  return (pod) => terms.every((t) => t(pod));
}
