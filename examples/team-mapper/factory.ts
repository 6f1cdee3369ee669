import { defineProcessor, type LogProcessor, type Processor } from '../../src/api/index.js';
import { defaultTeamMapperConfig, teamMapperConfigSchema, validateTeamMapperConfig, type TeamMapperConfig } from './config.js';
import { TeamMapperProcessor } from './processor.js';

export const teamMapperFactory = defineProcessor<TeamMapperConfig, Processor & LogProcessor>({
  type: 'team_mapper',
  kind: 'processor',
  description: 'Example plugin: adds a team attribute from cgroup path prefixes or Kubernetes namespaces',
  stability: 'development',
  signals: ['metrics', 'logs'],
  defaultConfig: defaultTeamMapperConfig,
  configSchema: teamMapperConfigSchema,
  validate: validateTeamMapperConfig,
  create: (ctx, config) => new TeamMapperProcessor(ctx, config),
});
