import { definePlugin } from '../../src/api/index.js';
import { prometheusExporterFactory } from './factory.js';

// Implementation classes are not re-exported here: importing this module (as the agent does at
// start) must not load them; create() loads them when a config uses the component.
export type { PrometheusExporter } from './exporter.js';

export default definePlugin({ factories: [prometheusExporterFactory] });
