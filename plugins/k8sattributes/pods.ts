import type { Attributes } from '../../src/api/index.js';
import type { K8sAttributesConfig } from './config.js';

/** The parts of a v1 Pod this processor reads (a subset of @kubernetes/client-node's V1Pod). */
export interface PodObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  };
  spec?: { nodeName?: string };
  status?: {
    qosClass?: string;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
    ephemeralContainerStatuses?: ContainerStatus[];
  };
}

interface ContainerStatus {
  name: string;
  image?: string;
  containerID?: string;
}

/**
 * One pod as this processor uses it, built once per pod change: the attributes to add for the
 * pod, and per container id the attributes to add for that container. Replaced (never mutated) on
 * every change, so a cached enrichment can tell it is stale by comparing references.
 */
export interface PodInfo {
  readonly uid: string;
  readonly podAttributes: Attributes;
  /** Container id (64 hex, without `<runtime>://`) -> container attributes. */
  readonly containers: ReadonlyMap<string, Attributes>;
}

/** Split `registry:5000/team/app:1.2@sha256:...` into name and tag as the Collector does. */
export function splitImage(image: string): { name: string; tag?: string } {
  let ref = image;
  const at = ref.indexOf('@');
  if (at >= 0) ref = ref.slice(0, at);
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: at >= 0 ? undefined : 'latest' };
}

export class PodInfoBuilder {
  private readonly want: Set<string>;

  constructor(private readonly config: K8sAttributesConfig) {
    this.want = new Set(config.extract.metadata);
  }

  build(pod: PodObject): PodInfo | undefined {
    const meta = pod.metadata;
    if (!meta?.uid) return undefined;
    const attrs: Attributes = {};
    const put = (name: string, value: string | undefined) => {
      if (value !== undefined && value !== '' && this.want.has(name)) attrs[name] = value;
    };
    put('k8s.pod.uid', meta.uid);
    put('k8s.pod.name', meta.name);
    put('k8s.namespace.name', meta.namespace);
    put('k8s.node.name', pod.spec?.nodeName);
    put('k8s.pod.qos_class', pod.status?.qosClass);
    const owner = meta.ownerReferences?.find((o) => o.controller) ?? meta.ownerReferences?.[0];
    if (owner) {
      switch (owner.kind) {
        case 'ReplicaSet': {
          put('k8s.replicaset.name', owner.name);
          // Deployment-owned ReplicaSets are named <deployment>-<pod-template-hash>
          const hash = meta.labels?.['pod-template-hash'];
          if (hash && owner.name.endsWith(`-${hash}`)) put('k8s.deployment.name', owner.name.slice(0, -hash.length - 1));
          break;
        }
        case 'DaemonSet':
          put('k8s.daemonset.name', owner.name);
          break;
        case 'StatefulSet':
          put('k8s.statefulset.name', owner.name);
          break;
        case 'Job': {
          put('k8s.job.name', owner.name);
          // CronJob-owned Jobs are named <cronjob>-<scheduled time in minutes>
          const m = /^(.+)-\d{8,}$/.exec(owner.name);
          if (m) put('k8s.cronjob.name', m[1]);
          break;
        }
      }
    }
    for (const l of this.config.extract.labels) {
      const v = meta.labels?.[l.key];
      if (v !== undefined) attrs[l.tag_name ?? `k8s.pod.labels.${l.key}`] = v;
    }
    for (const a of this.config.extract.annotations) {
      const v = meta.annotations?.[a.key];
      if (v !== undefined) attrs[a.tag_name ?? `k8s.pod.annotations.${a.key}`] = v;
    }
    const containers = new Map<string, Attributes>();
    const status = pod.status;
    for (const list of [status?.containerStatuses, status?.initContainerStatuses, status?.ephemeralContainerStatuses]) {
      for (const c of list ?? []) {
        if (!c.containerID) continue;
        const sep = c.containerID.indexOf('://');
        const id = sep >= 0 ? c.containerID.slice(sep + 3) : c.containerID;
        const runtime = sep >= 0 ? c.containerID.slice(0, sep) : undefined;
        const ca: Attributes = {};
        if (this.want.has('k8s.container.name')) ca['k8s.container.name'] = c.name;
        if (runtime && this.want.has('container.runtime.name')) ca['container.runtime.name'] = runtime;
        if (c.image) {
          const img = splitImage(c.image);
          if (this.want.has('container.image.name')) ca['container.image.name'] = img.name;
          if (img.tag && this.want.has('container.image.tag')) ca['container.image.tag'] = img.tag;
        }
        containers.set(id, ca);
      }
    }
    return { uid: meta.uid, podAttributes: attrs, containers };
  }
}

/**
 * Pods of this node by UID. Deleted pods stay for `pod_delete_grace`, because a pod's last exits
 * can reach the processor after the API has already reported it deleted.
 */
export class PodStore {
  private readonly pods = new Map<string, PodInfo>();
  private readonly deletedAt = new Map<string, number>();
  private sweepTimer?: NodeJS.Timeout;

  constructor(
    private readonly builder: PodInfoBuilder,
    private readonly deleteGraceMs: number,
  ) {}

  get size(): number {
    return this.pods.size;
  }

  get(uid: string): PodInfo | undefined {
    return this.pods.get(uid);
  }

  upsert(pod: PodObject): void {
    const info = this.builder.build(pod);
    if (!info) return;
    this.pods.set(info.uid, info);
    this.deletedAt.delete(info.uid);
  }

  delete(pod: PodObject, nowMs = Date.now()): void {
    const uid = pod.metadata?.uid;
    if (!uid || !this.pods.has(uid)) return;
    if (this.deleteGraceMs === 0) {
      this.pods.delete(uid);
      return;
    }
    this.deletedAt.set(uid, nowMs);
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => this.sweep(), Math.max(50, Math.min(this.deleteGraceMs / 2, 30_000)));
      this.sweepTimer.unref();
    }
  }

  /** Forget pods deleted longer than the grace period ago. */
  sweep(nowMs = Date.now()): void {
    for (const [uid, at] of this.deletedAt) {
      if (nowMs - at >= this.deleteGraceMs) {
        this.deletedAt.delete(uid);
        this.pods.delete(uid);
      }
    }
    if (this.deletedAt.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
    }
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }
}
