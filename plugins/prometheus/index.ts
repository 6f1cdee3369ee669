import { definePlugin } from '../../src/api/index.js';
import { prometheusExporterFactory } from './factory.js';

export { PrometheusExporter } from './exporter.js';

export default definePlugin({ factories: [prometheusExporterFactory] });
