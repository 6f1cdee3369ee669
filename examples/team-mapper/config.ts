import type { ConfigProblem, ConfigSchema } from '../../src/api/index.js';

/** One team and the workloads it owns. A workload matches when any of the lists matches. */
export interface TeamRule {
  team: string;
  /** cgroup path prefixes, e.g. `/system.slice/postgresql` or `/kubepods.slice/` (compared as plain text). */
  cgroup_prefixes?: string[];
  /** Kubernetes namespaces (needs k8sattributes earlier in the pipeline for `k8s.namespace.name`). */
  namespaces?: string[];
}

export interface TeamMapperConfig {
  /** The attribute to write. */
  attribute: string;
  /** Value for samples no rule matches; unset leaves them without the attribute. */
  default_team?: string;
  /** Rules in order: the first that matches wins. */
  teams: TeamRule[];
}

export function defaultTeamMapperConfig(): TeamMapperConfig {
  return { attribute: 'team', teams: [] };
}

const stringList = { type: 'array', items: { type: 'string', minLength: 1 } };

// JSON Schema; the host adds `additionalProperties: false` to every object that does not say
// otherwise, so a misspelt key is an error with its line number.
export const teamMapperConfigSchema: ConfigSchema = {
  type: 'object',
  properties: {
    attribute: { type: 'string', minLength: 1, description: 'Attribute to write.' },
    default_team: { type: 'string', minLength: 1, description: 'Team for samples no rule matches.' },
    teams: {
      type: 'array',
      items: {
        type: 'object',
        required: ['team'],
        properties: {
          team: { type: 'string', minLength: 1 },
          cgroup_prefixes: stringList,
          namespaces: stringList,
        },
      },
    },
  },
};

/** Checks of meaning a schema cannot express; each problem names its path below the component. */
export function validateTeamMapperConfig(config: TeamMapperConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.teams.length === 0 && config.default_team === undefined) {
    problems.push({ path: 'teams', message: 'is empty and no default_team is set: the processor would do nothing' });
  }
  const namespaceOwner = new Map<string, string>();
  config.teams.forEach((rule, i) => {
    if (!rule.cgroup_prefixes?.length && !rule.namespaces?.length) {
      problems.push({ path: `teams[${i}]`, message: `team "${rule.team}" needs cgroup_prefixes or namespaces` });
    }
    rule.cgroup_prefixes?.forEach((prefix, j) => {
      if (!prefix.startsWith('/'))
        problems.push({ path: `teams[${i}].cgroup_prefixes[${j}]`, message: `"${prefix}" must start with "/" (cgroup paths are absolute)` });
    });
    rule.namespaces?.forEach((ns, j) => {
      const owner = namespaceOwner.get(ns);
      if (owner !== undefined) problems.push({ path: `teams[${i}].namespaces[${j}]`, message: `namespace "${ns}" already belongs to team "${owner}"` });
      else namespaceOwner.set(ns, rule.team);
    });
  });
  return problems;
}
