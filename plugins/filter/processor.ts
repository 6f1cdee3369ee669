import {
  ATTR,
  type Attributes,
  type ComponentContext,
  type LogBatch,
  type LogProcessor,
  type Processor,
  type Sample,
  type SampleBatch,
} from '../../src/api/index.js';
import { compileBlock, OUTCOME_CORE_DUMPED, OUTCOME_KILLED_BY_SIGNAL, OUTCOME_NON_ZERO_EXIT_CODE, type CompiledBlock, type FilterConfig } from './config.js';

/**
 * Attributes of exit events (docs/events.md) that the exit criteria read. A record without an exit
 * status (neither a code nor a signal: e.g. a process.exit.suppressed summary) is not judged by
 * them.
 */
const EXIT = {
  CODE: 'process.exit.code',
  SIGNAL: 'process.linux.exit.signal',
  CORE_DUMPED: 'process.linux.exit.core_dumped',
  DURATION: 'process.linux.duration',
  CPU_USER: 'process.linux.cpu.user_time',
  CPU_SYSTEM: 'process.linux.cpu.system_time',
} as const;

/**
 * Keeps the samples that match `include` (when set) and do not match `exclude` (when set).
 *
 * Within one list the patterns are alternatives (OR). When a block has both `commands` and
 * `cgroups`, a sample must match both (AND), as the OpenTelemetry Collector's filterprocessor
 * match properties do. A sample without the attribute a list needs does not match that list.
 *
 * Cost: the decision depends only on the command name and the cgroup path (unless a block matches
 * command lines), so it is computed once per (cgroup, command) pair and kept in a two-level Map
 * keyed by those strings; each later sample costs two Map lookups (V8 caches a string's hash on
 * the string, and sources share the strings). We key by the strings rather than by the
 * attributes object (WeakMap) because a source that makes a new attributes object per process
 * (per-process mode) would otherwise pay a WeakMap insertion per sample: measured ~1-2 us each in
 * bench/processors, against ~40 ns for the string lookups when every object is new.
 */
const DECISION_LIMIT = 65_536;

export class FilterProcessor implements Processor, LogProcessor {
  private readonly include?: CompiledBlock;
  private readonly exclude?: CompiledBlock;
  private readonly usesCommandLine: boolean;
  /** cgroup -> command -> decision, bounded (cleared past DECISION_LIMIT pairs). */
  private decisions = new Map<unknown, Map<unknown, boolean>>();
  private decisionCount = 0;

