/**
 * The command line: `run` (default), `validate`, `components`, `--version`, `--help`, plus the
 * commands built-in plugins declare.
 *
 * Exit codes: 0 ok; 1 runtime failure (a component failed to create or start, the telemetry
 * endpoint could not listen); 2 usage or configuration error; 70 internal error.
 */
import { parseArgs } from 'node:util';
import { resolve as resolvePath } from 'node:path';
import { AgentError, ErrorCode, errorCodeOf, factorySignals } from './api/index.js';
import type { CliCommand } from './api/index.js';
import { buildResource } from './metrics/resource.js';
import { formatIssue } from './config/issues.js';
import type { ConfigIssue } from './config/issues.js';
import { LOG_LEVELS, loadConfigFile } from './config/load.js';
import type { AgentConfig, LogLevel } from './config/load.js';
import { ComponentLogger, createRootLogger, LogRateLimiter, reportSuppressed } from './logging.js';
import { COMPONENT_KINDS, Registry } from './registry.js';
import { ComponentFailure, Service } from './service.js';
import { SelfTelemetry, SELF_METRICS } from './telemetry.js';
import { startTelemetryServer } from './telemetry-server.js';
import type { TelemetryServer } from './telemetry-server.js';
import { agentVersion } from './version.js';

export const EXIT = { OK: 0, RUNTIME: 1, USAGE: 2, INTERNAL: 70 } as const;
/** How long shutdown may take after SIGTERM/SIGINT before the agent exits anyway. */
export const SHUTDOWN_DEADLINE_MS = 4500;

const EXIT_CODES_HELP = `Exit codes:
  0   ok (also after SIGTERM/SIGINT)
  1   runtime failure: a component failed to create or start, the telemetry endpoint could not listen
  2   usage or configuration error (every problem is printed on stderr)
  70  internal error`;

const RUN_USAGE = `Usage: taskstats-agent [run] [--config FILE] [--log-level LEVEL]

Runs the pipelines of the configuration file until SIGTERM or SIGINT, then stops intake, flushes
everything held, shuts down and exits 0 (within 5 seconds).

Options:
  -c, --config FILE      configuration file (default: ./config.yaml)
      --log-level LEVEL  ${LOG_LEVELS.join('|')}; overrides service.telemetry.logs.level
  -h, --help             show this help

${EXIT_CODES_HELP}`;

const VALIDATE_USAGE = `Usage: taskstats-agent validate [--config FILE]

Checks the configuration file without running it: YAML syntax, plugins, every component's
settings, pipelines. Prints every problem at once on stderr (file:line:col: path: message).

Options:
  -c, --config FILE   configuration file (default: ./config.yaml)
  -h, --help          show this help

${EXIT_CODES_HELP}`;

const COMPONENTS_USAGE = `Usage: taskstats-agent components [--config FILE]

Lists the registered receivers, processors and exporters, one line each: type, stability,
description. With --config, the custom plugins that file names are included.

Options:
  -c, --config FILE   also load the plugins named in this configuration file
  -h, --help          show this help`;

function globalUsage(commands: Map<string, { command: CliCommand }>): string {
  const lines = [
    ['run', 'run the pipelines of a configuration file (the default command)'],
    ['validate', 'check a configuration file: exit 0 when valid, else every error on stderr'],
    ['components', 'list the registered receivers, processors and exporters'],
    ...[...commands.values()].map(({ command }) => [command.name, command.summary]),
  ];
  const width = Math.max(...lines.map(([n]) => n!.length)) + 2;
  return `Usage: taskstats-agent [command] [options]

Per-process telemetry agent: kernel taskstats to OpenTelemetry metrics, shaped like the
OpenTelemetry Collector (receivers -> processors -> exporters pipelines in YAML).

Commands:
${lines.map(([n, s]) => `  ${n!.padEnd(width)}${s}`).join('\n')}

Options:
  -h, --help      show help (also: taskstats-agent <command> --help)
  -v, --version   print the version

${EXIT_CODES_HELP}

Configuration reference: docs/configuration.md`;
}

/** A command line that cannot be understood (exit 2). */
function usageError(message: string): AgentError {
  return new AgentError(ErrorCode.BAD_USAGE, message);
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}
function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : text + '\n');
}

function parse(
  argv: string[],
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>,
): { values: { help?: boolean; config?: string; 'log-level'?: string } } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    return { values: r.values };
  } catch (e) {
    throw usageError((e as Error).message);
  }
}

async function builtinRegistry(): Promise<Registry> {
  const registry = new Registry();
  const { builtinPlugins } = await import('../plugins/index.js');
  for (const plugin of builtinPlugins) registry.registerPlugin(plugin, 'built-in', { withCommands: true, compileSchemas: false });
  return registry;
}

function printIssues(issues: ConfigIssue[]): void {
  for (const i of issues) err(formatIssue(i));
}

