/**
 * Configuration checked against JSON schemas with ajv, for components and the `service` section
 * alike: the user's config deep-merged over defaults, unknown keys rejected, `duration` and `size`
 * converted to milliseconds and bytes, `listenAddress` checked by the one host:port parser; for
 * a component, then its factory's own validate().
 */
import _Ajv from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseDuration, parseListenAddress, parseSize } from '../api/index.js';
import type { ComponentFactory, ConfigSchema } from '../api/index.js';
import { joinPath } from './issues.js';
import type { ConfigIssue, SourcePosition } from './issues.js';

const Ajv = _Ajv as unknown as typeof _Ajv.default;
type AjvInstance = InstanceType<typeof Ajv>;

export interface Positions {
  file?: string;
  valuePositions: Map<string, SourcePosition>;
  keyPositions: Map<string, SourcePosition>;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Deep-merges `over` onto `base`: objects merge key by key, everything else replaces.
 * A null from the user means "not set" (as `filter:` with nothing after it), so the default stays.
 */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined || over === null) return base === undefined ? over : base;
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
    return out;
  }
  return over;
}

/** Human form of a millisecond count for messages: 1500 -> "1.5s". */
export function formatMs(ms: number): string {
  if (ms >= 3_600_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Human form of a byte count for messages: 8388608 -> "8MiB". */
export function formatBytes(n: number): string {
  for (const [unit, m] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= m && n % m === 0) return `${n / m}${unit}`;
  }
  return `${n}B`;
}

/** Reads the value a JSON pointer designates (undefined when absent). */
function atPointer(root: unknown, pointer: string): unknown {
  if (pointer === '') return root;
  let cur: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) cur = cur[Number(seg)];
    else if (isPlainObject(cur)) cur = cur[seg];
    else return undefined;
  }
  return cur;
}

/** Converts an ajv instance path (JSON pointer) into a config path below `base`. */
export function pointerToPath(base: string, pointer: string, data: unknown): string {
  if (pointer === '') return base;
  let path = base;
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      path = joinPath(path, Number(seg));
      cur = cur[Number(seg)];
    } else {
      path = joinPath(path, seg);
      cur = isPlainObject(cur) ? cur[seg] : undefined;
    }
  }
  return path;
}

/** The closest known position for a path (walking up to its parents). */
export function positionOf(p: Positions, path: string, preferKey = false): SourcePosition | undefined {
  let cur = path;
  for (;;) {
    const pos = (preferKey ? p.keyPositions.get(cur) : undefined) ?? p.valuePositions.get(cur);
    if (pos) return pos;
    if (cur === '') return undefined;
    const cut = Math.max(cur.lastIndexOf('.'), cur.lastIndexOf('['));
    cur = cut <= 0 ? '' : cur.slice(0, cut);
  }
}

/**
 * Returns a copy of a component schema as the host applies it: every object schema rejects
 * unknown keys unless it says otherwise, and `duration` options also accept numbers (the
 * milliseconds a default config may already hold; numbers the user wrote are still refused).
 */
export function prepareSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(prepareSchema);
  if (!isPlainObject(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' || k === 'patternProperties' || k === '$defs' || k === 'definitions' || k === 'dependentSchemas') {
      out[k] = isPlainObject(v) ? Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, prepareSchema(pv)])) : v;
    } else if (
      ['items', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains', 'propertyNames', 'unevaluatedItems'].includes(k) ||
      ['allOf', 'anyOf', 'oneOf', 'prefixItems'].includes(k)
    ) {
      out[k] = prepareSchema(v);
    } else {
      out[k] = v;
    }
  }
  const types = Array.isArray(out.type) ? out.type : out.type === undefined ? [] : [out.type];
  const isObject = types.includes('object') || 'properties' in out;
  if (isObject && !('additionalProperties' in out) && !('unevaluatedProperties' in out)) out.additionalProperties = false;
  if (out.duration === true) out.type = ['string', 'number'];
  return out;
}

/** State of the validation that is running (ajv keywords are synchronous). */
let currentUserConfig: unknown;

