export { MetricsStage, METRICS_SCOPE, OVERFLOW_ATTRIBUTE } from './stage.js';
export type { MetricsStageOptions, Collection } from './stage.js';
export { buildResource, parseResourceAttributes, DEFAULT_SERVICE_NAME } from './resource.js';
