/**
 * Loads plugin modules: the built-ins (plugins/index.ts) and the custom ones named in the
 * config's `plugins:` list (file paths relative to the config file, or package names).
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PluginError } from './registry.js';
import type { Registry } from './registry.js';

/** True when a `plugins:` entry names a file rather than a package. */
export function isPluginPath(spec: string): boolean {
  return spec.startsWith('./') || spec.startsWith('../') || isAbsolute(spec) || /\.(m?js|cjs)$/.test(spec) || spec === '.' || spec === '..';
}

/** Finds the module a `plugins:` entry means; throws PluginError when it does not exist. */
export function resolvePlugin(spec: string, configDir: string): string {
  if (typeof spec !== 'string' || spec.trim() === '') throw new PluginError(spec, 'must be a file path or a package name');
  if (isPluginPath(spec)) {
    const file = resolvePath(configDir, spec);
    if (!existsSync(file)) throw new PluginError(spec, `file ${file} does not exist (paths are relative to the config file's directory ${configDir})`);
    return pathToFileURL(file).href;
  }
  // A package: resolve it from the config file's directory first, then from the agent itself.
  for (const base of [resolvePath(configDir, 'noop.js'), import.meta.url]) {
    try {
      return pathToFileURL(createRequire(base).resolve(spec)).href;
    } catch {
      // try the next base; ESM-only packages without a "require" condition land below
    }
  }
  // ESM-only packages (exports with an "import" condition only): resolve from node_modules ourselves.
  const esm = resolveEsmPackage(spec, configDir);
  if (esm) return esm;
  try {
    return import.meta.resolve(spec);
  } catch (err) {
    throw new PluginError(spec, `package "${spec}" cannot be found from ${configDir} (${(err as Error).message})`);
  }
}

/** Picks the target of a package.json `exports` entry for an ESM import. */
function exportTarget(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) {
    for (const e of entry) {
      const t = exportTarget(e);
      if (t) return t;
    }
    return undefined;
  }
  if (entry && typeof entry === 'object') {
    const map = entry as Record<string, unknown>;
    for (const cond of ['import', 'node', 'default']) if (cond in map) return exportTarget(map[cond]);
  }
  return undefined;
}

/** Finds `name[/subpath]` in the node_modules folders above `fromDir`, as an ESM import would. */
function resolveEsmPackage(spec: string, fromDir: string): string | undefined {
  const parts = spec.split('/');
  const nameParts = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameParts).join('/');
  const subpath = parts.length > nameParts ? `./${parts.slice(nameParts).join('/')}` : '.';
  let dir = fromDir;
  for (;;) {
    const pkgDir = join(dir, 'node_modules', name);
    const pkgJson = join(pkgDir, 'package.json');
    if (existsSync(pkgJson)) {
      let pkg: { exports?: unknown; module?: string; main?: string };
      try {
        pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as typeof pkg;
      } catch {
        return undefined;
      }
      let target: string | undefined;
      if (pkg.exports !== undefined) {
        const exp = pkg.exports;
        const isSubpathMap = typeof exp === 'object' && exp !== null && !Array.isArray(exp) && Object.keys(exp).some((k) => k.startsWith('.'));
        target = exportTarget(isSubpathMap ? (exp as Record<string, unknown>)[subpath] : subpath === '.' ? exp : undefined);
      } else {
        target = subpath === '.' ? (pkg.module ?? pkg.main ?? 'index.js') : subpath;
      }
      if (!target) return undefined;
      const file = resolvePath(pkgDir, target);
      return existsSync(file) ? pathToFileURL(file).href : undefined;
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Imports one plugin module and registers its factories. Throws PluginError naming the file. */
export async function loadPlugin(registry: Registry, spec: string, configDir: string): Promise<void> {
  const url = resolvePlugin(spec, configDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const e = err as Error | undefined;
    throw new PluginError(spec, `failed to load: ${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`);
  }
  if (!('default' in mod) || mod.default === undefined) {
    throw new PluginError(spec, 'has no default export (expected `export default definePlugin({ factories: [...] })`)');
  }
  registry.registerPlugin(mod.default, spec);
}