  constructor(
    private readonly ctx: ComponentContext,
    config: FilterConfig,
  ) {
    const problems: { path: string; message: string }[] = [];
    if (config.include) this.include = compileBlock(config.include, 'include', problems);
    if (config.exclude) this.exclude = compileBlock(config.exclude, 'exclude', problems);
    if (problems.length > 0) {
      // The host validates before create(); reaching this means it was bypassed.
      throw new Error(`${ctx.id}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    }
    this.usesCommandLine = !!(this.include?.matchCommandLine || this.exclude?.matchCommandLine);
  }

  start(): Promise<void> {
    this.ctx.logger.debug('filter ready', {
      include: !!this.include,
      exclude: !!this.exclude,
      match_command_line: this.usesCommandLine,
    });
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this.decisions.clear();
    this.decisionCount = 0;
    return Promise.resolve();
  }

  process(batch: SampleBatch): SampleBatch {
    let kept = 0;
    for (let i = 0; i < batch.length; i++) {
      const sample = batch[i]!;
      if (this.passes(sample)) batch[kept++] = sample;
    }
    batch.length = kept;
    return batch;
  }

  /** Log records (exit events): the same blocks, plus the exit criteria. Not cached: records are few (budgeted) and each has its own attributes. */
  processLogs(batch: LogBatch): LogBatch {
    let kept = 0;
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i]!;
      if (this.passesRecord(record.attributes)) batch[kept++] = record;
    }
    batch.length = kept;
    return batch;
  }

  /** True when a log record with these attributes continues down the pipeline. */
  passesRecord(attributes: Attributes): boolean {
    const hasExit = attributes[EXIT.CODE] !== undefined || attributes[EXIT.SIGNAL] !== undefined;
    if (this.include && (this.include.matchesSamples || hasExit) && !recordMatches(this.include, attributes, hasExit)) return false;
    if (this.exclude && (this.exclude.matchesSamples || hasExit) && recordMatches(this.exclude, attributes, hasExit)) return false;
    return true;
  }

  /** True when the sample continues down the pipeline. */
  passes(sample: Sample): boolean {
    const attributes = sample.attributes;
    if (this.usesCommandLine) return this.decide(attributes, sample.context);
    const cgroup = attributes[ATTR.CGROUP];
    const command = attributes[ATTR.EXECUTABLE_NAME];
    let byCommand = this.decisions.get(cgroup);
    if (byCommand === undefined) {
      byCommand = new Map();
      this.decisions.set(cgroup, byCommand);
    }
    let decision = byCommand.get(command);
    if (decision === undefined) {
      decision = this.decide(attributes, undefined);
      if (++this.decisionCount > DECISION_LIMIT) {
        // cardinality guard (e.g. one cgroup per short-lived job): start over rather than grow
        this.decisions.clear();
        this.decisionCount = 0;
      }
      byCommand.set(command, decision);
    }
    return decision;
  }

  private decide(attributes: Attributes, context: Attributes | undefined): boolean {
    // A block of exit criteria only (outcomes, min_duration, min_cpu) does not apply to samples.
    if (this.include?.matchesSamples && !blockMatches(this.include, attributes, context)) return false;
    if (this.exclude?.matchesSamples && blockMatches(this.exclude, attributes, context)) return false;
    return true;
  }
}

/** A log record against a block: its patterns (the command line is an attribute there), then its exit criteria. */
function recordMatches(block: CompiledBlock, attributes: Attributes, hasExit: boolean): boolean {
  if (!blockMatches(block, attributes, attributes)) return false;
  if (!hasExit) return true;
  if (block.outcomes !== 0) {
    let how = 0;
    const code = attributes[EXIT.CODE];
    if (typeof code === 'number' && code !== 0) how |= OUTCOME_NON_ZERO_EXIT_CODE;
    if (attributes[EXIT.SIGNAL] !== undefined) how |= OUTCOME_KILLED_BY_SIGNAL;
    if (attributes[EXIT.CORE_DUMPED] === true) how |= OUTCOME_CORE_DUMPED;
    if ((how & block.outcomes) === 0) return false;
  }
  if (block.minDurationS > 0) {
    const d = attributes[EXIT.DURATION];
    if (typeof d !== 'number' || d < block.minDurationS) return false;
  }
  if (block.minCpuS > 0) {
    const u = attributes[EXIT.CPU_USER];
    const s = attributes[EXIT.CPU_SYSTEM];
    if (typeof u !== 'number' || typeof s !== 'number' || u + s < block.minCpuS) return false;
  }
  return true;
}

function blockMatches(block: CompiledBlock, attributes: Attributes, context: Attributes | undefined): boolean {
  if (!block.commands.empty) {
    const command = attributes[ATTR.EXECUTABLE_NAME];
    let hit = typeof command === 'string' && block.commands.matches(command);
    if (!hit && block.matchCommandLine) {
      const commandLine = context?.[ATTR.COMMAND_LINE];
      hit = typeof commandLine === 'string' && commandLine !== '' && block.commands.matches(commandLine);
    }
    if (!hit) return false;
  }
  if (!block.cgroups.empty) {
    const cgroup = attributes[ATTR.CGROUP];
    if (typeof cgroup !== 'string' || !block.cgroups.matches(cgroup)) return false;
  }
  return true;
}
