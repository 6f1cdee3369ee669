/**
 * The error and drop-reason catalogue: one code per cause, wherever it is raised (host, built-in
 * or custom plugin), so that a log line, a test and docs/errors.md (checked against this file by
 * test/host/errors-doc.test.ts) name the same thing.
 */

/** Why the agent, a command or a component cannot do its work. */
export const ErrorCode = {
  /** A Linux capability is missing (CAP_NET_ADMIN for taskstats and the proc connector). */
  MISSING_CAPABILITY: 'missing_capability',
  /** A shared library cannot be loaded (libnl-3, libnl-genl-3). */
  MISSING_LIBRARY: 'missing_library',
  /** The kernel has no TASKSTATS generic netlink family, or it is not reachable from this network namespace. */
  KERNEL_WITHOUT_TASKSTATS: 'kernel_without_taskstats',
  /** The kernel accepts exit listeners only from the initial pid and user namespace. */
  NOT_INITIAL_NAMESPACE: 'not_initial_namespace',
  /** The configuration (file, component options or environment variables) cannot be used. */
  BAD_CONFIG: 'bad_config',
  /** A plugin module cannot be loaded or registered. */
  BAD_PLUGIN: 'bad_plugin',
  /** The command line cannot be understood. */
  BAD_USAGE: 'bad_usage',
  /** A listen address (telemetry endpoint, prometheus exporter) is in use or cannot be bound. */
  CANNOT_LISTEN: 'cannot_listen',
  /** A system call failed for a reason none of the codes above names (`errno` says which). */
  SYSTEM_ERROR: 'system_error',
  /** A component threw something without a code while it was created or started. */
  COMPONENT_FAILED: 'component_failed',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What each error code means and what to do about it (rendered in docs/errors.md). */
export const ERROR_CATALOGUE: Readonly<Record<ErrorCode, { readonly meaning: string; readonly remedy: string }>> = {
  missing_capability: {
    meaning:
      'A Linux capability the component needs is not held: taskstats queries, exit listeners and the proc connector need CAP_NET_ADMIN in the initial user namespace.',
    remedy: 'Run as root, or grant the capability (`setcap cap_net_admin+ep`, or `securityContext.capabilities.add: [NET_ADMIN]` in Kubernetes).',
  },
  missing_library: {
    meaning: 'A shared library cannot be loaded (the taskstats receiver needs libnl-3.so.200 and libnl-genl-3.so.200).',
    remedy: 'Install it: `apt-get install libnl-3-200 libnl-genl-3-200` (Debian/Ubuntu), `libnl3` (Fedora/RHEL, Alpine).',
  },
  kernel_without_taskstats: {
    meaning: 'The kernel has no TASKSTATS generic netlink family: built without CONFIG_TASKSTATS, or the agent is not in the initial network namespace.',
    remedy: 'Use a kernel with CONFIG_TASKSTATS=y; in Kubernetes set `hostNetwork: true`.',
  },
  not_initial_namespace: {
    meaning: 'The kernel refused an exit-event listener (EINVAL): it accepts them only from the initial pid and user namespace.',
    remedy: 'Run the agent on the host, or in Kubernetes with `hostPID: true` and `hostNetwork: true`, and not in a user namespace.',
  },
  bad_config: {
    meaning: 'The configuration cannot be used: every problem is reported with its config path and file position, or the environment variable at fault.',
    remedy: 'Fix what each message names; `taskstats-agent validate --config FILE` checks a file without starting anything.',
  },
  bad_plugin: {
    meaning: 'A `plugins:` entry cannot be found, imported or registered (no default export, a malformed factory, a type registered twice).',
    remedy: 'Fix the module the message names; see docs/plugins.md.',
  },
  bad_usage: {
    meaning: 'The command line names an unknown command or option, or an option value is invalid.',
    remedy: 'See `taskstats-agent --help`.',
  },
  cannot_listen: {
    meaning: 'An address the agent must listen on (the telemetry endpoint, the prometheus exporter) is in use or cannot be bound.',
    remedy: "Choose another port (port 0 picks a free one), or stop what holds it; in Kubernetes with hostNetwork, the port is the node's.",
  },
  system_error: {
    meaning: 'A system call failed for a reason no other code names; the message gives the call and the errno.',
    remedy: 'Read the message; it names the call that failed.',
  },
  component_failed: {
    meaning: 'A component threw an error without a code while it was being created or started.',
    remedy: "Read the component's message (logged with its id and the phase).",
  },
};

/**
 * An error with a catalogue code. Throw it from a component (built-in or custom) so that the
 * host and the logs name the cause; `message` says what happened and what to do.
 */
export class AgentError extends Error {
  /** The errno of the failed system call, 0 when there is none. */
  readonly errno: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options: { errno?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.errno = options.errno ?? 0;
  }
}

/** The catalogue code of an error, looking through `cause` chains; undefined when none has one. */
export function errorCodeOf(err: unknown): ErrorCode | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof AgentError) return e.code;
  }
  return undefined;
}

