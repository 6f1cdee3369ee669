/**
 * kernel.task_delayacct: off by default since Linux 5.14. With it off, the kernel still fills
 * cpu delays and cpu_run_* (they come from the scheduler) but every other delay (blkio, swapin,
 * freepages, thrashing, compact, wpcopy, irq) stays zero, and tasks created while it was off
 * keep zero delays even after it is turned on.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../../src/api/index.js';

export const TASK_DELAYACCT_PATH = '/proc/sys/kernel/task_delayacct';

export type DelayAccountingMode = 'keep' | 'enable';

/** true / false from the sysctl; undefined when the file is absent (kernel without it). */
export function readTaskDelayacct(path = TASK_DELAYACCT_PATH): boolean | undefined {
  try {
    return readFileSync(path, 'utf8').trim() !== '0';
  } catch {
    return undefined;
  }
}

export interface DelayAccountingState {
  /** Whether the sysctl reads 1 after setup. */
  enabled: boolean;
  /** Whether this call turned it on. */
  changed: boolean;
  /** The warning logged, if any. */
  warning?: string;
}

const ZERO_DELAYS = 'delays other than cpu (blkio, swapin, freepages, thrashing, compact, wpcopy, irq) stay zero';

/**
 * Detects kernel.task_delayacct and, in `enable` mode, writes 1 to it (needs CAP_SYS_ADMIN).
 * Logs one clear warning when delay accounting stays off.
 */
export function setupDelayAccounting(mode: DelayAccountingMode, logger: Logger, path = TASK_DELAYACCT_PATH): DelayAccountingState {
  const before = readTaskDelayacct(path);
  if (before === undefined) {
    const warning = `${path} is missing: this kernel has no switchable delay accounting (CONFIG_TASK_DELAY_ACCT); ${ZERO_DELAYS} unless it is built in and on`;
    logger.warn(warning, { key: 'delayacct' });
    return { enabled: false, changed: false, warning };
  }
  if (before) return { enabled: true, changed: false };
  if (mode === 'enable') {
    try {
      writeFileSync(path, '1');
      const after = readTaskDelayacct(path) === true;
      if (after) {
        logger.info('delay accounting enabled (kernel.task_delayacct=1); processes started before now keep zero delays other than cpu');
        return { enabled: true, changed: true };
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const warning =
        `could not enable delay accounting (writing 1 to ${path}: ${code || (err as Error).message}): it needs CAP_SYS_ADMIN ` +
        `(root, or securityContext.capabilities.add: ["SYS_ADMIN"] / privileged in Kubernetes); ${ZERO_DELAYS}`;
      logger.warn(warning, { key: 'delayacct' });
      return { enabled: false, changed: false, warning };
    }
  }
  const warning =
    `kernel.task_delayacct is 0: ${ZERO_DELAYS}. Turn it on with delay_accounting: enable (needs CAP_SYS_ADMIN), ` +
    '`sysctl -w kernel.task_delayacct=1`, or the "delayacct" boot option';
  logger.warn(warning, { key: 'delayacct' });
  return { enabled: false, changed: false, warning };
}
