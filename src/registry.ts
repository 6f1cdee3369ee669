/**
 * The registry of component factories and plugin CLI commands. Built-in and custom plugins go
 * through the same checks.
 */
import { AgentError, ErrorCode, SIGNALS } from './api/index.js';
import type { CliCommand, ComponentFactory, ComponentKind, PluginModule } from './api/index.js';
import { ComponentConfigValidator } from './config/component-config.js';

export const COMPONENT_KINDS: readonly ComponentKind[] = ['receiver', 'processor', 'exporter'];
const TYPE_NAME = /^[a-z][a-z0-9_]*$/;
const STABILITIES = ['development', 'alpha', 'beta', 'stable'];

export interface RegisteredFactory {
  factory: ComponentFactory;
  /** Where it came from: `built-in` or the plugin's file path / package name. */
  source: string;
}

/** Array.isArray without narrowing to any[]: the elements keep their declared type and are checked one by one. */
function isList(value: unknown): boolean {
  return Array.isArray(value);
}

/** A plugin module or factory that cannot be registered (`bad_plugin`). */
export class PluginError extends AgentError {
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(ErrorCode.BAD_PLUGIN, `plugin ${source}: ${message}`);
    this.name = 'PluginError';
  }
}

export class Registry {
  private readonly byKind = new Map<ComponentKind, Map<string, RegisteredFactory>>(COMPONENT_KINDS.map((k) => [k, new Map()]));
  readonly commands = new Map<string, { command: CliCommand; source: string }>();
  private validatorInstance: ComponentConfigValidator | undefined;

  /** Validates component configurations (ajv); made on first use. */
  get validator(): ComponentConfigValidator {
    return (this.validatorInstance ??= new ComponentConfigValidator());
  }

  /**
   * Drops the validator and the schemas it compiled (ajv's generated code, ~1.5 MiB of heap with
   * the built-in components), for a command that loads no more configurations (`run`, once its
   * configuration is loaded); a later use makes a new one.
   */
  releaseValidator(): void {
    this.validatorInstance = undefined;
  }

  /**
   * Registers every factory of a plugin module after checking its shape. Throws PluginError
   * naming the source for the first problem (nothing of that module is registered then).
   */
  registerPlugin(mod: unknown, source: string, opts: { withCommands?: boolean; compileSchemas?: boolean } = {}): void {
    if (typeof mod !== 'object' || mod === null) throw new PluginError(source, 'the default export must be an object like definePlugin({ factories: [...] })');
    const plugin = mod as PluginModule;
    if (!isList(plugin.factories)) throw new PluginError(source, 'the default export has no "factories" array (use definePlugin({ factories: [...] }))');
    const seen = new Set<string>();
    plugin.factories.forEach((f, i) => {
      this.checkFactory(f, `${source}: factories[${i}]`, opts.compileSchemas ?? true);
      const key = `${f.kind}/${f.type}`;
      const existing = this.byKind.get(f.kind)!.get(f.type);
      if (existing) throw new PluginError(source, `${f.kind} type "${f.type}" is already registered by ${existing.source}`);
      if (seen.has(key)) throw new PluginError(source, `${f.kind} type "${f.type}" appears twice`);
      seen.add(key);
    });
    const commands = plugin.commands ?? [];
    if (!isList(commands)) throw new PluginError(source, '"commands" must be an array');
    if (opts.withCommands) {
      for (const c of commands) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- plugins are JavaScript too: the declared type is not checked at run time
        if (!c || typeof c.name !== 'string' || typeof c.run !== 'function') throw new PluginError(source, 'a command needs a name and run()');
        const existing = this.commands.get(c.name);
        if (existing) throw new PluginError(source, `command "${c.name}" is already registered by ${existing.source}`);
      }
    }
    for (const f of plugin.factories) this.byKind.get(f.kind)!.set(f.type, { factory: f, source });
    if (opts.withCommands) for (const c of commands) this.commands.set(c.name, { command: c, source });
  }

  /** `compileSchema` false defers the schema check to first use (start-up time of the CLI). */
  private checkFactory(f: unknown, where: string, compileSchema: boolean): asserts f is ComponentFactory {
    const source = where.split(': ')[0]!;
    const rest = where.slice(source.length + 2);
    const fail = (msg: string): never => {
      throw new PluginError(source, `${rest}: ${msg}`);
    };
    if (typeof f !== 'object' || f === null) fail('is not a factory object');
    const x = f as Record<string, unknown>;
    if (typeof x.type !== 'string' || !TYPE_NAME.test(x.type)) fail(`type ${JSON.stringify(x.type)} must match [a-z][a-z0-9_]*`);
    const label = `${String(x.kind)} "${String(x.type)}"`;
    if (!COMPONENT_KINDS.includes(x.kind as ComponentKind)) fail(`${label}: kind must be one of ${COMPONENT_KINDS.join(', ')}`);
    if (typeof x.description !== 'string' || x.description === '') fail(`${label}: needs a one-line description`);
    if (!STABILITIES.includes(x.stability as string)) fail(`${label}: stability must be one of ${STABILITIES.join(', ')}`);
    if (typeof x.defaultConfig !== 'function') fail(`${label}: defaultConfig must be a function`);
    if (typeof x.create !== 'function') fail(`${label}: create must be a function`);
    if (x.validate !== undefined && typeof x.validate !== 'function') fail(`${label}: validate must be a function`);
    if (
      x.signals !== undefined &&
      (!Array.isArray(x.signals) || x.signals.length === 0 || x.signals.some((sig) => !(SIGNALS as readonly unknown[]).includes(sig)))
    ) {
      fail(`${label}: signals must be a non-empty list of ${SIGNALS.join(', ')} (got ${JSON.stringify(x.signals)})`);
    }
    if (typeof x.configSchema !== 'object' || x.configSchema === null) fail(`${label}: configSchema must be a JSON schema object`);
    if (compileSchema) {
      try {
        this.validator.compile(x.configSchema as Record<string, unknown>);
      } catch (err) {
        fail(`${label}: invalid configSchema: ${(err as Error).message}`);
      }
    }
  }

  get(kind: ComponentKind, type: string): RegisteredFactory | undefined {
    return this.byKind.get(kind)!.get(type);
  }

  /** Registered types of one kind, sorted by type name. */
  list(kind: ComponentKind): RegisteredFactory[] {
    return [...this.byKind.get(kind)!.values()].sort((a, b) => a.factory.type.localeCompare(b.factory.type));
  }
}
