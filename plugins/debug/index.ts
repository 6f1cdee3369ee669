import { definePlugin } from '../../src/api/index.js';
import { debugExporterFactory } from './factory.js';

export { DebugExporter, summarize } from './exporter.js';

export default definePlugin({ factories: [debugExporterFactory] });
