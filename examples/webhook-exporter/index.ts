import { definePlugin } from '../../src/api/index.js';
import { webhookExporterFactory } from './factory.js';

export default definePlugin({ factories: [webhookExporterFactory] });