function makeAjv(): AjvInstance {
  const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, allowUnionTypes: true });
  for (const keyword of ['minMs', 'maxMs', 'minBytes', 'maxBytes']) ajv.addKeyword({ keyword, schemaType: 'number' });

  const durationKeyword = function validate(
    this: unknown,
    enabled: boolean,
    data: unknown,
    parentSchema: Record<string, unknown> | undefined,
    cxt: { instancePath: string; parentData: Record<string | number, unknown>; parentDataProperty: string | number } | undefined,
  ): boolean {
    if (!enabled) return true;
    const fail = (message: string): boolean => {
      (validate as unknown as { errors: Partial<ErrorObject>[] }).errors = [{ keyword: 'duration', message, params: {} }];
      return false;
    };
    let ms: number | undefined;
    if (typeof data === 'number') {
      if (cxt && typeof atPointer(currentUserConfig, cxt.instancePath) === 'number') {
        return fail(`must be a duration with a unit, e.g. "${data}ms" or "${data}s" (got the number ${data})`);
      }
      if (!(data >= 0)) return fail(`must not be negative (got ${data})`);
      ms = data;
    } else if (typeof data === 'string') {
      if (/^\s*-/.test(data)) return fail(`must not be negative (got "${data}")`);
      ms = parseDuration(data);
      if (ms === undefined) return fail(`invalid duration "${data}" (expected e.g. 500ms, 10s, 1m, 1h30m)`);
    } else {
      return fail('must be a duration string such as "10s"');
    }
    const min = parentSchema?.minMs;
    const max = parentSchema?.maxMs;
    if (typeof min === 'number' && ms < min) return fail(`must be at least ${formatMs(min)} (got ${JSON.stringify(data)})`);
    if (typeof max === 'number' && ms > max) return fail(`must be at most ${formatMs(max)} (got ${JSON.stringify(data)})`);
    if (cxt?.parentData !== undefined) cxt.parentData[cxt.parentDataProperty] = ms;
    return true;
  };
  ajv.addKeyword({ keyword: 'duration', schemaType: 'boolean', modifying: true, errors: true, validate: durationKeyword as never });

  const sizeKeyword = function validate(
    this: unknown,
    enabled: boolean,
    data: unknown,
    parentSchema: Record<string, unknown> | undefined,
    cxt: { parentData: Record<string | number, unknown>; parentDataProperty: string | number } | undefined,
  ): boolean {
    if (!enabled) return true;
    const fail = (message: string): boolean => {
      (validate as unknown as { errors: Partial<ErrorObject>[] }).errors = [{ keyword: 'size', message, params: {} }];
      return false;
    };
    if (typeof data === 'number' && data < 0) return fail(`must not be negative (got ${data})`);
    if (typeof data === 'string' && /^\s*-/.test(data)) return fail(`must not be negative (got "${data}")`);
    if (typeof data !== 'number' && typeof data !== 'string') return fail('must be a size such as "8MiB" or a number of bytes');
    const bytes = parseSize(data);
    if (bytes === undefined) return fail(`invalid size ${JSON.stringify(data)} (expected e.g. 4096, 512KiB, 8MiB, 1GB)`);
    const min = parentSchema?.minBytes;
    const max = parentSchema?.maxBytes;
    if (typeof min === 'number' && bytes < min) return fail(`must be at least ${formatBytes(min)} (got ${JSON.stringify(data)})`);
    if (typeof max === 'number' && bytes > max) return fail(`must be at most ${formatBytes(max)} (got ${JSON.stringify(data)})`);
    if (cxt?.parentData !== undefined) cxt.parentData[cxt.parentDataProperty] = bytes;
    return true;
  };
  ajv.addKeyword({ keyword: 'size', schemaType: 'boolean', modifying: true, errors: true, validate: sizeKeyword as never });

  const addressKeyword = function validate(this: unknown, enabled: boolean, data: unknown, parentSchema: Record<string, unknown> | undefined): boolean {
    if (!enabled || (typeof data === 'string' && parseListenAddress(data))) return true;
    // `allowEmpty`: "" and null mean "no address" (the host's telemetry endpoint, disabled).
    const allowEmpty = parentSchema?.allowEmpty === true;
    if (allowEmpty && (data === null || (typeof data === 'string' && data.trim() === ''))) return true;
    const message = `must be host:port such as "127.0.0.1:9464", "[::1]:9464" or ":9464" (all interfaces)${allowEmpty ? ', or "" to disable' : ''} (got ${describe(data)})`;
    (validate as unknown as { errors: Partial<ErrorObject>[] }).errors = [{ keyword: 'listenAddress', message, params: {} }];
    return false;
  };
  ajv.addKeyword({ keyword: 'listenAddress', schemaType: 'boolean', errors: true, validate: addressKeyword as never });
  // Annotations read by messageOf(): a hint per unknown key, a message for a value of the wrong type.
  for (const keyword of ['unknownKeyHints', 'typeMessage', 'allowEmpty']) ajv.addKeyword({ keyword });
  return ajv;
}

