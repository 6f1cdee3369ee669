import { definePlugin } from '../../src/api/index.js';
import { taskstatsReceiverFactory } from './factory.js';
import { pidCommand, exitsCommand } from './cli.js';

export { taskstatsReceiverFactory } from './factory.js';
export { TaskstatsReceiver } from './receiver.js';
export type { TaskstatsReceiverConfig } from './config.js';
export type { TaskRecord } from './record.js';

export default definePlugin({ factories: [taskstatsReceiverFactory], commands: [pidCommand, exitsCommand] });