/**
 * SIGTERM/SIGINT that arrived before `run` installed its own handlers (start-up takes a moment:
 * loading plugins, reading the config). bin/taskstats-agent catches them from its first line, so
 * that an agent stopped while starting still shuts down cleanly and exits 0.
 */
export interface StartupSignals {
  /** Signals received so far (the caller keeps appending until release()). */
  readonly received: NodeJS.Signals[];
  /** Removes the caller's provisional handlers, restoring the default behaviour. Idempotent. */
  release(): void;
}

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export async function main(argv: string[], startup: StartupSignals = { received: [], release: () => undefined }): Promise<number> {
  try {
    return await dispatch(argv, startup);
  } catch (e) {
    if (e instanceof AgentError && e.code === ErrorCode.BAD_USAGE) {
      err(`taskstats-agent: ${e.message}\nTry "taskstats-agent --help".`);
      return EXIT.USAGE;
    }
    err(`taskstats-agent: internal error: ${(e as Error | undefined)?.stack ?? String(e)}`);
    return EXIT.INTERNAL;
  } finally {
    startup.release();
  }
}

async function dispatch(argv: string[], startup: StartupSignals): Promise<number> {
  const first = argv[0];
  if (first === '--version' || first === '-v') {
    out(`taskstats-agent ${agentVersion()}`);
    return EXIT.OK;
  }
  let registry: Registry;
  try {
    registry = await builtinRegistry();
  } catch (e) {
    err(`taskstats-agent: a built-in plugin cannot be registered: ${(e as Error).message}`);
    return EXIT.INTERNAL;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    out(globalUsage(registry.commands));
    return EXIT.OK;
  }
  const command = first === undefined || first.startsWith('-') ? 'run' : first;
  const rest = first === undefined || first.startsWith('-') ? argv : argv.slice(1);
  if (command === 'run') return runCommand(rest, registry, startup);
  // Other commands get the default signal behaviour (a plugin command may install its own).
  startup.release();
  const early = startup.received[0];
  if (early) return SIGNAL_EXIT[early] ?? EXIT.RUNTIME;
  switch (command) {
    case 'validate':
      return validateCommand(rest, registry);
    case 'components':
      return componentsCommand(rest, registry);
  }
  const plugin = registry.commands.get(command);
  if (!plugin)
    throw usageError(`unknown command "${command}" (commands: run, validate, components${[...registry.commands.keys()].map((c) => `, ${c}`).join('')})`);
  if (rest.includes('--help') || rest.includes('-h')) {
    out(plugin.command.usage);
    return EXIT.OK;
  }
  return plugin.command.run(rest);
}

async function validateCommand(argv: string[], registry: Registry): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  if (values.help) {
    out(VALIDATE_USAGE);
    return EXIT.OK;
  }
  const file = resolvePath(values.config ?? 'config.yaml');
  const { config, issues } = await loadConfigFile(file, registry);
  printIssues(issues);
  if (!config) {
    const n = issues.filter((i) => i.severity === 'error').length;
    err(`${file}: ${n} error${n === 1 ? '' : 's'}`);
    return EXIT.USAGE;
  }
  out(`${file}: valid (pipelines: ${config.pipelines.map((p) => p.id).join(', ')})`);
  return EXIT.OK;
}

async function componentsCommand(argv: string[], registry: Registry): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  if (values.help) {
    out(COMPONENTS_USAGE);
    return EXIT.OK;
  }
  if (values.config) {
    const { config, issues } = await loadConfigFile(resolvePath(values.config), registry);
    if (!config) {
      printIssues(issues);
      return EXIT.USAGE;
    }
  }
  const rows: string[][] = [];
  for (const kind of COMPONENT_KINDS) {
    for (const { factory, source } of registry.list(kind)) {
      rows.push([
        kind,
        factory.type,
        factory.stability,
        factorySignals(factory).join(','),
        factory.description + (source === 'built-in' ? '' : ` (plugin ${source})`),
      ]);
    }
  }
  const w = [0, 1, 2, 3].map((c) => Math.max(0, ...rows.map((r) => r[c]!.length)));
  for (const r of rows) out(`${r[0]!.padEnd(w[0]!)}  ${r[1]!.padEnd(w[1]!)}  ${r[2]!.padEnd(w[2]!)}  ${r[3]!.padEnd(w[3]!)}  ${r[4]}`);
  if (rows.length === 0) out('no components registered');
  return EXIT.OK;
}

