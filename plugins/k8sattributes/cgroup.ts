/**
 * What a cgroup v2 path alone says about a process: its container id, container runtime, pod UID
 * and the pod's QoS class. No API access needed.
 *
 * The kubelet names pod cgroups after the pod UID under a QoS level (pkg/kubelet/cm:
 * `/kubepods/<qos>/pod<uid>`; Guaranteed pods sit right under `kubepods`). With the systemd cgroup
 * driver that name is converted to nested slices, where `-` separates hierarchy levels, so the
 * UID's dashes become underscores (ConvertCgroupNameToSystemd):
 *   systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/<ctr>
 *   cgroupfs: /kubepods/burstable/pod<uid>/<ctr>
 * The container level is named by the runtime:
 *   containerd: `cri-containerd-<id>.scope` (systemd) or `<id>` (cgroupfs)
 *   CRI-O:      `crio-<id>.scope` (systemd; `crio-conmon-<id>.scope` is its monitor) or `crio-<id>` (cgroupfs)
 *   Docker (dockershim / cri-dockerd): `docker-<id>.scope` (systemd) or `<id>` (cgroupfs)
 * Outside Kubernetes: `/system.slice/docker-<id>.scope`, `/docker/<id>`, podman `libpod-<id>.scope`.
 * The whole tree may sit below another level (kind and nested nodes use
 * `/kubelet.slice/kubelet-kubepods.slice/...`), so segments are searched, not anchored at `/`;
 * a path left relative to the agent's cgroup namespace (`/../../burstable/pod<uid>/<id>`) is
 * understood as far as its names go.
 */

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

export interface CgroupIdentity {
  /** 64 hex digits, as in the pod's `status.containerStatuses[].containerID` after `<runtime>://`. */
  containerId?: string;
  /** `containerd`, `cri-o`, `docker`, `podman`; absent when the layout does not tell (cgroupfs). */
  runtime?: string;
  /** Canonical dashed form (`8-4-4-4-12`), or the 32 hex digits of a static pod's UID. */
  podUid?: string;
  /** Spelled as in the pod's `status.qosClass`. */
  qosClass?: QosClass;
}

const HEX64 = /^[0-9a-f]{64}$/;
// systemd pod slice: <prefix>-pod<uid>.slice where the prefix names the parents (kubepods, kubepods-burstable, kubelet-kubepods-besteffort ...)
const SYSTEMD_POD = /^(.*kubepods(?:-[a-z]+)?)-pod([0-9a-fA-F_]{32,36})\.slice$/;
const CGROUPFS_POD = /^pod([0-9a-fA-F-]{32,36})$/;
const SCOPED_CONTAINER = /^(cri-containerd|crio|docker|libpod)-([0-9a-f]{64})\.scope$/;
const CRIO_CONMON = /^crio-conmon-[0-9a-f]{64}\.scope$/;
const CGROUPFS_CRIO = /^crio-([0-9a-f]{64})$/;

const RUNTIME_BY_PREFIX: Record<string, string> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
  libpod: 'podman',
};

/** Canonical UID: dashes restored (systemd escaping) and lower case. */
function canonicalUid(raw: string): string | undefined {
  const uid = raw.replace(/_/g, '-').toLowerCase();
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uid)) return uid;
  // static (mirror) pods: the kubelet's hash of the manifest, 32 hex digits without dashes
  if (/^[0-9a-f]{32}$/.test(uid)) return uid;
  return undefined;
}

function qosFromName(name: string): QosClass {
  if (name.endsWith('burstable')) return 'Burstable';
  if (name.endsWith('besteffort')) return 'BestEffort';
  return 'Guaranteed';
}

function containerFromSegment(segment: string | undefined, identity: CgroupIdentity): void {
  if (segment === undefined) return;
  const scoped = SCOPED_CONTAINER.exec(segment);
  if (scoped) {
    identity.containerId = scoped[2]!;
    identity.runtime = RUNTIME_BY_PREFIX[scoped[1]!]!;
    return;
  }
  if (CRIO_CONMON.test(segment)) return; // the runtime's monitor process, not the container
  const crio = CGROUPFS_CRIO.exec(segment);
  if (crio) {
    identity.containerId = crio[1]!;
    identity.runtime = 'cri-o';
    return;
  }
  if (HEX64.test(segment)) identity.containerId = segment; // containerd or docker, cgroupfs driver
}

/** Parse a cgroup v2 path (as in `/proc/PID/cgroup` after `0::`). Undefined when it says nothing. */
export function parseCgroupPath(path: string): CgroupIdentity | undefined {
  const segments = path.split('/');
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i]!;
    const systemd = SYSTEMD_POD.exec(segment);
    if (systemd) {
      const podUid = canonicalUid(systemd[2]!);
      if (!podUid) continue;
      const identity: CgroupIdentity = { podUid, qosClass: qosFromName(systemd[1]!) };
      containerFromSegment(segments[i + 1], identity);
      return identity;
    }
    const cgroupfs = CGROUPFS_POD.exec(segment);
    if (cgroupfs && i > 0) {
      const parent = segments[i - 1]!;
      const grandParent = segments[i - 2] ?? '';
      // `..`: a path the receiver left relative to its cgroup namespace (docs/deploy.md, cgroups),
      // whose ancestors it could not name; a pod level then still tells the pod, not always its QoS.
      const qosLevel = parent === 'burstable' || parent === 'besteffort';
      const underKubepods = parent === 'kubepods' || (qosLevel && (grandParent === 'kubepods' || grandParent === '..'));
      const podUid = canonicalUid(cgroupfs[1]!);
      if (!(underKubepods || parent === '..') || !podUid) continue;
      const identity: CgroupIdentity = parent === '..' ? { podUid } : { podUid, qosClass: parent === 'kubepods' ? 'Guaranteed' : qosFromName(parent) };
      containerFromSegment(segments[i + 1], identity);
      return identity;
    }
  }
  // Containers outside Kubernetes
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i]!;
    const scoped = SCOPED_CONTAINER.exec(segment);
    if (scoped && scoped[1] !== 'cri-containerd' && scoped[1] !== 'crio') {
      return { containerId: scoped[2]!, runtime: RUNTIME_BY_PREFIX[scoped[1]!]! };
    }
    if (segment === 'docker' && HEX64.test(segments[i + 1] ?? '')) {
      return { containerId: segments[i + 1]!, runtime: 'docker' };
    }
  }
  return undefined;
}
