import { defineProcessor } from '../../src/api/index.js';
import { defaultFilterConfig, filterConfigSchema, validateFilterConfig, type FilterConfig } from './config.js';

export const filterFactory = defineProcessor<FilterConfig>({
  type: 'filter',
  kind: 'processor',
  description: 'Keeps or drops samples by command name, command line or cgroup path (strict, regexp or glob patterns)',
  stability: 'beta',
  defaultConfig: defaultFilterConfig,
  configSchema: filterConfigSchema,
  validate: validateFilterConfig,
  // The implementation is loaded when a config uses it.
  async create(ctx, config) {
    const { FilterProcessor } = await import('./processor.js');
    return new FilterProcessor(ctx, config);
  },
});