async function runCommand(argv: string[], registry: Registry, startup: StartupSignals): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } });
  if (values.help) {
    out(RUN_USAGE);
    return EXIT.OK;
  }
  const cliLevel = values['log-level'];
  if (cliLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(cliLevel)) {
    throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got "${cliLevel}")`);
  }
  const file = resolvePath(values.config ?? 'config.yaml');
  const { config, issues } = await loadConfigFile(file, registry);
  // The running agent validates no other configuration: let the compiled schemas go.
  registry.releaseValidator();
  if (!config) {
    printIssues(issues);
    err(`${file}: invalid configuration; nothing started`);
    return EXIT.USAGE;
  }
  return runAgent(config, issues, (cliLevel as LogLevel | undefined) ?? config.telemetry.logs.level, startup);
}

/** Runs a validated configuration until SIGTERM/SIGINT. Resolves to the exit code. */
export async function runAgent(
  config: AgentConfig,
  warnings: ConfigIssue[],
  level: LogLevel,
  startup: StartupSignals = { received: [], release: () => undefined },
): Promise<number> {
  const log = createRootLogger({ level, encoding: config.telemetry.logs.encoding });
  for (const w of warnings) log.warn({ path: w.path || undefined, line: w.pos?.line }, formatIssue(w));
  const limiter = new LogRateLimiter();
  const version = agentVersion();
  const telemetry = new SelfTelemetry(version);
  const resource = buildResource(process.env, (message) => log.warn(message));
  const service = new Service({ config, telemetry, rootLogger: log, limiter, resource });

  // Errors thrown in components' own callbacks (timers, sockets) would kill the process: count
  // and log them instead, so one plugin's bug does not take the other pipelines down.
  const uncaught = telemetry.counter(SELF_METRICS.uncaughtErrors, 'Errors thrown outside any call the host made (in a component callback).', '{error}', {});
  const hostLog = new ComponentLogger(log, limiter, 'host');
  const onUncaught = (e: unknown): void => {
    uncaught.add(1);
    const message = e instanceof Error ? e.message : String(e);
    hostLog.error('uncaught error in a component callback (contained)', { key: `uncaught:${message}`, error: e instanceof Error ? e.stack : message });
  };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);

  let stopRequested: (signal: string) => void = () => undefined;
  const stopSignal = new Promise<string>((resolve) => (stopRequested = resolve));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      log.info({ signal }, 'signal received: stopping intake, flushing, shutting down');
      stopRequested(signal);
    } else {
      log.warn({ signal, pending: [...service.pendingSteps] }, 'second signal: exiting now without finishing shutdown');
      process.exit(EXIT.RUNTIME);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  startup.release();
  for (const signal of startup.received.splice(0)) onSignal(signal);
  // Keeps the process alive while components have no handles of their own.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const cleanup = (): void => {
    clearInterval(keepAlive);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    reportSuppressed(log, limiter);
  };

  let server: TelemetryServer | undefined;
  if (config.telemetry.metrics.address) {
    try {
      server = await startTelemetryServer(config.telemetry.metrics.address, telemetry, () => service.ready());
      log.info({ address: server.address }, 'telemetry endpoint listening (/metrics, /healthz, /readyz)');
    } catch (e) {
      log.error({ code: errorCodeOf(e), error: (e as Error).message }, 'cannot start the telemetry endpoint');
      cleanup();
      return EXIT.RUNTIME;
    }
  }

  if (signals > 0) {
    log.info('stop requested before start: nothing started');
    await server?.close();
    cleanup();
    return EXIT.OK;
  }

  // A signal during start (a component whose start() hangs, say) must still stop the agent.
  const starting = service.start().then(
    () => 'started' as const,
    (e: unknown) => e,
  );
  const first = await Promise.race([starting, stopSignal.then(() => 'signal' as const)]);
  if (first !== 'started' && first !== 'signal') {
    const e = first;
    if (e instanceof ComponentFailure) {
      log.error(
        { code: e.code, kind: e.kind, component: e.componentId, phase: e.phase, error: e.cause instanceof Error ? e.cause.stack : String(e.cause) },
        e.message,
      );
    } else {
      log.error({ code: errorCodeOf(e), error: (e as Error | undefined)?.stack ?? String(e) }, 'the agent failed to start');
    }
    await server?.close();
    cleanup();
    return EXIT.RUNTIME;
  }
  if (first === 'started') {
    log.info({ version, config: config.file, pipelines: config.pipelines.map((p) => p.id), pid: process.pid }, 'taskstats-agent started');
  } else {
    log.warn({ starting: [...service.startingComponents] }, 'stop requested while starting: shutting down what started');
  }

  await stopSignal;
  const startedAt = Date.now();
  const deadlineHit = await Promise.race([
    service.shutdown().then(() => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(true), SHUTDOWN_DEADLINE_MS).unref()),
  ]);
  if (deadlineHit) {
    log.error({ unfinished: [...service.pendingSteps], deadline_ms: SHUTDOWN_DEADLINE_MS }, 'shutdown deadline reached: exiting with steps unfinished');
  } else {
    log.info({ duration_ms: Date.now() - startedAt }, 'shutdown complete');
  }
  await Promise.race([server?.close(), new Promise((r) => setTimeout(r, 200).unref())]);
  cleanup();
  // Components that did not finish still hold handles: exit now rather than wait for them.
  if (deadlineHit) process.exit(EXIT.OK);
  return EXIT.OK;
}
