import { durationSchema, type ConfigProblem, type ConfigSchema } from '../../src/api/index.js';
import { PatternError, StringListMatcher, type MatchType } from './match.js';

/** One `include` or `exclude` block. */
export interface MatchBlockConfig {
  /** How the patterns are read: `strict` (equal), `regexp` (unanchored JS RegExp), `glob`. */
  match_type?: MatchType;
  /** Patterns for the command name (`process.executable.name`). */
  commands?: string[];
  /** Patterns for the cgroup v2 path (`process.linux.cgroup`). */
  cgroups?: string[];
  /** Also try the `commands` patterns on the full command line (context `process.command_line`). */
  match_command_line?: boolean;
  /** Events only: the exit ended in one of these ways (any). */
  outcomes?: ExitOutcome[];
  /** Events only: the process ran at least this long (ms, from a duration string). */
  min_duration?: number;
  /** Events only: the process used at least this much CPU, user + system (ms). */
  min_cpu?: number;
}

/** How an exit ended, for `outcomes`. */
export type ExitOutcome = 'non_zero_exit_code' | 'killed_by_signal' | 'core_dumped';
export const EXIT_OUTCOMES: readonly ExitOutcome[] = ['non_zero_exit_code', 'killed_by_signal', 'core_dumped'];

export interface FilterConfig {
  /** When set, only samples that match continue. */
  include?: MatchBlockConfig;
  /** When set, samples that match are dropped. Applied after `include`. */
  exclude?: MatchBlockConfig;
}

const matchBlockSchema: ConfigSchema = {
  type: 'object',
  description: 'A sample matches when it matches one of the commands (if any are given) and one of the cgroups (if any are given).',
  properties: {
    match_type: { enum: ['strict', 'regexp', 'glob'], description: 'How patterns are read. Default strict.' },
    commands: { type: 'array', items: { type: 'string' }, description: 'Patterns for the command name.' },
    cgroups: { type: 'array', items: { type: 'string' }, description: 'Patterns for the cgroup path.' },
    match_command_line: { type: 'boolean', description: 'Also match the commands patterns against the full command line.' },
    outcomes: {
      type: 'array',
      items: { enum: EXIT_OUTCOMES },
      minItems: 1,
      description: 'Events only: the exit ended in one of these ways (any of them).',
    },
    min_duration: durationSchema({ description: 'Events only: the process ran at least this long, e.g. 500ms.' }),
    min_cpu: durationSchema({ description: 'Events only: the process used at least this much CPU (user + system), e.g. 50ms.' }),
  },
  additionalProperties: false,
};

export const filterConfigSchema: ConfigSchema = {
  type: 'object',
  properties: { include: matchBlockSchema, exclude: matchBlockSchema },
  additionalProperties: false,
};

export function defaultFilterConfig(): FilterConfig {
  return {};
}

/** A block with its defaults filled in and its patterns compiled. */
export interface CompiledBlock {
  commands: StringListMatcher;
  cgroups: StringListMatcher;
  matchCommandLine: boolean;
  /** Has commands or cgroups: applies to samples (the exit criteria apply to events only). */
  matchesSamples: boolean;
  /** OUTCOME_* bits of `outcomes`; 0 when unset. */
  outcomes: number;
  /** Seconds; 0 when unset. */
  minDurationS: number;
  minCpuS: number;
}

export const OUTCOME_NON_ZERO_EXIT_CODE = 1;
export const OUTCOME_KILLED_BY_SIGNAL = 2;
export const OUTCOME_CORE_DUMPED = 4;
const OUTCOME_BITS: Record<ExitOutcome, number> = {
  non_zero_exit_code: OUTCOME_NON_ZERO_EXIT_CODE,
  killed_by_signal: OUTCOME_KILLED_BY_SIGNAL,
  core_dumped: OUTCOME_CORE_DUMPED,
};

export function compileBlock(block: MatchBlockConfig, path: string, problems: ConfigProblem[]): CompiledBlock | undefined {
  const matchType = block.match_type ?? 'strict';
  const commands = block.commands ?? [];
  const cgroups = block.cgroups ?? [];
  let ok = true;
  const exitCriteria = (block.outcomes?.length ?? 0) > 0 || block.min_duration !== undefined || block.min_cpu !== undefined;
  if (commands.length === 0 && cgroups.length === 0 && !exitCriteria) {
    problems.push({ path, message: 'needs at least one pattern in "commands" or "cgroups", or an exit criterion ("outcomes", "min_duration", "min_cpu")' });
    ok = false;
  }
  if (block.match_command_line && commands.length === 0) {
    problems.push({ path: `${path}.match_command_line`, message: 'is true but "commands" is empty' });
    ok = false;
  }
  const compile = (list: string[], key: 'commands' | 'cgroups'): StringListMatcher | undefined => {
    try {
      return new StringListMatcher(matchType, list, key === 'commands' ? 'command' : 'cgroup');
    } catch (err) {
      if (!(err instanceof PatternError)) throw err;
      problems.push({ path: `${path}.${key}[${err.index}]`, message: err.message });
      return undefined;
    }
  };
  const c = compile(commands, 'commands');
  const g = compile(cgroups, 'cgroups');
  if (!ok || !c || !g) return undefined;
  let outcomes = 0;
  for (const o of block.outcomes ?? []) outcomes |= OUTCOME_BITS[o];
  return {
    commands: c,
    cgroups: g,
    matchCommandLine: block.match_command_line ?? false,
    matchesSamples: commands.length > 0 || cgroups.length > 0,
    outcomes,
    minDurationS: (block.min_duration ?? 0) / 1000,
    minCpuS: (block.min_cpu ?? 0) / 1000,
  };
}

/** Every problem of the config, each with its path below the component (`include.commands[2]`). */
export function validateFilterConfig(config: FilterConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.include) compileBlock(config.include, 'include', problems);
  if (config.exclude) compileBlock(config.exclude, 'exclude', problems);
  return problems;
}
