import { definePlugin } from '../../src/api/index.js';
import { filterFactory } from './factory.js';

export { filterFactory } from './factory.js';
// Implementation classes are not re-exported here: importing this module (as the agent does at
// start) must not load them; create() loads them when a config uses the component.
export type { FilterProcessor } from './processor.js';
export type { FilterConfig, MatchBlockConfig } from './config.js';

export default definePlugin({ factories: [filterFactory] });