/**
 * Why items were dropped: the `reason` attribute of `taskstats_agent.component.dropped_items`.
 * A component passes one to `ctx.telemetry.dropped()`; a plugin's own reason (snake_case) is
 * allowed, and belongs in its README.
 */
export const DropReason = {
  // The host's pipelines.
  FILTERED: 'filtered',
  PROCESSOR_ERROR: 'processor_error',
  QUEUE_FULL: 'queue_full',
  STAGE_ERROR: 'stage_error',
  EXPORT_BACKLOG: 'export_backlog',
  SHUTTING_DOWN: 'shutting_down',
  INVALID_BATCH: 'invalid_batch',
  NO_METRICS_PIPELINE: 'no_metrics_pipeline',
  INVALID_SAMPLE: 'invalid_sample',
  // The exporter helper (and the exporters over it).
  SEND_FAILED: 'send_failed',
  FLUSH_TIMEOUT: 'flush_timeout',
  SHUTDOWN: 'shutdown',
  NO_ENDPOINT: 'no_endpoint',
  // The taskstats receiver.
  RECORD_WITHOUT_PID: 'record_without_pid',
  THREAD_EXIT_UNMATCHED: 'thread_exit_unmatched',
  EXIT_RECORD_ERROR: 'exit_record_error',
  LIVE_RECORD_ERROR: 'live_record_error',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Who counts each drop reason and what it means (rendered in docs/errors.md). */
export const DROP_CATALOGUE: Readonly<Record<DropReason, { readonly by: string; readonly meaning: string }>> = {
  filtered: { by: 'a processor', meaning: 'items the processor did not return (usually on purpose: a filter)' },
  processor_error: { by: 'a processor', meaning: 'the whole batch, because the processor threw, rejected, or returned something that is not an array' },
  queue_full: {
    by: '`pipeline`; an exporter over the helper',
    meaning:
      'a pipeline: a batch arrived while 1000 batches waited behind an asynchronous processor; an exporter: the oldest waiting batches, when its sending queue held `queue_size` batches or the new batch would pass `queue_items` items',
  },
  stage_error: { by: '`pipeline`', meaning: 'the metrics stage threw on a batch (a bug)' },
  export_backlog: {
    by: 'an exporter (with `pipeline.id`)',
    meaning: 'a collection not handed to an exporter because 8 of its exports were still unfinished; the other exporters are unaffected',
  },
  shutting_down: { by: 'a receiver', meaning: "a batch handed over after the receiver's shutdown completed" },
  invalid_batch: { by: 'a receiver', meaning: '`consume()` was called with something that is not an array' },
  no_metrics_pipeline: {
    by: 'a receiver',
    meaning: 'samples handed to `ctx.next` by a receiver in no metrics pipeline (a receiver of both signals should check `ctx.metrics`)',
  },
  invalid_sample: {
    by: '`metrics_stage` (with `pipeline.id`)',
    meaning: 'samples the metrics stage refused (wrong values array, non-finite value, bad attributes); a warning names the reason',
  },
  send_failed: { by: 'an exporter over the helper', meaning: 'a batch whose export failed and is not retryable, or whose retries ran out' },
  flush_timeout: { by: 'an exporter over the helper', meaning: 'still queued when the flush deadline at shutdown passed' },
  shutdown: { by: 'an exporter over the helper', meaning: 'left in the queue after the flush at shutdown' },
  no_endpoint: { by: 'otlp', meaning: 'items of a signal for which no endpoint is configured' },
  record_without_pid: { by: 'taskstats', meaning: 'a kernel record without a pid (cannot be attributed)' },
  thread_exit_unmatched: { by: 'taskstats', meaning: 'a thread exit of a third process under one tgid at once, whose thread totals cannot be kept' },
  exit_record_error: { by: 'taskstats', meaning: 'an exit record whose handling threw (logged with the pid)' },
  live_record_error: { by: 'taskstats', meaning: 'a live record whose handling threw (logged with the pid)' },
};
