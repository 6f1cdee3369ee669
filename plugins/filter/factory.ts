import { defineProcessor, type LogProcessor, type Processor } from '../../src/api/index.js';
import { defaultFilterConfig, filterConfigSchema, validateFilterConfig, type FilterConfig } from './config.js';

export const filterFactory = defineProcessor<FilterConfig, Processor & LogProcessor>({
  type: 'filter',
  kind: 'processor',
  description:
    'Keeps or drops samples and exit events by command name, command line or cgroup path (strict, regexp or glob patterns), events also by exit outcome, duration and CPU',
  stability: 'beta',
  signals: ['metrics', 'logs'],
  defaultConfig: defaultFilterConfig,
  configSchema: filterConfigSchema,
  validate: validateFilterConfig,
  // The implementation is loaded when a config uses it.
  async create(ctx, config) {
    const { FilterProcessor } = await import('./processor.js');
    return new FilterProcessor(ctx, config);
  },
});
