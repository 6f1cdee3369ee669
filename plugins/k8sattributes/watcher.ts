/**
 * Keeps a PodStore current with the pods of one node: list, then watch from the list's
 * resourceVersion (@kubernetes/client-node's ListWatch, the informer of that library).
 *
 * Nothing here ever blocks the data path: start() only schedules the first list. When the watch
 * breaks, it resumes from the last resourceVersion seen; when the server answers 410 Gone
 * (resourceVersion too old), ListWatch lists again; when anything else fails (API down, list
 * timeout, connection reset), we restart after a backoff (1 s doubling to 30 s, back to 1 s once
 * a list or a watch event gets through).
 *
 * What @kubernetes/client-node 2.x does (dist/cache.js, dist/watch.js): ListWatch relists only
 * after a 410 (HTTP status or ERROR event) and reconnects by itself only after a clean end or its
 * Watch's inactivity timeout (TimeoutError); any other failure is reported on 'error' and the
 * ListWatch stays stopped until start() is called again (which keeps the resourceVersion). A relist
 * diffs against its cache: 'delete' for pods gone, 'update' only for a changed resourceVersion.
 */
import type { KubeConfig, ListWatch, V1Pod, V1PodList } from '@kubernetes/client-node';
import type { ComponentTelemetry, Logger } from '../../src/api/index.js';
import type { PodStore } from './pods.js';

export interface PodWatcherOptions {
  /** Builds the client configuration once the library is loaded (in the background). */
  loadKubeConfig: (k8s: typeof import('@kubernetes/client-node')) => KubeConfig;
  nodeName: string;
  store: PodStore;
  logger: Logger;
  telemetry: ComponentTelemetry;
  /** Timeout of one list request, ms. */
  listTimeoutMs: number;
  /** First retry delay after a failure, ms; doubles up to maxRetryMs. */
  retryBaseMs?: number;
  maxRetryMs?: number;
}

export class PodWatcher {
  private informer?: ListWatch<V1Pod>;
  private retryTimer?: NodeJS.Timeout;
  private retryMs: number;
  private stopped = false;
  private lastWatchStartMs = 0;
  /**
   * A watch with no data for this long is presumed dead (a connection that vanished without a
   * reset) and is aborted, then resumed from the last resourceVersion: the inactivity timeout of
   * client-node 2.x's Watch (requestTimeoutMs), whose default of 30 s is shorter than the API
   * server's bookmark period (about a minute): with it, the watch of a quiet node would be cut
   * before its first bookmark, every time, its resourceVersion would never advance, and the
   * resumes would end in 410 and a full relist. The server ends every watch after timeoutSeconds
   * (<= 600 s) and sends bookmarks meanwhile, so a live one is never idle this long. (The same
   * timer covers the wait for the response headers, which undici bounds sooner: connect 10 s,
   * headers 300 s.)
   */
  idleTimeoutMs = 660_000;
  private readonly events: { add(v: number, a?: Record<string, string>): void };
  private readonly lists: { add(v: number): void };
  private readonly errors: { add(v: number): void };
  /** Lists completed; tests and logs use it to tell a relist from a resumed watch. */
  listCount = 0;
  /** Watch (re)connections attempted. */
  connectCount = 0;

  constructor(private readonly opts: PodWatcherOptions) {
    this.retryMs = opts.retryBaseMs ?? 1000;
    this.events = opts.telemetry.counter('k8s_watch_events', 'Pod events received from the Kubernetes API, by type', '{event}');
    this.lists = opts.telemetry.counter('k8s_pod_lists', 'Pod lists requested from the Kubernetes API (first list and relists)', '{request}');
    this.errors = opts.telemetry.counter('k8s_api_errors', 'Failed Kubernetes API requests and broken watches', '{error}');
    opts.telemetry.gauge('k8s_pods', 'Pods of this node known to the processor (incl. recently deleted)', () => opts.store.size, '{pod}');
  }

  /** Begins loading the client, listing and watching in the background; returns at once. */
  start(): void {
    this.init().catch((err: unknown) => {
      this.errors.add(1);
      this.opts.logger.error('Kubernetes API: cannot set up the pod watch; only cgroup-derived attributes will be added', {
        error: describe(err),
      });
    });
  }

