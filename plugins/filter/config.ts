import type { ConfigProblem, ConfigSchema } from '../../src/api/index.js';
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
}

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
}

export function compileBlock(block: MatchBlockConfig, path: string, problems: ConfigProblem[]): CompiledBlock | undefined {
  const matchType = block.match_type ?? 'strict';
  const commands = block.commands ?? [];
  const cgroups = block.cgroups ?? [];
  let ok = true;
  if (commands.length === 0 && cgroups.length === 0) {
    problems.push({ path, message: 'needs at least one pattern in "commands" or "cgroups"' });
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
  return { commands: c, cgroups: g, matchCommandLine: block.match_command_line ?? false };
}

/** Every problem of the config, each with its path below the component (`include.commands[2]`). */
export function validateFilterConfig(config: FilterConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.include) compileBlock(config.include, 'include', problems);
  if (config.exclude) compileBlock(config.exclude, 'exclude', problems);
  return problems;
}
