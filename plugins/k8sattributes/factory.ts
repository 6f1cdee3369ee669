import { defineProcessor } from '../../src/api/index.js';
import {
  defaultK8sAttributesConfig,
  k8sAttributesConfigSchema,
  validateK8sAttributesConfig,
  type K8sAttributesConfig,
} from './config.js';
import { K8sAttributesProcessor } from './processor.js';

export const k8sAttributesFactory = defineProcessor<K8sAttributesConfig>({
  type: 'k8sattributes',
  kind: 'processor',
  description: 'Adds container, pod, namespace and workload attributes from the cgroup path and the Kubernetes API (pods of this node)',
  stability: 'beta',
  defaultConfig: defaultK8sAttributesConfig,
  configSchema: k8sAttributesConfigSchema,
  validate: validateK8sAttributesConfig,
  create: (ctx, config) => new K8sAttributesProcessor(ctx, config),
});
