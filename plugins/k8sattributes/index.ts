import { definePlugin } from '../../src/api/index.js';
import { k8sAttributesFactory } from './factory.js';

export { k8sAttributesFactory } from './factory.js';
// Implementation classes are not re-exported here: importing this module (as the agent does at
// start) must not load them; create() loads them when a config uses the component.
export type { K8sAttributesProcessor } from './processor.js';
export { parseCgroupPath, type CgroupIdentity, type QosClass } from './cgroup.js';
export type { K8sAttributesConfig } from './config.js';

export default definePlugin({ factories: [k8sAttributesFactory] });
