import { durationSchema, type ConfigProblem, type ConfigSchema } from '../../src/api/index.js';

/** Attributes this processor can add; `extract.metadata` picks among them. */
export const METADATA_ATTRIBUTES = [
  // from the cgroup path alone
  'container.id',
  'container.runtime.name',
  'k8s.pod.uid',
  'k8s.pod.qos_class',
  // from the Kubernetes API
  'k8s.pod.name',
  'k8s.namespace.name',
  'k8s.container.name',
  'k8s.node.name',
  'container.image.name',
  'container.image.tag',
  'k8s.replicaset.name',
  'k8s.deployment.name',
  'k8s.daemonset.name',
  'k8s.statefulset.name',
  'k8s.job.name',
  'k8s.cronjob.name',
] as const;
export type MetadataAttribute = (typeof METADATA_ATTRIBUTES)[number];

export const DEFAULT_METADATA: MetadataAttribute[] = [
  'container.id',
  'k8s.pod.uid',
  'k8s.pod.qos_class',
  'k8s.pod.name',
  'k8s.namespace.name',
  'k8s.container.name',
  'k8s.node.name',
  'k8s.deployment.name',
];

export interface FieldExtractConfig {
  /** Label or annotation key, e.g. `app.kubernetes.io/name`. */
  key: string;
  /** Attribute name; default `k8s.pod.labels.<key>` / `k8s.pod.annotations.<key>`. */
  tag_name?: string;
}

export type AuthType = 'auto' | 'serviceAccount' | 'kubeConfig' | 'none';

export interface K8sAttributesConfig {
  /**
   * How to reach the API: `serviceAccount` (in-cluster), `kubeConfig` (a file), `none` (cgroup
   * path only), `auto` (serviceAccount when KUBERNETES_SERVICE_HOST is set, else none).
   */
  auth_type: AuthType;
  /** kubeconfig file for `auth_type: kubeConfig`; default $KUBECONFIG, then ~/.kube/config. */
  kube_config_path?: string;
  /** Context of the kubeconfig to use; default its current-context. */
  kube_config_context?: string;
  filter: {
    /** This node's name: only its pods are watched (field selector spec.nodeName). */
    node?: string;
    /** Environment variable holding the node name (set from spec.nodeName by the downward API). */
    node_from_env_var: string;
  };
  extract: {
    metadata: MetadataAttribute[];
    labels: FieldExtractConfig[];
    annotations: FieldExtractConfig[];
  };
  /** How long a deleted pod's metadata is kept for the exits that arrive after its deletion (ms). */
  pod_delete_grace: number;
  /** Timeout of the list request (ms); a slow API never holds samples back, it only delays metadata. */
  api_timeout: number;
}

export function defaultK8sAttributesConfig(): K8sAttributesConfig {
  return {
    auth_type: 'auto',
    filter: { node_from_env_var: 'K8S_NODE_NAME' },
    extract: { metadata: [...DEFAULT_METADATA], labels: [], annotations: [] },
    pod_delete_grace: 120_000,
    api_timeout: 30_000,
  };
}

const fieldExtract: ConfigSchema = {
  type: 'object',
  properties: {
    key: { type: 'string', minLength: 1, description: 'Label or annotation key.' },
    tag_name: { type: 'string', minLength: 1, description: 'Attribute name to write.' },
  },
  required: ['key'],
  additionalProperties: false,
};

export const k8sAttributesConfigSchema: ConfigSchema = {
  type: 'object',
  properties: {
    auth_type: { enum: ['auto', 'serviceAccount', 'kubeConfig', 'none'] },
    kube_config_path: { type: 'string', minLength: 1 },
    kube_config_context: { type: 'string', minLength: 1 },
    filter: {
      type: 'object',
      properties: {
        node: { type: 'string', minLength: 1 },
        node_from_env_var: { type: 'string', minLength: 1 },
      },
      additionalProperties: false,
    },
    extract: {
      type: 'object',
      properties: {
        metadata: { type: 'array', items: { enum: [...METADATA_ATTRIBUTES] }, uniqueItems: true },
        labels: { type: 'array', items: fieldExtract },
        annotations: { type: 'array', items: fieldExtract },
      },
      additionalProperties: false,
    },
    pod_delete_grace: durationSchema({ minMs: 0, description: 'How long deleted pods stay known.' }),
    api_timeout: durationSchema({ minMs: 100, description: 'Timeout of the list request.' }),
  },
  additionalProperties: false,
};

export function validateK8sAttributesConfig(config: K8sAttributesConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, string>();
  const claim = (name: string, path: string) => {
    const previous = seen.get(name);
    if (previous) problems.push({ path, message: `attribute "${name}" is also written by ${previous}` });
    else seen.set(name, path);
  };
  config.extract.metadata.forEach((m, i) => claim(m, `extract.metadata[${i}]`));
  config.extract.labels.forEach((l, i) => claim(l.tag_name ?? `k8s.pod.labels.${l.key}`, `extract.labels[${i}]`));
  config.extract.annotations.forEach((a, i) => claim(a.tag_name ?? `k8s.pod.annotations.${a.key}`, `extract.annotations[${i}]`));
  if (config.auth_type !== 'kubeConfig' && config.kube_config_path !== undefined) {
    problems.push({ path: 'kube_config_path', message: `is only used with auth_type: kubeConfig (auth_type is ${config.auth_type})` });
  }
  return problems;
}
