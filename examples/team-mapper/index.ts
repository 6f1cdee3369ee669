/**
 * team-mapper: an example processor plugin, written only against the public plugin API.
 * Inside this repository it imports '../../src/api/index.js'; a plugin in its own package
 * imports 'taskstats-agent/api' instead. Load it by naming the compiled file in the config:
 *
 *   plugins: [./path/to/team-mapper/index.js]
 */
import { definePlugin } from '../../src/api/index.js';
import { teamMapperFactory } from './factory.js';

export default definePlugin({ factories: [teamMapperFactory] });
