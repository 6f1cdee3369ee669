/**
 * Loads plugin modules: the built-ins (plugins/index.ts) and the custom ones named in the
 * config's `plugins:` list (file paths relative to the config file, or package names).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PluginError } from './registry.js';
import type { Registry } from './registry.js';

/** True when a `plugins:` entry names a file rather than a package. */
export function isPluginPath(spec: string): boolean {
  return spec.startsWith('./') || spec.startsWith('../') || isAbsolute(spec) || /\.(m?js|cjs)$/.test(spec) || spec === '.' || spec === '..';
}

/** Finds the module a `plugins:` entry means; throws PluginError when it does not exist. */
export function resolvePlugin(spec: string, configDir: string): string {
  if (typeof spec !== 'string' || spec.trim() === '') throw new PluginError(String(spec), 'must be a file path or a package name');
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
  try {
    return import.meta.resolve(spec);
  } catch (err) {
    throw new PluginError(spec, `package "${spec}" cannot be found from ${configDir} (${(err as Error).message})`);
  }
}

/** Imports one plugin module and registers its factories. Throws PluginError naming the file. */
export async function loadPlugin(registry: Registry, spec: string, configDir: string): Promise<void> {
  const url = resolvePlugin(spec, configDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const e = err as Error;
    throw new PluginError(spec, `failed to load: ${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`);
  }
  if (!('default' in mod) || mod.default === undefined) {
    throw new PluginError(spec, 'has no default export (expected `export default definePlugin({ factories: [...] })`)');
  }
  registry.registerPlugin(mod.default, spec);
}
