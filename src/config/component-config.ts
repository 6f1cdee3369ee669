/**
 * Per-component configuration: the user's config deep-merged over the factory's defaults,
 * checked against the factory's JSON schema with ajv (unknown keys rejected, `duration` and
 * `size` converted to milliseconds and bytes), then the factory's own validate().
 */
import _Ajv from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseDuration, parseSize } from '../api/index.js';
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

function isPlainObject(v: unknown): v is Record<string, unknown> {
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
  return ajv;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  const scalar = v as number | boolean | bigint | undefined; // what YAML leaves
  return String(scalar);
}

/** Compiles and caches component schemas; validates component configs. */
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
   * Resolves one component's configuration. `basePath` is its config path (`processors.filter/x`).
   * Returns the converted config, or undefined with issues appended.
   */
  resolve(factory: ComponentFactory, userConfig: unknown, basePath: string, positions: Positions, issues: ConfigIssue[]): unknown {
    const file = positions.file;
    const push = (path: string, message: string, preferKey = false): void => {
      issues.push({ severity: 'error', path, message, file, pos: positionOf(positions, path, preferKey) });
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
    const merged = deepMerge(structuredClone(defaults) ?? {}, userConfig ?? undefined) ?? {};
    let validateFn: ValidateFunction;
    try {
      validateFn = this.compile(factory.configSchema);
    } catch (err) {
      push(basePath, `${factory.kind} "${factory.type}" has an invalid config schema: ${(err as Error).message}`);
      return undefined;
    }
    currentUserConfig = userConfig;
    let ok: boolean;
    try {
      ok = validateFn(merged);
    } finally {
      currentUserConfig = undefined;
    }
    if (!ok) {
      const seen = new Set<string>();
      for (const e of validateFn.errors ?? []) {
        if (e.keyword === 'if' || e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
        let path = pointerToPath(basePath, e.instancePath, merged);
        let message: string;
        let preferKey = false;
        if (e.keyword === 'additionalProperties') {
          const key = (e.params as { additionalProperty: string }).additionalProperty;
          path = joinPath(path, key);
          preferKey = true;
          const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
          message = `unknown key "${key}"` + (known.length ? ` (known keys: ${known.join(', ')})` : '');
        } else if (e.keyword === 'required') {
          message = `missing required key "${(e.params as { missingProperty: string }).missingProperty}"`;
        } else if (e.keyword === 'enum') {
          const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ');
          message = `must be one of ${allowed} (got ${describe(e.data)})`;
        } else if (e.keyword === 'duration' || e.keyword === 'size') {
          message = e.message ?? 'invalid value';
        } else {
          message = `${e.message ?? 'invalid value'} (got ${describe(e.data)})`;
        }
        const key = `${path}\0${message}`;
        if (seen.has(key)) continue;
        seen.add(key);
        push(path, message, preferKey);
      }
      return undefined;
    }
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