  private async init(): Promise<void> {
    const k8s = await import('@kubernetes/client-node');
    if (this.stopped) return;
    const kubeConfig = this.opts.loadKubeConfig(k8s);
    const { nodeName, store, logger, listTimeoutMs } = this.opts;
    const api = kubeConfig.makeApiClient(k8s.CoreV1Api);
    const fieldSelector = `spec.nodeName=${nodeName}`;

    // The watch asks for bookmarks (cheap resumption points) and a server-side timeout, as
    // client-go's reflector does, so a quiet node still advances its resourceVersion.
    // It also closes a watch whose connection completes after stop(): ListWatch.stop() can only
    // abort a request whose response headers have already arrived.
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the Watch subclass's methods need their own `this` and this PodWatcher
    const watcher = this;
    // And it sets the inactivity timeout (see idleTimeoutMs).
    class BookmarkWatch extends k8s.Watch {
      override async watch(
        path: string,
        params: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
        done: (err: unknown) => void,
      ): Promise<AbortController> {
        const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
        const onEvent = (phase: string, apiObj: unknown, watchObj?: unknown) => {
          watcher.retryMs = watcher.opts.retryBaseMs ?? 1000; // the API answers again
          cb(phase, apiObj, watchObj);
        };
        const onDone = (err: unknown) => {
          if (err instanceof Error && err.name === 'TimeoutError' && !watcher.stopped) {
            // ListWatch resumes from the last resourceVersion by itself after this one.
            watcher.errors.add(1);
            watcher.opts.logger.warn('Kubernetes API: the pod watch has been silent too long; reconnecting', { idleMs: watcher.idleTimeoutMs });
          }
          done(err);
        };
        // ListWatch reconnects at once when a watch ends cleanly; a server or proxy that ends
        // every watch right away would make that a busy loop, so a watch that lived under a
        // second is followed by a pause of one.
        if (Date.now() - watcher.lastWatchStartMs < 1000) await new Promise((r) => setTimeout(r, 1000).unref());
        if (watcher.stopped) {
          const none = new AbortController(); // stopped meanwhile: no request, nothing to report
          none.abort();
          return none;
        }
        watcher.lastWatchStartMs = Date.now();
        // A private field of Watch in 2.x (no option sets it); the quiet-watch test fails if it goes.
        (this as unknown as { requestTimeoutMs: number }).requestTimeoutMs = watcher.idleTimeoutMs;
        const controller = await super.watch(path, { ...params, allowWatchBookmarks: true, timeoutSeconds }, onEvent, onDone);
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may have run during the await
        if (watcher.stopped) controller.abort();
        return controller;
      }
    }
    const listFn = async (): Promise<V1PodList> => {
      this.lists.add(1);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`listing pods timed out after ${listTimeoutMs} ms`)), listTimeoutMs);
        timer.unref();
      });
      try {
        const list = await Promise.race([api.listPodForAllNamespaces({ fieldSelector }), timeout]);
        this.listCount++;
        this.retryMs = this.opts.retryBaseMs ?? 1000;
        logger.info('listed pods of this node', { node: nodeName, pods: list.items.length, resourceVersion: list.metadata?.resourceVersion });
        return list;
      } finally {
        clearTimeout(timer);
      }
    };
    const informer = new k8s.ListWatch<V1Pod>('/api/v1/pods', new BookmarkWatch(kubeConfig), listFn, false, undefined, fieldSelector);
    informer.on('add', (pod) => {
      this.events.add(1, { type: 'added' });
      store.upsert(pod);
    });
    informer.on('update', (pod) => {
      this.events.add(1, { type: 'modified' });
      store.upsert(pod);
    });
    informer.on('delete', (pod) => {
      this.events.add(1, { type: 'deleted' });
      store.delete(pod);
    });
    informer.on('connect', () => {
      this.connectCount++;
    });
    informer.on('error', (err) => {
      this.errors.add(1);
      if (this.stopped) return;
      logger.warn('Kubernetes API: pod list/watch failed; samples keep flowing with cgroup-derived attributes, retrying', {
        error: describe(err),
        retryInMs: this.retryMs,
      });
      this.scheduleRestart();
    });
    this.informer = informer;
    this.launch();
  }

  private launch(): void {
    this.informer?.start().catch((err: unknown) => {
      // start() rejects only for errors outside the list/watch callbacks (e.g. no cluster in the kubeconfig)
      this.errors.add(1);
      this.opts.logger.warn('Kubernetes API: could not start the pod watch, retrying', { error: describe(err) });
      this.scheduleRestart();
    });
  }

  private scheduleRestart(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.maxRetryMs ?? 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) this.launch();
    }, delay);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.informer?.stop();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { statusCode?: number; code?: number | string }).statusCode ?? (err as { code?: number | string }).code;
    const cause = (err as { cause?: unknown }).cause;
    return `${err.message}${code !== undefined ? ` (${code})` : ''}${cause instanceof Error ? `: ${cause.message}` : ''}`;
  }
  return String(err);
}
