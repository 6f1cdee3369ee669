/**
 * Reads a YAML configuration into plain values, expanding `${env:VAR}` / `${env:VAR:-default}`
 * (with `$$` as an escaped `$`) in string values as the OpenTelemetry Collector does, and keeps
 * the line and column of every value and key so that later checks can point into the file.
 */
import { LineCounter, isMap, isScalar, isSeq, parse as parseYamlValue, parseDocument } from 'yaml';
import type { Node, Scalar } from 'yaml';
import { joinPath } from './issues.js';
import type { ConfigIssue, SourcePosition } from './issues.js';

export interface YamlSource {
  /** The plain value (undefined when the file had syntax errors). */
  value: unknown;
  /** Position of the value at each config path. */
  valuePositions: Map<string, SourcePosition>;
  /** Position of the key that names each config path (for "unknown key" errors). */
  keyPositions: Map<string, SourcePosition>;
  issues: ConfigIssue[];
  file: string;
}

const ENV_REFERENCE = /\$\$|\$\{env:([^}]*)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Expands environment references in one string. Returns the new string and whether the whole
 * string was a single reference (then the Collector gives the value the YAML type it spells).
 */
export function expandEnv(
  text: string,
  env: NodeJS.ProcessEnv,
  report: (message: string, severity: 'error' | 'warning') => void,
): { text: string; wholeReference: boolean } {
  if (!text.includes('$')) return { text, wholeReference: false };
  let references = 0;
  let matchedAll = false;
  const out = text.replace(ENV_REFERENCE, (match: string, body: string | undefined, bare: string | undefined, offset: number) => {
    if (match === '$$') return '$';
    if (bare !== undefined) {
      report(`"${match}" is not expanded: write \${env:${bare}} for an environment variable (or $${match} for the text itself)`, 'warning');
      return match;
    }
    references++;
    if (offset === 0 && match.length === text.length) matchedAll = true;
    const sep = body!.indexOf(':-');
    const name = sep < 0 ? body! : body!.slice(0, sep);
    const fallback = sep < 0 ? undefined : body!.slice(sep + 2);
    if (!ENV_NAME.test(name)) {
      report(`invalid environment variable name "${name}" in "${match}" (expected [A-Za-z_][A-Za-z0-9_]*)`, 'error');
      return match;
    }
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    if (value === undefined) report(`environment variable "${name}" is not set; using an empty string`, 'warning');
    return '';
  });
  return { text: out, wholeReference: references === 1 && matchedAll };
}

/** Parses YAML text. `file` is only used in messages. */
export function parseYamlConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, merge: true });
  const issues: ConfigIssue[] = [];
  const valuePositions = new Map<string, SourcePosition>();
  const keyPositions = new Map<string, SourcePosition>();
  const posOf = (node: { range?: [number, number, number] | null } | null | undefined): SourcePosition | undefined => {
    if (!node?.range) return undefined;
    const p = lineCounter.linePos(node.range[0]);
    return { line: p.line, col: p.col };
  };

  // Only the first syntax error: the parser's later ones are almost always caused by it.
  const reported = doc.errors.length > 0 ? [doc.errors[0]!] : doc.warnings;
  for (const e of reported) {
    const lp = e.linePos?.[0];
    const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more YAML errors after it, probably caused by it)` : '';
    issues.push({
      severity: doc.errors.length > 0 ? 'error' : 'warning',
      path: '',
      message: `YAML: ${e.message.split('\n')[0]}${more}`,
      file,
      pos: lp ? { line: lp.line, col: lp.col } : undefined,
    });
  }
  if (doc.errors.length > 0) return { value: undefined, valuePositions, keyPositions, issues, file };

  const walk = (node: unknown, path: string): void => {
    const pos = posOf(node as Node);
    if (pos && !valuePositions.has(path)) valuePositions.set(path, pos);
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        if (key === '<<') {
          // A merge key: its (inline) mapping still needs env expansion; its keys land on this path.
          if (pair.value) walk(pair.value, path);
          continue;
        }
        const child = joinPath(path, key);
        const kp = posOf(pair.key as Node);
        if (kp) keyPositions.set(child, kp);
        if (pair.value == null || (isScalar(pair.value) && pair.value.range == null)) {
          if (kp) valuePositions.set(child, kp);
        } else walk(pair.value, child);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, joinPath(path, i)));
    } else if (isScalar(node) && typeof node.value === 'string') {
      expandScalar(node, path, pos);
    }
  };

  // Expands environment references in a string value (never in keys), before conversion to JS.
  const expandScalar = (node: Scalar, path: string, pos: SourcePosition | undefined): void => {
    const original = node.value as string;
    const { text: expanded, wholeReference } = expandEnv(original, env, (message, severity) => issues.push({ severity, path, message, file, pos }));
    if (expanded === original) return;
    // `port: ${env:PORT}` gives a number, as in the Collector; quoted scalars stay strings.
    if (wholeReference && node.type === 'PLAIN') {
      try {
        const typed: unknown = parseYamlValue(expanded);
        if (typed === null || typeof typed === 'number' || typeof typed === 'boolean') {
          node.value = typed;
          return;
        }
      } catch {
        // not a scalar YAML value: keep the string
      }
    }
    node.value = expanded;
  };
  walk(doc.contents, '');

  const value: unknown = doc.toJS({ maxAliasCount: 1000 });
  return { value, valuePositions, keyPositions, issues, file };
}
