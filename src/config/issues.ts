/**
 * Configuration problems. Every check appends to one list so that `validate` reports every
 * problem at once, each with its config path and, when known, the file position.
 */
import { AgentError, ErrorCode } from '../api/index.js';

export interface SourcePosition {
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
}

export interface ConfigIssue {
  severity: 'error' | 'warning';
  /** Config path, e.g. `service.pipelines.metrics.processors[1]`; empty for the whole file. */
  path: string;
  message: string;
  file?: string;
  pos?: SourcePosition;
}

export function formatIssue(issue: ConfigIssue): string {
  let where = issue.file ?? '';
  if (issue.file && issue.pos) where += `:${issue.pos.line}:${issue.pos.col}`;
  const prefix = issue.severity === 'warning' ? 'warning: ' : '';
  const parts = [where, issue.path].filter((p) => p !== '');
  return (parts.length ? parts.join(': ') + ': ' : '') + prefix + issue.message;
}

/** Thrown when a configuration cannot be used (`bad_config`); carries every problem found. */
export class ConfigError extends AgentError {
  constructor(readonly issues: ConfigIssue[]) {
    super(
      ErrorCode.BAD_CONFIG,
      issues
        .filter((i) => i.severity === 'error')
        .map(formatIssue)
        .join('\n'),
    );
    this.name = 'ConfigError';
  }
}

/** Appends `.key` or `[i]` to a config path. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return base === '' ? key : `${base}.${key}`;
}
