import { ATTR, type Attributes, type ComponentContext, type LogBatch, type LogProcessor, type Processor, type SampleBatch } from '../../src/api/index.js';
import type { TeamMapperConfig } from './config.js';

/**
 * Adds a `team` attribute from the cgroup path (prefixes) or the Kubernetes namespace, to samples
 * (metrics pipelines) and to log records such as exit events (logs pipelines).
 *
 * Samples share their attributes objects (one per workload) and those objects are immutable, so
 * the processor builds the new object once per input object and keeps it in a WeakMap: every
 * later sample of the workload costs one lookup, and the host's metrics stage, which caches
 * series per attributes object, keeps its fast path.
 */
export class TeamMapperProcessor implements Processor, LogProcessor {
  private cache = new WeakMap<Attributes, Attributes>();
  private readonly namespaceTeam = new Map<string, string>();
  private readonly mapped: { add(value: number, attributes?: Attributes): void };

  constructor(
    private readonly ctx: ComponentContext,
    private readonly config: TeamMapperConfig,
  ) {
    for (const rule of config.teams) for (const ns of rule.namespaces ?? []) this.namespaceTeam.set(ns, rule.team);
    // Self-telemetry: served at /metrics and exported with the agent's own metrics.
    this.mapped = ctx.telemetry.counter('workloads_mapped', 'Distinct workloads (attribute sets) given a team, by team', '{workload}');
    ctx.telemetry.gauge('teams', 'Teams configured', () => config.teams.length, '{team}');
  }

  start(): Promise<void> {
    this.ctx.logger.info('team mapper ready', { teams: this.config.teams.length, attribute: this.config.attribute });
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this.cache = new WeakMap();
    return Promise.resolve();
  }

  process(batch: SampleBatch): SampleBatch {
    for (const sample of batch) {
      let out = this.cache.get(sample.attributes);
      if (out === undefined) {
        out = this.map(sample.attributes);
        this.cache.set(sample.attributes, out);
      }
      sample.attributes = out; // replace, never mutate: the input object is shared
    }
    return batch;
  }

  /**
   * Log records own their attributes object (each pipeline gets its own records), so the team is
   * written into it; no cache by object, since every record has a new one.
   */
  processLogs(batch: LogBatch): LogBatch {
    for (const record of batch) {
      const team = this.teamOf(record.attributes);
      if (team !== undefined) record.attributes[this.config.attribute] = team;
    }
    return batch;
  }

  /** The team of one attribute set, or undefined. */
  teamOf(attributes: Attributes): string | undefined {
    const namespace = attributes['k8s.namespace.name'];
    if (typeof namespace === 'string') {
      const team = this.namespaceTeam.get(namespace);
      if (team !== undefined) return team;
    }
    const cgroup = attributes[ATTR.CGROUP];
    if (typeof cgroup === 'string') {
      for (const rule of this.config.teams) {
        if (rule.cgroup_prefixes?.some((prefix) => cgroup.startsWith(prefix))) return rule.team;
      }
    }
    return this.config.default_team;
  }

  private map(input: Attributes): Attributes {
    const team = this.teamOf(input);
    if (team === undefined) return input; // unchanged: the very same object
    this.mapped.add(1, { team });
    // A new object (Object.assign is the cheap way to copy one in V8; spread works too).
    const out: Attributes = Object.assign({}, input);
    out[this.config.attribute] = team;
    return Object.freeze(out);
  }
}