/** A value as an error message shows it: `"text"`, `5`, `a list`, `a mapping`, `nothing`. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  const scalar = v as number | boolean | bigint | undefined; // what YAML leaves
  return String(scalar);
}

const TYPE_NAMES: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

/** The message of one ajv error, and the path and key preference it belongs to. */
function messageOf(e: ErrorObject, basePath: string, data: unknown): { path: string; message: string; preferKey: boolean } {
  const path = pointerToPath(basePath, e.instancePath, data);
  const schema = e.parentSchema as { properties?: object; unknownKeyHints?: Record<string, string>; typeMessage?: string; type?: unknown } | undefined;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys(schema?.properties ?? {});
      const hint = schema?.unknownKeyHints?.[key];
      const message = `unknown key "${key}"` + (known.length ? ` (known keys: ${known.join(', ')})` : '') + (hint ? `; ${hint}` : '');
      return { path: joinPath(path, key), message, preferKey: true };
    }
    case 'required':
      return { path, message: `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`, preferKey: false };
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ');
      return { path, message: `must be one of ${allowed} (got ${describe(e.data)})`, preferKey: false };
    }
    case 'type': {
      const types = String((e.params as { type: string | string[] }).type).split(',');
      const wanted = schema?.typeMessage ?? `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(' or ')}`;
      return { path, message: `${wanted} (got ${describe(e.data)})`, preferKey: false };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const p = e.params as { comparison: string; limit: number };
      const what = schema?.type === 'integer' ? 'an integer ' : '';
      return { path, message: `must be ${what}${p.comparison} ${p.limit} (got ${describe(e.data)})`, preferKey: false };
    }
    case 'duration':
    case 'size':
    case 'listenAddress':
      return { path, message: e.message ?? 'invalid value', preferKey: false };
    default:
      return { path, message: `${e.message ?? 'invalid value'} (got ${describe(e.data)})`, preferKey: false };
  }
}

/** Compiles and caches schemas; validates component configs and the service section. */
export class ComponentConfigValidator {
  private readonly ajv = makeAjv();
  private readonly compiled = new WeakMap<object, ValidateFunction>();

  /** Compiles a factory's schema; throws an Error with ajv's reason when the schema is invalid. */
  compile(schema: ConfigSchema): ValidateFunction {
    let fn = this.compiled.get(schema);
    if (!fn) {
      fn = this.ajv.compile(prepareSchema(schema) as object);
      this.compiled.set(schema, fn);
    }
    return fn;
  }

  /**
   * Checks `userConfig` merged over a copy of `defaults` against `schema`; `basePath` is its
   * config path (`processors.filter/x`, `service.telemetry`). Returns the converted config, or
   * undefined with issues appended.
   */
  check(schema: ConfigSchema, defaults: unknown, userConfig: unknown, basePath: string, positions: Positions, issues: ConfigIssue[]): unknown {
    const push = (path: string, message: string, preferKey = false): void => {
      issues.push({ severity: 'error', path, message, file: positions.file, pos: positionOf(positions, path, preferKey) });
    };
    const merged = deepMerge(structuredClone(defaults) ?? {}, userConfig ?? undefined) ?? {};
    const validateFn = this.compile(schema);
    currentUserConfig = userConfig;
    let ok: boolean;
    try {
      ok = validateFn(merged);
    } finally {
      currentUserConfig = undefined;
    }
    if (ok) return merged;
    const seen = new Set<string>();
    for (const e of validateFn.errors ?? []) {
      if (e.keyword === 'if' || e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
      const { path, message, preferKey } = messageOf(e, basePath, merged);
      const key = `${path}\0${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      push(path, message, preferKey);
    }
    return undefined;
  }

  /**
   * Resolves one component's configuration. `basePath` is its config path (`processors.filter/x`).
   * Returns the converted config, or undefined with issues appended.
   */
  resolve(factory: ComponentFactory, userConfig: unknown, basePath: string, positions: Positions, issues: ConfigIssue[]): unknown {
    const push = (path: string, message: string): void => {
      issues.push({ severity: 'error', path, message, file: positions.file, pos: positionOf(positions, path) });
    };
    let defaults: unknown;
    try {
      defaults = factory.defaultConfig();
    } catch (err) {
      push(basePath, `${factory.kind} "${factory.type}": defaultConfig() threw: ${(err as Error | undefined)?.message ?? String(err)}`);
      return undefined;
    }
    if (userConfig !== null && userConfig !== undefined && !isPlainObject(userConfig)) {
      push(basePath, `must be a mapping of settings (got ${describe(userConfig)})`);
      return undefined;
    }
    try {
      this.compile(factory.configSchema);
    } catch (err) {
      push(basePath, `${factory.kind} "${factory.type}" has an invalid config schema: ${(err as Error).message}`);
      return undefined;
    }
    const merged = this.check(factory.configSchema, defaults, userConfig, basePath, positions, issues);
    if (merged === undefined) return undefined;
    if (factory.validate) {
      let problems;
      try {
        problems = factory.validate(merged);
      } catch (err) {
        push(basePath, `${factory.kind} "${factory.type}": validate() threw: ${(err as Error | undefined)?.message ?? String(err)}`);
        return undefined;
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
      if (problems && problems.length > 0) {
        for (const p of problems) {
          const path = p.path ? (p.path.startsWith('[') ? basePath + p.path : joinPath(basePath, p.path)) : basePath;
          push(path, p.message);
        }
        return undefined;
      }
    }
    return merged;
  }
}
