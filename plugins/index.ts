/**
 * The built-in plugins the CLI registers. Each is a folder that uses only the public plugin API
 * (src/api), exactly as a user's plugin would.
 */
import type { PluginModule } from '../src/api/index.js';
import filter from './filter/index.js';
import k8sattributes from './k8sattributes/index.js';
import otlp from './otlp/index.js';
import debug from './debug/index.js';
import taskstats from './taskstats/index.js';
import prometheus from './prometheus/index.js';

export const builtinPlugins: PluginModule[] = [taskstats, filter, k8sattributes, otlp, debug, prometheus];
