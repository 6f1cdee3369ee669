import { defineReceiver } from '../../src/api/index.js';
import { defaultTaskstatsConfig, taskstatsConfigSchema, validateTaskstatsConfig, type TaskstatsReceiverConfig } from './config.js';
import { TaskstatsReceiver, type ReceiverParts } from './receiver.js';
import { ProcessAccounting } from './accounting.js';
import { ProcessMetadata } from './process-metadata.js';

/** The real parts: accounting.ts and process-metadata.ts. */
export const defaultReceiverParts: ReceiverParts = {
  createAccounting: (o) => new ProcessAccounting(o),
  createMetadata: (o) => new ProcessMetadata(o),
};

export const taskstatsReceiverFactory = defineReceiver<TaskstatsReceiverConfig>({
  type: 'taskstats',
  kind: 'receiver',
  description: 'Every process that ends (kernel exit events, without loss) and every live process each collection_interval, from Linux taskstats',
  stability: 'beta',
  // Metrics (samples) and logs (exit events): in a logs pipeline it emits a record per exit.
  signals: ['metrics', 'logs'],
  defaultConfig: defaultTaskstatsConfig,
  configSchema: taskstatsConfigSchema,
  validate: validateTaskstatsConfig,
  create: (ctx, config) => new TaskstatsReceiver(ctx, config, defaultReceiverParts),
});
