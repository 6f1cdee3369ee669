import { durationSchema, sizeSchema, type ConfigProblem, type ConfigSchema } from '../../src/api/index.js';
import * as fs from 'node:fs';
import type { DelayAccountingMode } from './delayacct.js';
import {
  defaultExitDistributionsConfig,
  exitDistributionsConfigSchema,
  validateExitDistributions,
  type ExitDistributionsConfig,
} from './exit-distributions.js';
import { cgroupReconcileConfigSchema, defaultCgroupReconcileConfig, type CgroupReconcileConfig } from './cgroup-reconcile.js';

export interface TaskstatsMetadataConfig {
  /** On a cgroup v1-only host: the hierarchy whose path names a process's group (e.g. `cpu,cpuacct`, `memory`, `name=systemd`). */
  cgroup_v1_hierarchy?: string;
  /** Read /proc/PID/cmdline once per process (context attribute `process.command_line`). */
  command_line: boolean;
  /** Read /proc/PID/exe once per process (context attribute `process.executable.path`). */
  executable_path: boolean;
}

/** The receiver's configuration after the host converted durations (ms) and sizes (bytes). */
export interface TaskstatsReceiverConfig {
  collection_interval: number;
  exits: boolean;
  /** cpulist ("0-3,5") or "all" (every possible CPU, /sys/devices/system/cpu/possible). */
  cpus: string;
  receive_buffer: number;
  /** Exit sockets, each registered for a share of `cpus` with its own receive buffer. */
  exit_listeners: number;
  live: boolean;
  per_process: boolean;
  delay_accounting: DelayAccountingMode;
  metadata: TaskstatsMetadataConfig;
  /** Exit events (log records), produced when the receiver is in a logs pipeline. */
  events: TaskstatsEventsConfig;
  /** Histograms of ended processes per workload (exit-distributions.ts). */
  histograms: ExitDistributionsConfig;
  /** Per-cgroup totals from cpu.stat and the cgroup's PSI (cgroup-reconcile.ts). */
  cgroups: CgroupReconcileConfig;
}

/** A per-second budget: a number of events, or every one. */
export type EventBudget = number | 'unlimited';

export interface TaskstatsEventsConfig {
  /** Also a `process.thread.exit` record for each thread that ends before its process. */
  threads: boolean;
  /** Failed exits (non-zero code, killed by a signal, core dumped) kept per second. */
  failures_per_second: EventBudget;
  /** Successful exits (code 0) kept per second. */
  successes_per_second: EventBudget;
  /** How often a `process.exit.suppressed` record per workload reports what the budgets held back (ms). */
  summary_interval: number;
  /** Workloads (command, cgroup) counted apart in one summary interval; the rest are summed in one record. */
  summary_workloads: number;
}

export function defaultTaskstatsConfig(): TaskstatsReceiverConfig {
  return {
    collection_interval: 10_000,
    exits: true,
    cpus: 'all',
    receive_buffer: 16 * 1024 * 1024,
    exit_listeners: 1,
    live: true,
    per_process: false,
    delay_accounting: 'keep',
    metadata: { command_line: false, executable_path: false },
    events: defaultEventsConfig(),
    histograms: defaultExitDistributionsConfig(),
    cgroups: defaultCgroupReconcileConfig(),
  };
}

/**
 * Defaults a node can live with at 14,000 exits/s (two fork loops): every failure up to 100 a
 * second, successes at 10 a second, and what was held back reported per workload every minute.
 */
export function defaultEventsConfig(): TaskstatsEventsConfig {
  return { threads: false, failures_per_second: 100, successes_per_second: 10, summary_interval: 60_000, summary_workloads: 1000 };
}

// A number or "unlimited": the word is checked in validateTaskstatsConfig, which says both forms
// in one message (an anyOf here gives two errors, one of them "must be equal to constant").
const budgetSchema = (what: string): ConfigSchema => ({
  type: ['integer', 'string'],
  minimum: 0,
  description: `${what} kept per second (0: none, "unlimited": every one).`,
});

/** A kernel cpulist: "0", "0-3", "0-3,5,8-9". */
export const CPULIST_RE = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

