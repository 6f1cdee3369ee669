import { definePlugin } from '../../src/api/index.js';
import { filterFactory } from './factory.js';

export { filterFactory } from './factory.js';
export { FilterProcessor } from './processor.js';
export type { FilterConfig, MatchBlockConfig } from './config.js';

export default definePlugin({ factories: [filterFactory] });
