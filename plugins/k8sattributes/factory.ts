import { defineProcessor, type LogProcessor, type Processor } from '../../src/api/index.js';
import { defaultK8sAttributesConfig, k8sAttributesConfigSchema, validateK8sAttributesConfig, type K8sAttributesConfig } from './config.js';

export const k8sAttributesFactory = defineProcessor<K8sAttributesConfig, Processor & LogProcessor>({
  type: 'k8sattributes',
  kind: 'processor',
  description: 'Adds container, pod, namespace and workload attributes from the cgroup path and the Kubernetes API (pods of this node)',
  stability: 'beta',
  signals: ['metrics', 'logs'],
  defaultConfig: defaultK8sAttributesConfig,
  configSchema: k8sAttributesConfigSchema,
  validate: validateK8sAttributesConfig,
  // The implementation is loaded when a config uses it (the Kubernetes client only at start()).
  async create(ctx, config) {
    const { K8sAttributesProcessor } = await import('./processor.js');
    return new K8sAttributesProcessor(ctx, config);
  },
});