export const taskstatsConfigSchema: ConfigSchema = {
  type: 'object',
  properties: {
    collection_interval: durationSchema({ minMs: 100, description: 'How often every process is queried and a collection cycle ends (export cadence).' }),
    exits: { type: 'boolean', description: 'Listen to exit events (every process that ends, without loss).' },
    cpus: { type: 'string', description: 'CPUs whose exits are listened to: a cpulist such as "0-3,5", or "all".' },
    receive_buffer: sizeSchema({ minBytes: 65536, description: 'Receive buffer of the exit listener (SO_RCVBUFFORCE), e.g. 16MiB.' }),
    exit_listeners: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      description: 'Exit sockets, each listening to a share of the CPUs with its own receive_buffer (against drops on many-CPU hosts).',
    },
    live: { type: 'boolean', description: 'Query every live process each collection_interval.' },
    per_process: { type: 'boolean', description: 'One series per process (pid and start time as attributes) instead of per command and cgroup.' },
    delay_accounting: { enum: ['keep', 'enable'], description: 'enable: write 1 to kernel.task_delayacct at start (needs CAP_SYS_ADMIN).' },
    metadata: {
      type: 'object',
      properties: {
        cgroup_v1_hierarchy: {
          type: 'string',
          minLength: 1,
          description: 'cgroup v1-only hosts: the hierarchy naming a process\'s group, e.g. "memory" or "name=systemd".',
        },
        command_line: { type: 'boolean' },
        executable_path: { type: 'boolean' },
      },
    },
    events: {
      type: 'object',
      description: 'Exit events (log records), produced when the receiver is in a logs pipeline.',
      properties: {
        threads: { type: 'boolean', description: 'Also a process.thread.exit record for each thread that ends before its process.' },
        failures_per_second: budgetSchema('Failed exits (non-zero exit code, killed by a signal, core dumped)'),
        successes_per_second: budgetSchema('Successful exits (exit code 0)'),
        summary_interval: durationSchema({
          minMs: 1000,
          description: 'How often a process.exit.suppressed record per workload reports what the budgets held back.',
        }),
        summary_workloads: {
          type: 'integer',
          minimum: 1,
          maximum: 100_000,
          description: 'Workloads (command, cgroup) reported apart per summary interval; the others are summed into one record.',
        },
      },
    },
    histograms: exitDistributionsConfigSchema,
    cgroups: cgroupReconcileConfigSchema,
  },
};

/** The CPU numbers of a cpulist ("0-3,5"); undefined when malformed or a range is reversed. */
export function parseCpulist(list: string): number[] | undefined {
  const s = list.replace(/\s+/g, '');
  if (!CPULIST_RE.test(s)) return undefined;
  const out: number[] = [];
  for (const part of s.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    const end = b ?? a;
    if (end < a || end - a > 65536) return undefined;
    for (let c = a; c <= end; c++) out.push(c);
  }
  return out;
}

/**
 * Split a cpulist into at most `parts` cpulists of consecutive CPUs (as equal as possible).
 * "0-7" in 2 -> ["0-3", "4-7"]. Fewer parts when there are fewer CPUs.
 */
export function splitCpulist(list: string, parts: number): string[] {
  const cpus = parseCpulist(list);
  if (!cpus || parts <= 1 || cpus.length <= 1) return [list];
  const n = Math.min(parts, cpus.length);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const share = cpus.slice(Math.floor((i * cpus.length) / n), Math.floor(((i + 1) * cpus.length) / n));
    out.push(formatCpulist(share));
  }
  return out;
}

/** [0,1,2,5] -> "0-2,5". */
export function formatCpulist(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    ranges.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return ranges.join(',');
}

/** CPUs of `list` that are not in the machine's possible CPUs (the kernel refuses those with EINVAL). */
export function impossibleCpus(list: string, possible = possibleCpus()): number[] {
  const have = new Set(parseCpulist(possible) ?? []);
  return (parseCpulist(list) ?? []).filter((c) => !have.has(c));
}

/** Checks the cpulist's syntax and that it names possible CPUs only. */
export function validateTaskstatsConfig(config: TaskstatsReceiverConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.cpus !== 'all') {
    if (!CPULIST_RE.test(config.cpus.replace(/\s+/g, ''))) {
      problems.push({ path: 'cpus', message: `invalid cpulist "${config.cpus}" (expected "all" or e.g. "0-3,5")` });
    } else if (!parseCpulist(config.cpus)) {
      problems.push({ path: 'cpus', message: `invalid range in cpulist "${config.cpus}" (end before start)` });
    } else {
      const bad = impossibleCpus(config.cpus);
      if (bad.length > 0) {
        problems.push({
          path: 'cpus',
          message: `cpulist "${config.cpus}" names CPUs this machine does not have (${bad.slice(0, 5).join(', ')}); possible CPUs: ${possibleCpus()}`,
        });
      }
    }
  }
  for (const key of ['failures_per_second', 'successes_per_second'] as const) {
    const v: unknown = config.events[key]; // the type says what is valid; this is the user's input
    if (typeof v === 'string' && v !== 'unlimited') {
      problems.push({ path: `events.${key}`, message: `must be a number of events per second (0 or more) or "unlimited" (got "${v}")` });
    }
  }
  problems.push(...validateExitDistributions(config.histograms));
  if (!config.exits && !config.live) problems.push({ path: '', message: 'both exits and live are false: the receiver would produce nothing' });
  return problems;
}

/** The possible CPUs as the kernel lists them ("0-1"); "0" when unreadable. */
export function possibleCpus(path = '/sys/devices/system/cpu/possible'): string {
  try {
    const s = fs.readFileSync(path, 'utf8').trim();
    return CPULIST_RE.test(s) ? s : '0';
  } catch {
    return '0';
  }
}
