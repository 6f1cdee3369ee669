/**
 * Pattern lists compiled once into a matcher with a per-string result cache.
 *
 * The same few hundred command names and cgroup paths come back for every exit, so after the
 * first sight of a string its answer is one Map lookup (V8 keeps a string's hash on the string).
 */
import { AgentError, ErrorCode } from '../../src/api/index.js';

export type MatchType = 'strict' | 'regexp' | 'glob';

/** Which value a pattern list is matched against; it decides what glob wildcards may span. */
export type MatchSubject = 'command' | 'cgroup';

/** A pattern that does not compile (`bad_config`): `index` is its position in the list. */
export class PatternError extends AgentError {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(ErrorCode.BAD_CONFIG, message);
  }
}

/**
 * Translate a glob into an anchored regular expression source.
 * For cgroup paths `*` and `?` stay within one path segment and `**` spans segments (like a shell
 * path glob); for command names and command lines every wildcard spans everything, since `/` is
 * just another character there (`*nginx*` must match `/usr/sbin/nginx -g ...`).
 */
export function globToRegExpSource(glob: string, subject: MatchSubject): string {
  const any = subject === 'cgroup' ? '[^/]*' : '.*';
  const one = subject === 'cgroup' ? '[^/]' : '.';
  let out = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        while (glob[i + 1] === '*') i++;
      } else {
        out += any;
      }
    } else if (c === '?') {
      out += one;
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) throw new Error(`unclosed "[" at offset ${i}`);
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      out += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = close;
    } else if (c === '\\' && i + 1 < glob.length) {
      out += escapeRegExp(glob[++i]!);
    } else {
      out += escapeRegExp(c);
    }
  }
  return out + '$';
}

function escapeRegExp(c: string): string {
  return /[.*+?^${}()|[\]\\/-]/.test(c) ? '\\' + c : c;
}

/** Bound on the per-matcher string cache; past it the cache starts over (cardinality guard). */
const CACHE_LIMIT = 8192;

export class StringListMatcher {
  private readonly exact = new Set<string>();
  private readonly regexps: RegExp[] = [];
  private readonly cache = new Map<string, boolean>();

  /** Throws PatternError naming the first pattern that does not compile. */
  constructor(
    readonly matchType: MatchType,
    readonly patterns: readonly string[],
    subject: MatchSubject,
  ) {
    patterns.forEach((p, index) => {
      if (typeof p !== 'string' || p === '') throw new PatternError(index, 'empty pattern');
      if (matchType === 'strict') {
        this.exact.add(p);
        return;
      }
      let source: string;
      try {
        source = matchType === 'glob' ? globToRegExpSource(p, subject) : p;
        this.regexps.push(new RegExp(source));
      } catch (err) {
        throw new PatternError(index, `invalid ${matchType} pattern ${JSON.stringify(p)}: ${(err as Error).message}`);
      }
    });
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  matches(value: string): boolean {
    if (this.matchType === 'strict') return this.exact.has(value);
    let hit = this.cache.get(value);
    if (hit === undefined) {
      hit = false;
      for (const re of this.regexps) {
        if (re.test(value)) {
          hit = true;
          break;
        }
      }
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(value, hit);
    }
    return hit;
  }
}
